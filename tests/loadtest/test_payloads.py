"""The load tests' payloads (`loadtest.harness.payloads`) as the service answers them, for a newest
text version of either form: dense (the committed version 2, copied as the newest) and sparse (the
same weights rewritten to take ids and weights, `tests.service.sparse_models`). Every sample's V2
JSON body, a V2 body of several rows, the wrk workload's V2 binary files, its V1 body and its typed
body are answered 200 with the committed version's own answer (onnxruntime in process, on rows
encoded here)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import numpy as np
import pytest

from contract.text import WordIds
from loadtest.harness import payloads
from loadtest.harness.wrk import write_workloads
from tests.service.sparse_models import add_sparse_version
from tests.service.support import (
    ServerProcess,
    add_version,
    copy_repository,
    encoder,
    ort_predict,
)

COMMITTED, NEWEST = 2, 9  # the committed version whose weights every newest version has
TEXT_MODELS = ("imdb", "reuters")


@pytest.fixture(scope="module", params=["dense", "sparse"])
def form(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def repository(form, tmp_path_factory) -> Path:
    root = copy_repository(tmp_path_factory.mktemp(form) / "models")
    for name in TEXT_MODELS:
        make = add_version if form == "dense" else add_sparse_version
        make(root, name, COMMITTED, NEWEST)
    return root


@pytest.fixture(scope="module")
def built(repository):
    """The payloads module building its bodies for `repository` ($LOADTEST_MODELS)."""
    cached = (payloads.model_config, payloads.encoder, payloads.rows)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(payloads, "MODELS", repository)
        for function in cached:
            function.cache_clear()
        yield payloads
    for function in cached:
        function.cache_clear()


@pytest.fixture(scope="module")
def server(repository, tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("log"), repository).wait_ready()
    yield process
    assert process.terminate() == 0, process.output()


def expected(name: str, texts: bool = False) -> np.ndarray:
    """The committed version's answer for each sample: its text, or (Reuters' tensor bodies) its
    word ids, capped as keras.datasets caps them."""
    text_encoder = encoder(name, COMMITTED)
    samples = payloads.SAMPLES[name]
    if texts or name == "imdb":
        ids = text_encoder.word_ids_batch([s["text"] for s in samples])
    else:
        encoding = text_encoder.encoding
        ids = WordIds.from_sequences([s["word_ids"] for s in samples])
        ids = ids.capped(encoding.num_words, encoding.oov_id)
    return ort_predict(name, COMMITTED, text_encoder.vectorize(ids))


def post(server, path: str, body: dict) -> dict:
    answer = httpx.post(f"{server.url}{path}", json=body, timeout=60)
    assert answer.status_code == 200, answer.text[:500]
    return answer.json()


def outputs(answer: dict) -> np.ndarray:
    (output,) = answer["outputs"]
    return np.asarray(output["data"], np.float32).reshape(output["shape"])


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_the_payloads_are_built_for_the_newest_version_in_its_form(built, form, name):
    assert built.v2_path(name) == f"/v2/models/{name}/versions/{NEWEST}/infer"
    inputs = built.v2_body(name, built.rows(name)[0])["inputs"]
    if form == "sparse":
        wanted = {"imdb": ["ids"], "reuters": ["ids", "weights"]}[name]
        assert [tensor["name"] for tensor in inputs] == wanted
        assert inputs[0]["datatype"] == "INT64"
    else:
        assert [(t["name"], t["shape"]) for t in inputs] == [
            ("encoded_text", [1, encoder(name, COMMITTED).encoding.dim])
        ]


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_v2_json_bodies_are_answered_as_the_committed_version(built, server, name):
    answers = [outputs(post(server, built.v2_path(name), b)) for b in built.v2_bodies(name)]
    np.testing.assert_allclose(np.concatenate(answers), expected(name), atol=1e-5)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_a_v2_body_of_several_rows_is_answered_row_by_row(built, server, name):
    """Rows of different lengths in one body: a sparse version's padded to the longest."""
    body = built.v2_batch_body(name, built.rows(name)[:8])
    answer = outputs(post(server, built.v2_path(name), body))
    np.testing.assert_allclose(answer, expected(name)[:8], atol=1e-5)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_the_binary_workload_is_answered_as_the_committed_version(built, server, name, tmp_path):
    (workload,) = write_workloads([name], tmp_path, ("binary",))
    path, *files = workload.arguments
    answers = []
    for file in files:
        header_length = file.rsplit("-", 1)[1].removesuffix(".bin")
        headers = {**workload.headers, "Inference-Header-Content-Length": header_length}
        answer = httpx.post(f"{server.url}{path}", content=Path(file).read_bytes(),
                            headers=headers, timeout=60)  # fmt: skip
        assert answer.status_code == 200, answer.text[:500]
        length = int(answer.headers["inference-header-content-length"])
        (output,) = json.loads(answer.content[:length])["outputs"]
        raw = np.frombuffer(answer.content[length:], "<f4")
        answers.append(raw.reshape(output["shape"]))
    np.testing.assert_allclose(np.concatenate(answers), expected(name), atol=1e-5)


@pytest.mark.parametrize("name", TEXT_MODELS)
def test_v1_bodies_are_answered_as_the_committed_version(built, server, name):
    answers = [
        post(server, built.v1_path(name), built.v1_body(name, row))["predictions"]
        for row in built.rows(name)
    ]
    np.testing.assert_allclose(np.concatenate(answers), expected(name), atol=1e-5)


def test_typed_bodies_are_answered_as_the_committed_version(built, server):
    imdb = [post(server, built.TYPED_PATHS["imdb"], b) for b in built.typed_bodies("imdb")]
    assert {a["version"] for a in imdb} == {NEWEST}
    positive = [a["predictions"][0]["scores"]["positive"] for a in imdb]
    np.testing.assert_allclose(positive, expected("imdb", texts=True)[:, 0], atol=1e-5)
    reuters = [post(server, built.TYPED_PATHS["reuters"], b) for b in built.typed_bodies("reuters")]
    top = [a["predictions"][0]["topics"][0]["probability"] for a in reuters]
    np.testing.assert_allclose(top, expected("reuters", texts=True).max(axis=1), atol=1e-5)
