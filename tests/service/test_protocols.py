"""The three protocols on the committed models, in process: Open Inference Protocol (V2), TF Serving
REST (V1), the typed endpoints; plus the OpenAPI docs, /metrics and request ids.

Every answer is compared with onnxruntime run directly on the version's `model.onnx`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service import __version__
from service.server import create_app
from tests.service.support import (
    HOUSES,
    MODEL_NAMES,
    NEWSWIRES,
    REVIEWS,
    TestClient,
    config,
    encoder,
    house_rows,
    newest,
    ort_predict,
    sample_rows,
    settings,
    v1_body,
    v2_body,
    v2_outputs,
    versions,
)

ALL_VERSIONS = [(name, v) for name in MODEL_NAMES for v in versions(name)]
TOLERANCE = 1e-6
# TensorFlow's DataType names of the model-config datatypes (the dtypes of V1 metadata).
TF_DTYPES = {"FP32": "DT_FLOAT", "FP64": "DT_DOUBLE", "INT32": "DT_INT32", "INT64": "DT_INT64"}


def assert_close(actual, expected):
    actual, expected = np.asarray(actual, np.float32), np.asarray(expected, np.float32)
    assert actual.shape == expected.shape
    assert np.abs(actual - expected).max() <= TOLERANCE


def test_the_repository_has_the_three_models():
    assert set(MODEL_NAMES) >= {"imdb", "reuters", "boston"}


# --- Open Inference Protocol (V2) -------------------------------------------------------------


def test_server_metadata(client):
    answer = client.get("/v2")
    assert answer.status_code == 200
    assert answer.json() == {
        "name": "dlwp-serving",
        "version": __version__,
        "extensions": ["model_repository", "model_configuration"],
    }


def test_live_and_ready(client):
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (200, {"ready": True})


def test_not_ready_before_the_models_are_loaded():
    app = create_app(settings())
    # Not used as a context manager: the lifespan (model loading) has not run.
    ready = TestClient(app).get("/v2/health/ready")
    assert (ready.status_code, ready.json()) == (503, {"ready": False})
    assert TestClient(app).get("/v2/health/live").status_code == 200


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_metadata_without_version_is_the_newest(client, name):
    answer = client.get(f"/v2/models/{name}")
    assert answer.status_code == 200
    metadata = answer.json()
    cfg = config(name)
    assert metadata["name"] == name
    assert metadata["versions"] == [str(v) for v in versions(name)]
    assert metadata["platform"] == "onnxruntime_onnx"
    assert metadata["inputs"] == [s.model_dump() for s in cfg.inputs]
    assert metadata["outputs"] == [s.model_dump() for s in cfg.outputs]
    assert metadata["execution_providers"] == ["CPUExecutionProvider"]


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS)
def test_model_metadata_of_a_version(client, name, version):
    answer = client.get(f"/v2/models/{name}/versions/{version}")
    assert answer.status_code == 200
    assert answer.json()["inputs"] == [s.model_dump() for s in config(name, version).inputs]


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_model_ready(client, name):
    answer = client.get(f"/v2/models/{name}/ready")
    assert answer.status_code == 200
    assert answer.json() == {"name": name, "version": str(newest(name)), "ready": True}
    for version in versions(name):
        answer = client.get(f"/v2/models/{name}/versions/{version}/ready")
        assert answer.json() == {"name": name, "version": str(version), "ready": True}


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("nested", [False, True], ids=["flat", "nested"])
def test_v2_infer(client, name, nested):
    rows = sample_rows(name)
    body = {"id": f"request-{name}", **v2_body(name, rows, nested=nested)}
    answer = client.post(f"/v2/models/{name}/infer", json=body)
    assert answer.status_code == 200, answer.text
    result = answer.json()
    output = config(name).outputs[0]
    assert result["model_name"] == name
    assert result["model_version"] == str(newest(name))
    assert result["id"] == f"request-{name}"
    (tensor,) = result["outputs"]
    assert tensor["name"] == output.name
    assert tensor["datatype"] == output.datatype
    assert tensor["shape"] == [len(rows), output.shape[-1]]
    assert_close(v2_outputs(result), ort_predict(name, newest(name), rows))


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_v2_infer_without_id_and_with_requested_output(client, name):
    rows = sample_rows(name)
    output = config(name).outputs[0].name
    body = {**v2_body(name, rows), "outputs": [{"name": output}]}
    result = client.post(f"/v2/models/{name}/infer", json=body).json()
    assert result["id"] is None
    assert [o["name"] for o in result["outputs"]] == [output]
    assert_close(v2_outputs(result), ort_predict(name, newest(name), rows))


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS)
def test_v2_infer_explicit_version(client, name, version):
    rows = sample_rows(name, version)
    answer = client.post(
        f"/v2/models/{name}/versions/{version}/infer", json=v2_body(name, rows, version)
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["model_version"] == str(version)
    assert_close(v2_outputs(answer.json()), ort_predict(name, version, rows))


def test_v2_versions_of_a_model_answer_differently(client):
    """Where a model has several versions, the version in the path really picks the graph."""
    name = next((n for n in MODEL_NAMES if len(versions(n)) > 1), None)
    if name is None:
        pytest.skip("no model has more than one version")
    answers = []
    for version in versions(name):
        body = v2_body(name, sample_rows(name, version), version)
        answers.append(client.post(f"/v2/models/{name}/versions/{version}/infer", json=body).json())
    assert len({tuple(a["outputs"][0]["data"]) for a in answers}) == len(answers)


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v2/models/boston/infer", lambda rows: v2_body("boston", rows)),
        ("/v1/models/boston:predict", lambda rows: {"instances": rows.tolist()}),
    ],
    ids=["v2", "v1"],
)
def test_protocol_bodies_need_no_content_type(client, path, body):
    """tritonclient sends none, nor does `requests.post(url, data=json.dumps(...))`."""
    rows = sample_rows("boston")
    answer = client.post(path, content=json.dumps(body(rows)).encode())
    assert "content-type" not in answer.request.headers
    assert answer.status_code == 200, answer.text
    result = answer.json()
    served = v2_outputs(result) if "outputs" in result else result["predictions"]
    assert_close(served, ort_predict("boston", newest("boston"), rows))


# --- TensorFlow Serving (V1) ------------------------------------------------------------------


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_v1_status(client, name):
    answer = client.get(f"/v1/models/{name}")
    assert answer.status_code == 200
    statuses = answer.json()["model_version_status"]
    assert [s["version"] for s in statuses] == [str(v) for v in sorted(versions(name))[::-1]]
    assert {s["state"] for s in statuses} == {"AVAILABLE"}
    assert {s["status"]["error_code"] for s in statuses} == {"OK"}
    one = client.get(f"/v1/models/{name}/versions/{versions(name)[0]}").json()
    assert [s["version"] for s in one["model_version_status"]] == [str(versions(name)[0])]


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS)
def test_v1_metadata(client, name, version):
    answer = client.get(f"/v1/models/{name}/versions/{version}/metadata")
    assert answer.status_code == 200
    metadata = answer.json()
    cfg = config(name, version)
    assert metadata["model_spec"]["name"] == name
    assert metadata["model_spec"]["version"] == str(version)
    signature = metadata["metadata"]["signature_def"]["signature_def"]["serving_default"]
    assert list(signature["inputs"]) == [spec.name for spec in cfg.inputs]
    for spec in cfg.inputs:
        dims = [int(d["size"]) for d in signature["inputs"][spec.name]["tensor_shape"]["dim"]]
        assert dims == spec.shape
        # The dtypes are TensorFlow's names of the config's datatypes, as TF Serving reports them.
        assert signature["inputs"][spec.name]["dtype"] == TF_DTYPES[spec.datatype]
    assert list(signature["outputs"]) == [cfg.outputs[0].name]
    output = signature["outputs"][cfg.outputs[0].name]
    assert output["dtype"] == TF_DTYPES[cfg.outputs[0].datatype]
    newest_answer = client.get(f"/v1/models/{name}/metadata").json()
    assert newest_answer["model_spec"]["version"] == str(newest(name))


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("form", ["instances", "instances_objects", "inputs_list", "inputs_dict"])
def test_v1_predict(client, name, form):
    rows = sample_rows(name)
    key = "predictions" if form.startswith("instances") else "outputs"
    answer = client.post(f"/v1/models/{name}:predict", json=v1_body(name, rows, form))
    assert answer.status_code == 200, answer.text
    assert list(answer.json()) == [key]
    assert_close(answer.json()[key], ort_predict(name, newest(name), rows))


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS)
def test_v1_predict_explicit_version(client, name, version):
    rows = sample_rows(name, version)
    answer = client.post(
        f"/v1/models/{name}/versions/{version}:predict",
        json=v1_body(name, rows, "instances", version),
    )
    assert answer.status_code == 200, answer.text
    assert_close(answer.json()["predictions"], ort_predict(name, version, rows))


# --- typed endpoints --------------------------------------------------------------------------


@pytest.mark.parametrize("version", versions("imdb"))
def test_imdb_reviews(client, version):
    answer = client.post(f"/api/imdb?version={version}", json={"reviews": REVIEWS})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    assert (result["model"], result["version"]) == ("imdb", version)
    negative, positive = config("imdb", version).labels
    expected = ort_predict("imdb", version, encoder("imdb", version).encode(REVIEWS))[:, 0]
    assert len(result["predictions"]) == len(REVIEWS)
    for prediction, p in zip(result["predictions"], expected, strict=True):
        assert prediction["label"] == (positive if p > 0.5 else negative)
        assert prediction["probability"] == pytest.approx(max(p, 1 - p), abs=TOLERANCE)
        assert prediction["scores"][positive] == pytest.approx(p, abs=TOLERANCE)
        assert sum(prediction["scores"].values()) == pytest.approx(1.0)
    # The unmistakable reviews are told apart by every version.
    assert [p["label"] for p in result["predictions"][:2]] == [positive, negative]


def test_imdb_without_version_is_the_newest(client):
    result = client.post("/api/imdb", json={"reviews": REVIEWS[:1]}).json()
    assert result["version"] == newest("imdb")


@pytest.mark.parametrize("top_k", [1, 3, 46])
def test_reuters_newswires(client, top_k):
    answer = client.post("/api/reuters", json={"newswires": NEWSWIRES, "top_k": top_k})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    version = newest("reuters")
    assert (result["model"], result["version"]) == ("reuters", version)
    labels = config("reuters", version).labels
    expected = ort_predict("reuters", version, encoder("reuters", version).encode(NEWSWIRES))
    for prediction, row in zip(result["predictions"], expected, strict=True):
        topics = prediction["topics"]
        assert len(topics) == min(top_k, len(labels))
        probabilities = [t["probability"] for t in topics]
        assert probabilities == sorted(probabilities, reverse=True)
        assert topics[0]["topic"] == labels[int(row.argmax())]
        for topic in topics:
            assert topic["probability"] == pytest.approx(
                row[labels.index(topic["topic"])], abs=TOLERANCE
            )
        if top_k == len(labels):
            assert sorted(t["topic"] for t in topics) == sorted(labels)
            assert sum(probabilities) == pytest.approx(1.0, abs=1e-4)
    # An earnings report is about earnings.
    assert result["predictions"][0]["topics"][0]["topic"] == "earn"


def test_reuters_word_ids_equal_the_texts(client):
    version = newest("reuters")
    text_encoder = encoder("reuters", version)
    ids = [text_encoder.word_ids(text) for text in NEWSWIRES]
    by_text = client.post("/api/reuters", json={"newswires": NEWSWIRES, "top_k": 5}).json()
    by_ids = client.post("/api/reuters", json={"word_ids": ids, "top_k": 5}).json()
    assert by_ids == by_text
    # Ids beyond the model's vocabulary count as out of vocabulary (2), as keras.datasets does.
    num_words = text_encoder.encoding.num_words
    beyond = [[*row, num_words + 5, num_words * 3] for row in ids]
    oov = [[*row, 2, 2] for row in ids]
    assert (
        client.post("/api/reuters", json={"word_ids": beyond}).json()
        == client.post("/api/reuters", json={"word_ids": oov}).json()
    )


def test_boston_houses(client):
    answer = client.post("/api/boston", json={"houses": HOUSES})
    assert answer.status_code == 200, answer.text
    result = answer.json()
    version = newest("boston")
    assert (result["model"], result["version"]) == ("boston", version)
    expected = ort_predict("boston", version, house_rows(HOUSES, version))[:, 0]
    unit = config("boston", version).target.unit
    assert [p["unit"] for p in result["predictions"]] == [unit] * len(HOUSES)
    assert_close([p["price"] for p in result["predictions"]], expected)
    # Features are matched by name, not by position.
    shuffled = [dict(sorted(house.items(), reverse=True)) for house in HOUSES]
    assert client.post("/api/boston", json={"houses": shuffled}).json() == result
    # A big house in a quiet town costs more than a small one near the highway.
    assert result["predictions"][2]["price"] > result["predictions"][1]["price"]


# --- documentation ----------------------------------------------------------------------------


def test_docs_page(client):
    answer = client.get("/docs")
    assert answer.status_code == 200
    assert "swagger-ui" in answer.text.lower()
    assert client.get("/", follow_redirects=False).status_code == 200


def test_openapi_shows_the_typed_schemas_with_examples(client):
    spec = client.get("/openapi.json").json()
    for path in ("/api/imdb", "/api/reuters", "/api/boston"):
        assert "post" in spec["paths"][path]
    schemas = spec["components"]["schemas"]
    reviews = schemas["ReviewsRequest"]
    assert reviews["properties"]["reviews"]["type"] == "array"
    assert reviews["examples"][0]["reviews"][0]
    assert schemas["NewswiresRequest"]["examples"][0]["newswires"][0]
    house = schemas["House"]
    features = [f.name for f in config("boston").encoding.features]
    assert sorted(house["properties"]) == sorted(features)
    assert sorted(house["required"]) == sorted(features)
    assert sorted(house["examples"][0]) == sorted(features)
    rm = house["properties"]["rm"]
    assert rm["minimum"] <= house["examples"][0]["rm"] <= rm["maximum"]
    assert rm["description"]
    for name in ("SentimentAnswer", "TopicsAnswer", "PricesAnswer", "ErrorResponse"):
        assert name in schemas
    assert "/v2/models/{model}/infer" in spec["paths"]
    assert "/v1/models/{model}:predict" in spec["paths"]


# --- metrics and request ids ------------------------------------------------------------------


def scrape(client) -> dict[tuple[str, tuple], float]:
    """Every sample of /metrics: (name, sorted labels) → value."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples, name, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics(client):
    name, version = "boston", str(newest("boston"))
    endpoint = "/v2/models/{model}/infer"
    before = scrape(client)
    body = v2_body(name, sample_rows(name))
    assert client.post(f"/v2/models/{name}/infer", json=body).status_code == 200
    assert client.post("/v2/models/nope/infer", json=body).status_code == 404
    after = scrape(client)

    def delta(metric, **labels):
        return value(after, metric, **labels) - value(before, metric, **labels)

    ok = {"endpoint": endpoint, "model": name, "version": version, "status": "200"}
    assert delta("service_requests_total", **ok) == 1
    missing = {"endpoint": endpoint, "model": "", "version": "", "status": "404"}
    assert delta("service_requests_total", **missing) == 1
    assert delta("service_request_duration_seconds_count", endpoint=endpoint, model=name) == 1
    assert delta("service_inference_duration_seconds_count", model=name, version=version) == 1
    assert delta("service_batch_size_rows_count", model=name, version=version) == 1
    assert delta("service_batch_size_rows_sum", model=name, version=version) == 3
    assert value(after, "service_batch_size_rows_bucket", model=name, version=version, le="+Inf")
    assert value(after, "service_queue_depth", model=name, version=version) == 0
    assert value(after, "service_models_loaded") == sum(len(versions(n)) for n in MODEL_NAMES)


def test_request_id_is_echoed(client):
    answer = client.get("/v2/health/live", headers={"X-Request-ID": "my-request-42"})
    assert answer.headers["x-request-id"] == "my-request-42"
    failed = client.get("/v2/models/nope", headers={"X-Request-ID": "failing-7"})
    assert failed.status_code == 404
    assert failed.headers["x-request-id"] == "failing-7"


def test_request_id_is_generated(client):
    ids = {client.get("/v2/health/live").headers["x-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)
    assert float(client.get("/v2/health/live").headers["x-process-time-ms"]) >= 0
