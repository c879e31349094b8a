"""The model-repository API (index, load, unload) on a copy of the model repository."""

from __future__ import annotations

import json
import threading
import time

import httpx
import numpy as np
import pytest

from service.server import create_app
from tests.service.support import (
    MODEL_NAMES,
    ServerProcess,
    TestClient,
    add_version,
    connect,
    copy_repository,
    newest,
    ort_predict,
    raw_request,
    read_response,
    sample_rows,
    settings,
    v2_body,
    v2_outputs,
    versions,
)

KEY = "test-admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def repository(tmp_path):
    return copy_repository(tmp_path / "models")


@pytest.fixture
def admin(repository):
    with TestClient(create_app(settings(model_repository=repository, admin_api_key=KEY))) as c:
        yield c


def assert_error(answer, status: int, text: str = "") -> dict:
    assert answer.status_code == status, answer.text
    body = answer.json()
    assert set(body) == {"error", "details"}
    assert text in body["error"]
    return body


def infer(client, name: str, version: int | None = None):
    path = f"/v2/models/{name}" + (f"/versions/{version}" if version else "") + "/infer"
    return client.post(path, json=v2_body(name, sample_rows(name, version), version))


def index(client) -> dict[tuple[str, str], dict]:
    answer = client.post("/v2/repository/index", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return {(e["name"], e["version"]): e for e in answer.json()}


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/v2/repository/index"),
        ("POST", "/v2/repository/models/imdb/load"),
        ("POST", "/v2/repository/models/imdb/unload"),
    ],
)
def test_off_without_an_admin_key(client, method, path):
    """`client` has no SERVICE_ADMIN_API_KEY: every repository call is refused, even with a key."""
    assert_error(client.request(method, path), 403, "SERVICE_ADMIN_API_KEY")
    assert_error(client.request(method, path, headers=AUTH), 403)
    assert client.get("/v2/models/imdb/ready").status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong"}, {"Authorization": KEY}, {"Authorization": "Basic x"}],
    ids=["none", "wrong key", "no scheme", "basic"],
)
def test_wrong_key_is_401(admin, headers):
    body = assert_error(admin.post("/v2/repository/index", headers=headers), 401)
    assert body["details"][0]["field"] == "authorization"
    answer = admin.post("/v2/repository/models/imdb/unload", headers=headers)
    assert_error(answer, 401)
    assert admin.get("/v2/models/imdb/ready").status_code == 200


def test_a_key_beyond_ascii_is_401_not_an_error(admin):
    answer = admin.post("/v2/repository/index", headers={"authorization": b"Bearer \xe9"})
    assert_error(answer, 401, "authorization")


def test_index_lists_every_version_ready(admin):
    entries = index(admin)
    expected = {(name, str(v)) for name in MODEL_NAMES for v in versions(name)}
    assert set(entries) == expected
    assert {e["state"] for e in entries.values()} == {"READY"}


def test_unload_and_load(admin):
    before = v2_outputs(infer(admin, "imdb").json())
    answer = admin.post("/v2/repository/models/imdb/unload", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "imdb", "state": "UNAVAILABLE"}

    assert_error(infer(admin, "imdb"), 404, "imdb")
    assert_error(admin.get("/v2/models/imdb"), 404)
    assert_error(admin.get("/v2/models/imdb/ready"), 404)
    assert_error(admin.post("/api/imdb", json={"reviews": ["good"]}), 404)
    assert_error(admin.get("/v1/models/imdb"), 404)
    entries = index(admin)
    for version in versions("imdb"):
        assert entries[("imdb", str(version))]["state"] == "UNAVAILABLE"
        assert entries[("imdb", str(version))]["reason"] == "unloaded"
    assert entries[("boston", str(newest("boston")))]["state"] == "READY"
    assert infer(admin, "boston").status_code == 200  # the others go on
    assert_error(admin.post("/v2/repository/models/imdb/unload", headers=AUTH), 404)

    answer = admin.post("/v2/repository/models/imdb/load", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "imdb", "versions": [str(v) for v in versions("imdb")]}
    np.testing.assert_array_equal(v2_outputs(infer(admin, "imdb").json()), before)
    assert {e["state"] for e in index(admin).values()} == {"READY"}


def test_load_an_unknown_model_is_404(admin):
    assert_error(admin.post("/v2/repository/models/nope/load", headers=AUTH), 404, "nope")


def test_load_picks_up_a_new_version(admin, repository):
    old = newest("reuters")
    add_version(repository, "reuters", old, old + 1)
    assert (("reuters", str(old + 1))) in index(admin)
    assert index(admin)[("reuters", str(old + 1))]["state"] == "UNAVAILABLE"
    assert admin.get(f"/v2/models/reuters/versions/{old + 1}").status_code == 404

    answer = admin.post("/v2/repository/models/reuters/load", headers=AUTH)
    assert answer.status_code == 200, answer.text
    assert answer.json()["versions"][-1] == str(old + 1)
    result = infer(admin, "reuters").json()
    assert result["model_version"] == str(old + 1)  # the newest now answers by default
    expected = ort_predict("reuters", old, sample_rows("reuters"))  # a copy of the old graph
    assert np.abs(v2_outputs(result) - expected).max() <= 1e-6


def test_loading_a_corrupt_version_fails_and_the_old_ones_keep_serving(admin, repository):
    old = newest("imdb")
    before = v2_outputs(infer(admin, "imdb").json())
    broken = add_version(repository, "imdb", old, old + 1)
    (broken / "model.onnx").write_bytes(b"this is not an onnx graph")

    answer = admin.post("/v2/repository/models/imdb/load", headers=AUTH)
    body = assert_error(answer, 400, str(broken / "model.onnx"))
    assert body["details"][0]["field"] == "model"

    result = infer(admin, "imdb").json()
    assert result["model_version"] == str(old)
    np.testing.assert_array_equal(v2_outputs(result), before)
    entries = index(admin)
    assert entries[("imdb", str(old))]["state"] == "READY"
    assert entries[("imdb", str(old + 1))]["state"] == "UNAVAILABLE"
    assert str(broken / "model.onnx") in entries[("imdb", str(old + 1))]["reason"]
    assert admin.get("/v2/models/imdb").json()["versions"] == [str(v) for v in versions("imdb")]

    # Mended, it loads.
    (broken / "model.onnx").write_bytes(
        (repository / "imdb" / str(old) / "model.onnx").read_bytes()
    )
    assert admin.post("/v2/repository/models/imdb/load", headers=AUTH).status_code == 200
    assert infer(admin, "imdb").json()["model_version"] == str(old + 1)
    assert index(admin)[("imdb", str(old + 1))]["state"] == "READY"


def test_loading_a_version_with_a_corrupt_vocabulary_names_the_file(admin, repository):
    old = newest("reuters")
    broken = add_version(repository, "reuters", old, old + 1)
    (broken / "vocabulary.json").write_text('{"words": ["a", "b"', "utf-8")

    answer = admin.post("/v2/repository/models/reuters/load", headers=AUTH)
    assert_error(answer, 400, str(broken / "vocabulary.json"))
    entry = index(admin)[("reuters", str(old + 1))]
    assert entry["state"] == "UNAVAILABLE"
    assert str(broken / "vocabulary.json") in entry["reason"]
    assert infer(admin, "reuters").json()["model_version"] == str(old)


@pytest.fixture
def admin_server(repository, tmp_path):
    """`python -m service` on a copy of the repository, with the repository API on."""
    process = ServerProcess(tmp_path, repository, SERVICE_ADMIN_API_KEY=KEY).wait_ready()
    yield process
    code = process.terminate()
    assert code == 0, process.output()


def half_sent(url: str, name: str):
    """A V2 request whose headers and first half of the body are sent; returns the socket and
    the rest of the body."""
    head, body = raw_request("POST", f"/v2/models/{name}/infer", json.dumps(
        v2_body(name, sample_rows(name))).encode())  # fmt: skip
    sock = connect(url)
    sock.sendall(head + body[: len(body) // 2])
    return sock, body[len(body) // 2 :]


@pytest.mark.parametrize("action", ["load", "unload"])
def test_a_request_half_sent_before_a_reload_or_unload_is_answered(admin_server, action):
    """Its version was looked up and leased with its headers: it finishes on that version."""
    url = admin_server.url
    expected = ort_predict("boston", newest("boston"), sample_rows("boston"))
    socks = [half_sent(url, "boston") for _ in range(4)]
    time.sleep(0.3)  # the headers have been read
    answer = httpx.post(f"{url}/v2/repository/models/boston/{action}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    for sock, rest in socks:
        sock.sendall(rest)
    for sock, _ in socks:
        answer = read_response(sock)
        assert answer.status == 200, answer.body
        np.testing.assert_allclose(v2_outputs(answer.json()), expected, rtol=1e-6, atol=1e-6)
    after = httpx.post(
        f"{url}/v2/models/boston/infer", json=v2_body("boston", sample_rows("boston"))
    )
    assert after.status_code == (200 if action == "load" else 404)


def test_reload_under_load_fails_no_request(admin_server):
    """Clients send their bodies in parts over raw sockets while the models are reloaded again
    and again: every request is answered 200 with the right rows."""
    url = admin_server.url
    expected = {n: ort_predict(n, newest(n), sample_rows(n)) for n in ("boston", "reuters")}
    failures: list[str] = []
    answered = {"count": 0}
    stop = threading.Event()

    def hammer(name: str) -> None:
        while not stop.is_set():
            try:
                sock, rest = half_sent(url, name)
                with sock:
                    time.sleep(0.005)
                    sock.sendall(rest)
                    answer = read_response(sock)
            except Exception as error:
                failures.append(f"{name}: {error!r}")
                return
            if answer.status != 200:
                failures.append(f"{name}: {answer.status} {answer.body!r}")
            elif np.abs(v2_outputs(answer.json()) - expected[name]).max() > 1e-6:
                failures.append(f"{name}: a different answer")
            answered["count"] += 1

    threads = [threading.Thread(target=hammer, args=(n,)) for n in ("boston", "reuters") * 2]
    for thread in threads:
        thread.start()
    try:
        while answered["count"] < len(threads):  # every thread is under way
            stop.wait(0.01)
        before = answered["count"]
        for _ in range(4):
            for name in ("boston", "reuters"):
                answer = httpx.post(f"{url}/v2/repository/models/{name}/load", headers=AUTH)
                assert answer.status_code == 200, answer.text
        during = answered["count"] - before
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert failures == []
    assert during > 0  # requests were answered while the models were reloaded
    entries = httpx.post(f"{url}/v2/repository/index", headers=AUTH).json()
    assert {e["state"] for e in entries} == {"READY"}
