"""Repository polling (`SERVICE_POLL_INTERVAL_S`) and version policies: the service serves what
the repository holds, through the same leases as a reload, and a broken new version never takes
the place of a good one."""

from __future__ import annotations

import asyncio
import shutil
import threading
import time

import httpx
import numpy as np
import pytest

from service.metrics import Metrics
from service.registry import Registry
from service.settings import VersionPolicy
from tests.service.support import (
    ServerProcess,
    add_version,
    copy_repository,
    newest,
    ort_predict,
    sample_rows,
    settings,
    v2_body,
    v2_outputs,
    versions,
)


@pytest.mark.parametrize(
    ("policy", "served"),
    [({}, [1, 2, 5]), ({"latest": 1}, [5]), ({"latest": 2}, [2, 5]), ({"specific": [2, 7]}, [2])],
)
def test_a_version_policy_chooses_the_versions(policy, served):
    assert VersionPolicy(**policy).select([5, 1, 2]) == served


def test_a_policy_is_latest_or_specific():
    with pytest.raises(ValueError, match="not both"):
        VersionPolicy(latest=1, specific=[1])


def loaded(registry: Registry) -> dict[str, list[int]]:
    return {name: sorted(versions) for name, versions in registry.models.items()}


def test_sync_serves_what_the_repository_holds(tmp_path):
    repository = copy_repository(tmp_path / "models", ["boston", "reuters"])
    old = newest("boston")

    async def scenario():
        registry = Registry(settings(model_repository=repository), Metrics())
        registry.load_all()
        add_version(repository, "boston", old, old + 1)
        broken = add_version(repository, "reuters", newest("reuters"), 9)
        (broken / "model.onnx").write_bytes(b"not a graph")
        shutil.rmtree(repository / "boston" / "1")
        assert await registry.sync()
        after_first = loaded(registry)
        reason = registry.index()
        await registry.retired()
        assert not await registry.sync()  # nothing changed: the broken one is not tried again
        source = repository / "reuters" / str(newest("reuters")) / "model.onnx"
        (broken / "model.onnx").write_bytes(source.read_bytes())  # mended: tried again
        mended = await registry.sync()
        served = loaded(registry)
        await registry.close()
        return after_first, reason, mended, served

    after_first, index, mended, served = asyncio.run(scenario())
    assert after_first == {"boston": [old, old + 1], "reuters": versions("reuters")}
    (entry,) = [e for e in index if (e["name"], e["version"]) == ("reuters", "9")]
    assert entry["state"] == "UNAVAILABLE"
    assert str(repository / "reuters" / "9" / "model.onnx") in entry["reason"]
    assert mended
    assert served["reuters"] == [*versions("reuters"), 9]


def test_a_model_removed_from_the_repository_is_unloaded(tmp_path):
    repository = copy_repository(tmp_path / "models", ["boston", "imdb"])

    async def scenario():
        registry = Registry(settings(model_repository=repository), Metrics())
        registry.load_all()
        shutil.rmtree(repository / "imdb")
        await registry.sync()
        models = loaded(registry)
        await registry.close()
        return models

    assert list(asyncio.run(scenario())) == ["boston"]


def test_the_policy_applies_at_start_and_when_polling(tmp_path):
    repository = copy_repository(tmp_path / "models", ["boston"])

    async def scenario():
        registry = Registry(
            settings(model_repository=repository, version_policy={"boston": {"latest": 1}}),
            Metrics(),
        )
        registry.load_all()
        at_start = loaded(registry)
        add_version(repository, "boston", newest("boston"), 8)
        await registry.sync()
        after = loaded(registry)
        await registry.close()
        return at_start, after

    at_start, after = asyncio.run(scenario())
    assert at_start == {"boston": [newest("boston")]}
    assert after == {"boston": [8]}


def test_a_running_service_serves_a_new_version_and_no_request_fails(tmp_path):
    """A client keeps asking for the newest Boston version while a new one appears, a broken one
    appears after it, and an old one goes away; it sees the new version within the poll interval
    and never an error."""
    repository = copy_repository(tmp_path / "models", ["boston"])
    old = newest("boston")
    process = ServerProcess(tmp_path, repository, SERVICE_POLL_INTERVAL_S="0.2").wait_ready()
    rows = sample_rows("boston")
    expected = ort_predict("boston", old, rows)
    versions_seen: list[str] = []
    failures: list[str] = []
    stop = threading.Event()

    def client():
        with httpx.Client(base_url=process.url, timeout=30) as http:
            while not stop.is_set():
                answer = http.post("/v2/models/boston/infer", json=v2_body("boston", rows))
                if answer.status_code != 200:
                    failures.append(f"{answer.status_code} {answer.text}")
                    continue
                versions_seen.append(answer.json()["model_version"])
                if np.abs(v2_outputs(answer.json()) - expected).max() > 1e-6:
                    failures.append("a different answer")

    thread = threading.Thread(target=client)
    thread.start()
    try:
        time.sleep(0.5)
        add_version(repository, "boston", old, old + 1)  # the same graph, so the same answers
        deadline = time.monotonic() + 10
        while str(old + 1) not in versions_seen[-5:] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert str(old + 1) in versions_seen, "the new version was never served"
        broken = add_version(repository, "boston", old, old + 2)
        (broken / "model.onnx").write_bytes(b"truncated")
        shutil.rmtree(repository / "boston" / "1")
        time.sleep(1.0)
    finally:
        stop.set()
        thread.join(30)
        code = process.terminate()
    output = process.output()
    assert failures == []
    assert versions_seen[-1] == str(old + 1)  # the broken newer one never took its place
    assert f"boston/{old + 2} is not served: {broken / 'model.onnx'}" in output
    assert code == 0, output
