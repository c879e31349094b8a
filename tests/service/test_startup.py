"""Start-up: a broken version is named (the log, the repository index) while the others serve, or
stops `python -m service` with a message naming the file where nothing else can serve or the
repository must load whole; execution providers fall back to the CPU or, when required, refuse to start; and
the settings read from the environment."""

from __future__ import annotations

import json
import os
import shutil
import time

import httpx
import onnxruntime as ort
import pytest

from service.server import create_app
from service.settings import Settings, available_cpus
from tests.service.support import (
    MODELS,
    ServerProcess,
    TestClient,
    copy_repository,
    newest,
    run_service,
    settings,
    versions,
)

CUDA = "CUDAExecutionProvider"
needs_no_cuda = pytest.mark.skipif(
    CUDA in ort.get_available_providers(), reason="this machine has CUDA: nothing falls back"
)


def broken_repository(tmp_path, damage):
    """A copy of the Boston model (small, quick to load; Reuters v1 for text), damaged; returns
    the root and the path that the service must name."""
    if damage in (corrupt_vocabulary, unreadable_vocabulary):
        root = copy_repository(tmp_path / "models", ["reuters"])
        return root, damage(root / "reuters" / "1")
    root = copy_repository(tmp_path / "models", ["boston"])
    return root, damage(root / "boston" / str(newest("boston")))


def corrupt_vocabulary(folder):
    path = folder / "vocabulary.json"
    path.write_bytes(path.read_bytes()[:1000])  # cut short: not JSON
    return path


def unreadable_vocabulary(folder):
    path = folder / "vocabulary.json"
    path.write_text(json.dumps({"ngrams": []}))  # valid JSON without the words
    return path


def remove_onnx(folder):
    (folder / "model.onnx").unlink()
    return folder / "model.onnx"


def corrupt_onnx(folder):
    (folder / "model.onnx").write_bytes(b"\x08\x07 truncated graph")
    return folder / "model.onnx"


def rename_input(folder):
    """A valid config that does not match its graph: the input's name differs."""
    config = json.loads((folder / "config.json").read_text())
    config["inputs"][0]["name"] = "houses"
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "model.onnx"


def invalid_config(folder):
    config = json.loads((folder / "config.json").read_text())
    config["outputs"][0]["datatype"] = "FP8"
    (folder / "config.json").write_text(json.dumps(config))
    return folder / "config.json"


def misplaced_config(folder):
    shutil.move(folder, folder.with_name("7"))
    return folder.with_name("7") / "config.json"


@pytest.mark.parametrize(
    "damage",
    [remove_onnx, corrupt_onnx, rename_input, invalid_config, misplaced_config,
     corrupt_vocabulary, unreadable_vocabulary],
    ids=["missing model.onnx", "corrupt model.onnx", "config does not match the graph",
         "invalid config.json", "config of another version", "vocabulary.json cut short",
         "vocabulary.json without words"],
)  # fmt: skip
def test_a_broken_model_is_named_and_the_others_serve(tmp_path, damage):
    """By default, a version that cannot be loaded is named in the log and in the repository
    index; the others serve. With SERVICE_STRICT_REPOSITORY (Triton's --exit-on-error), it stops
    the start; where nothing else is left to serve, so does it."""
    root, named = broken_repository(tmp_path, damage)
    broken = named.relative_to(root).parts[:2]
    donor = "imdb" if broken[0] == "reuters" else "reuters"
    shutil.copytree(MODELS / donor / "1", root / donor / "1",
                    ignore=shutil.ignore_patterns("saved_model", "*.png"))  # fmt: skip
    process = ServerProcess(tmp_path, root, SERVICE_ADMIN_API_KEY="k").wait_ready()
    try:
        with httpx.Client(base_url=process.url) as http:
            assert http.get(f"/v2/models/{donor}/versions/1/ready").status_code == 200
            index = http.post("/v2/repository/index", headers={"Authorization": "Bearer k"})
    finally:
        assert process.terminate() == 0
    entry = next(e for e in index.json() if (e["name"], e["version"]) == broken)
    assert entry["state"] == "UNAVAILABLE"
    assert str(named) in entry["reason"]
    assert f"{broken[0]}/{broken[1]} is not served: " in process.output()
    code, output = run_service(root, SERVICE_STRICT_REPOSITORY="true")
    assert code != 0, output
    assert f"cannot start: {named}" in output, output
    shutil.rmtree(root / donor)
    for other in (root / broken[0]).iterdir():
        if other.name != broken[1]:
            shutil.rmtree(other)
    code, output = run_service(root)
    assert code != 0, output
    assert "no version in the repository can be served" in output, output
    assert str(named) in output


def test_an_empty_repository_stops_the_start(tmp_path):
    root = tmp_path / "empty"
    root.mkdir()
    code, output = run_service(root)
    assert code != 0, output
    assert f"model repository {root} has no models" in output


def test_a_missing_repository_stops_the_start(tmp_path):
    root = tmp_path / "nowhere"
    code, output = run_service(root)
    assert code != 0, output
    assert f"{root} does not exist" in output


def test_started_from_another_folder_it_says_which_setting_to_set(tmp_path):
    """The default repository, `models`, is relative to the working directory: from any other
    folder the service must say so in one line that names the path and the setting, not in a
    traceback."""
    code, output = run_service(None, cwd=tmp_path)
    assert code != 0, output
    (line,) = output.splitlines()
    assert line.startswith("cannot start: "), line
    assert f"{tmp_path.resolve() / 'models'} does not exist" in line
    assert "SERVICE_MODEL_REPOSITORY" in line


@pytest.mark.parametrize("key", ["", "   "])
def test_an_empty_admin_key_stops_the_start(tmp_path, key):
    """Templating often leaves a secret empty: that must not open the repository API."""
    code, output = run_service(
        copy_repository(tmp_path / "models", ["boston"]), SERVICE_ADMIN_API_KEY=key
    )
    assert code == 1, output
    (line,) = output.splitlines()
    assert line.startswith("cannot start: SERVICE_ADMIN_API_KEY: "), line


def test_folders_that_are_not_versions_are_skipped_and_named_once(tmp_path):
    """ "01", "²" and "١" would alias version 1 or fail int(); each is logged once, however often
    the repository is polled, and the models are served, indexed and polled as before."""
    root = copy_repository(tmp_path / "models", ["boston"])
    for name in ("01", "\u00b2", "\u0661", "1_0", "-1"):
        shutil.copytree(root / "boston" / "1", root / "boston" / name)
    process = ServerProcess(
        tmp_path, root, SERVICE_ADMIN_API_KEY="key", SERVICE_POLL_INTERVAL_S="0.1"
    ).wait_ready()
    try:
        index = httpx.post(
            f"{process.url}/v2/repository/index", headers={"authorization": "Bearer key"}
        )
        boston = httpx.get(f"{process.url}/v2/models/boston/versions/1")
        load = httpx.post(
            f"{process.url}/v2/repository/models/boston/load",
            headers={"authorization": "Bearer key"},
        )
        time.sleep(1)  # ten polls
        polled = httpx.get(f"{process.url}/v2/health/ready")
    finally:
        code = process.terminate()
    output = process.output()
    assert index.status_code == 200, index.text
    assert sorted(v["version"] for v in index.json()) == sorted(str(v) for v in versions("boston"))
    assert boston.status_code == 200, boston.text
    assert load.json()["versions"] == [str(v) for v in versions("boston")], load.text
    assert polled.status_code == 200
    assert code == 0, output
    for name in ("01", "\u00b2", "\u0661", "1_0", "-1"):
        assert output.count(f"skipped {root / 'boston' / name}:") == 1, output
    assert "Traceback" not in output, output


def test_a_model_without_versions_stops_the_start(tmp_path):
    root = copy_repository(tmp_path / "models", ["boston"])
    (root / "imdb").mkdir()
    code, output = run_service(root)
    assert code != 0, output
    assert f"{root / 'imdb'} has no versions" in output


@needs_no_cuda
def test_required_provider_missing_refuses_to_start(tmp_path):
    root = copy_repository(tmp_path / "models", ["boston"])
    code, output = run_service(
        root,
        SERVICE_PROVIDERS=f"{CUDA},CPUExecutionProvider",
        SERVICE_REQUIRE_PROVIDERS="true",
    )
    assert code != 0, output
    assert CUDA in output
    assert "not available" in output


@needs_no_cuda
def test_missing_provider_falls_back_to_the_cpu(monkeypatch):
    monkeypatch.setenv("SERVICE_PROVIDERS", f"{CUDA},CPUExecutionProvider")
    monkeypatch.delenv("SERVICE_REQUIRE_PROVIDERS", raising=False)
    from_env = settings()
    assert from_env.providers == [CUDA, "CPUExecutionProvider"]
    with TestClient(create_app(from_env)) as client:
        for name in ("boston", "imdb", "reuters"):
            metadata = client.get(f"/v2/models/{name}").json()
            assert metadata["execution_providers"] == ["CPUExecutionProvider"]
        assert client.post("/api/imdb", json={"reviews": ["fine"]}).status_code == 200


def test_available_cpus():
    cpus = available_cpus()
    assert 1 <= cpus <= os.cpu_count()
    if hasattr(os, "sched_getaffinity"):
        assert cpus <= len(os.sched_getaffinity(0))
    assert Settings(_env_file=None).intra_op_threads == 1
    assert Settings(_env_file=None).inference_threads() == cpus
    assert Settings(_env_file=None, intra_op_threads=3).intra_op_threads == 3
    # Each worker process gets its share of the CPUs, at least one inference thread.
    assert Settings(_env_file=None, workers=2).inference_threads() == max(1, cpus // 2)
    assert Settings(_env_file=None, workers=cpus + 1).inference_threads() == 1
    assert Settings(_env_file=None, intra_op_threads=cpus + 1).inference_threads() == 1


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("SERVICE_PROVIDERS", " CUDAExecutionProvider , CPUExecutionProvider,")
    monkeypatch.setenv("SERVICE_REQUIRE_PROVIDERS", "true")
    monkeypatch.setenv("SERVICE_MAX_BATCH_ROWS", "12")
    monkeypatch.setenv("SERVICE_BATCHING", '{"imdb": {"max_batch_size": 128, "enabled": false}}')
    monkeypatch.setenv("SERVICE_ADMIN_API_KEY", "s3cret")
    from_env = Settings(_env_file=None)
    assert from_env.providers == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert from_env.require_providers is True
    assert from_env.max_batch_rows == 12
    assert from_env.batching_for("imdb").max_batch_size == 128
    assert from_env.batching_for("imdb").enabled is False
    assert from_env.batching_for("boston") == from_env.default_batching
    assert from_env.admin_api_key.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(from_env)


def test_a_single_provider_from_the_environment(monkeypatch):
    monkeypatch.setenv("SERVICE_PROVIDERS", "CPUExecutionProvider")
    assert Settings(_env_file=None).providers == ["CPUExecutionProvider"]
