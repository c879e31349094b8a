"""One table of bad requests. Each must get a 4xx in the one error shape,
`{"error": str, "details": [{"field": ..., "reason": ...}]}`, naming the field at fault; and the
service must still answer a good request afterwards.

The app under test has small limits, so that the cases are cheap."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pytest

from service.server import create_app
from tests.service.support import HOUSES, TestClient, newest, ort_predict, sample_rows, settings

MAX_BODY = 16 * 1024
MAX_ROWS = 4
MAX_CHARS = 200

BOSTON = f"/v2/models/boston/versions/{newest('boston')}/infer"
BOSTON_V1 = "/v1/models/boston:predict"
ROW = sample_rows("boston")[0].tolist()
HOUSE = HOUSES[0]


def tensor(**changes) -> dict:
    """A good V2 input tensor for Boston, with changes."""
    return {"name": "features", "shape": [1, 13], "datatype": "FP32", "data": ROW, **changes}


def v2(**changes) -> dict:
    return {"inputs": [tensor()], **changes}


def without(mapping: dict, key: str) -> dict:
    return {k: v for k, v in mapping.items() if k != key}


@dataclass
class Case:
    id: str
    path: str
    body: object  # JSON-able, or bytes sent as they are
    status: int
    field: str  # a field named by the answer's details
    method: str = "POST"
    headers: dict = field(default_factory=dict)
    chunked: bool = False


ROW_NAN = [*ROW[:5], float("nan"), *ROW[6:]]
NAN_TEXT = json.dumps(v2(inputs=[tensor(data=ROW_NAN)]))  # json.dumps writes the NaN literal
assert "NaN" in NAN_TEXT

CASES = [
    # -- shape
    Case("v2 shape does not fit the model", BOSTON,
         v2(inputs=[tensor(shape=[1, 12], data=ROW[:12])]), 400, "inputs[0]"),
    Case("v2 shape is 1-d", BOSTON, v2(inputs=[tensor(shape=[13])]), 400, "inputs[0].shape"),
    Case("v2 shape is negative", BOSTON, v2(inputs=[tensor(shape=[-1, 13])]), 400,
         "inputs[0].shape"),
    Case("v2 shape beyond any array", BOSTON,
         v2(inputs=[tensor(shape=[0, 4611686018427387904], data=[])]), 400, "inputs[0]"),
    Case("v2 shape with a huge row count", BOSTON,
         v2(inputs=[tensor(shape=[4611686018427387904, 13], data=[])]), 400, "inputs[0].shape"),
    Case("v2 data does not fill the shape", BOSTON, v2(inputs=[tensor(shape=[2, 13])]), 400,
         "inputs[0].data"),
    Case("v2 nested data is ragged", BOSTON,
         v2(inputs=[tensor(shape=[2, 13], data=[ROW, ROW[:12]])]), 400, "inputs[0].data"),
    Case("v1 row too short", BOSTON_V1, {"instances": [ROW[:12]]}, 400, "instances"),
    Case("v1 ragged rows", BOSTON_V1, {"instances": [ROW, ROW[:12]]}, 400, "instances"),
    Case("v1 flat instances", BOSTON_V1, {"instances": ROW}, 400, "instances"),
    # -- datatype and values
    Case("v2 wrong datatype", BOSTON, v2(inputs=[tensor(datatype="INT64")]), 400,
         "inputs[0].datatype"),
    Case("v2 unknown datatype", BOSTON, v2(inputs=[tensor(datatype="FLOAT")]), 400,
         "inputs[0].datatype"),
    Case("v2 NaN literal", BOSTON, NAN_TEXT.encode(), 400, "inputs[0]"),
    Case("v2 Infinity literal", BOSTON, NAN_TEXT.replace("NaN", "-Infinity").encode(), 400,
         "inputs[0]"),
    Case("v2 beyond float32", BOSTON, v2(inputs=[tensor(data=[1e39, *ROW[1:]])]), 400,
         "inputs[0]"),
    Case("boston beyond float32", "/api/boston", {"houses": [{**HOUSE, "crim": 1e39}]}, 422,
         "houses[0].crim"),
    Case("v2 strings in data", BOSTON, v2(inputs=[tensor(data=["1.0"] * 13)]), 400,
         "inputs[0].data"),
    Case("v2 null in data", BOSTON, v2(inputs=[tensor(data=[None, *ROW[1:]])]), 400,
         "inputs[0].data"),
    Case("v2 booleans in data", BOSTON, v2(inputs=[tensor(data=[True] * 13)]), 400,
         "inputs[0].data"),
    Case("v1 NaN literal", BOSTON_V1,
         json.dumps({"instances": [ROW_NAN]}).encode(), 400, "instances"),
    Case("v1 strings in rows", BOSTON_V1, {"instances": [["x"] * 13]}, 400, "instances"),
    Case("boston NaN literal", "/api/boston",
         json.dumps({"houses": [{**HOUSE, "rm": float("nan")}]}).encode(), 422, "houses[0].rm"),
    Case("boston string feature", "/api/boston", {"houses": [{**HOUSE, "rm": "six"}]}, 422,
         "houses[0].rm"),
    Case("reuters negative word id", "/api/reuters", {"word_ids": [[1, -4]]}, 422,
         "word_ids[0][1]"),
    # -- batch size
    Case("v2 empty batch", BOSTON, v2(inputs=[tensor(shape=[0, 13], data=[])]), 400,
         "inputs[0]"),
    Case("v1 empty batch", BOSTON_V1, {"instances": []}, 400, "instances"),
    Case("v2 no inputs", BOSTON, v2(inputs=[]), 400, "inputs"),
    Case("imdb no reviews", "/api/imdb", {"reviews": []}, 422, "reviews"),
    Case("reuters no newswires", "/api/reuters", {"newswires": []}, 422, "newswires"),
    Case("boston no houses", "/api/boston", {"houses": []}, 422, "houses"),
    # -- strict types: what JSON says is a string or a boolean is not a number
    Case("boston false for a number", "/api/boston", {"houses": [{**HOUSE, "lstat": False}]},
         422, "houses[0].lstat"),
    Case("boston a number in a string", "/api/boston", {"houses": [{**HOUSE, "rm": "6.4"}]},
         422, "houses[0].rm"),
    Case("reuters false for a word id", "/api/reuters", {"word_ids": [[False]]}, 422,
         "word_ids[0][0]"),
    Case("reuters top_k in a string", "/api/reuters", {"newswires": ["a"], "top_k": "3"}, 422,
         "top_k"),
    Case("reuters both null", "/api/reuters", {"newswires": None, "word_ids": None}, 422,
         "newswires"),
    Case("v2 a boolean among numbers", BOSTON, v2(inputs=[tensor(data=[True, *ROW[1:]])]), 400,
         "inputs[0].data"),
    Case("v2 a boolean among rows", BOSTON,
         v2(inputs=[tensor(shape=[2, 13], data=[ROW, [False, *ROW[1:]]])]), 400,
         "inputs[0].data"),
    Case("v1 {}", BOSTON_V1, {}, 400, "body"),
    Case("v2 too many rows", BOSTON,
         v2(inputs=[tensor(shape=[MAX_ROWS + 1, 13], data=ROW * (MAX_ROWS + 1))]), 400,
         "inputs[0].shape"),
    Case("v1 too many rows", BOSTON_V1, {"instances": [ROW] * (MAX_ROWS + 1)}, 400, "instances"),
    Case("imdb too many reviews", "/api/imdb", {"reviews": ["good"] * (MAX_ROWS + 1)}, 422,
         "reviews"),
    Case("reuters too many newswires", "/api/reuters", {"word_ids": [[1, 5]] * (MAX_ROWS + 1)},
         422, "word_ids"),
    Case("boston too many houses", "/api/boston", {"houses": [HOUSE] * (MAX_ROWS + 1)}, 422,
         "houses"),
    # -- size
    Case("body over the limit (Content-Length)", "/api/imdb",
         {"reviews": ["word " * (MAX_BODY // 5)]}, 413, "body"),
    Case("body over the limit (chunked)", "/api/imdb",
         {"reviews": ["word " * (MAX_BODY // 5)]}, 413, "body", chunked=True),
    Case("review over max_text_chars", "/api/imdb",
         {"reviews": ["fine", "x" * (MAX_CHARS + 1)]}, 422, "reviews[1]"),
    Case("newswire over max_text_chars", "/api/reuters",
         {"newswires": ["y" * (MAX_CHARS + 1)]}, 422, "newswires[0]"),
    Case("word ids over max_text_chars", "/api/reuters",
         {"word_ids": [[1] * (MAX_CHARS + 1)]}, 422, "word_ids[0]"),
    # -- fields
    Case("v2 missing inputs", BOSTON, {"id": "x"}, 400, "inputs"),
    Case("v2 input missing datatype", BOSTON, v2(inputs=[without(tensor(), "datatype")]), 400,
         "inputs[0].datatype"),
    Case("v2 input missing data", BOSTON, v2(inputs=[without(tensor(), "data")]), 400,
         "inputs[0].data"),
    Case("v2 extra field", BOSTON, v2(priority=1), 400, "priority"),
    Case("v2 extra input field", BOSTON, v2(inputs=[tensor(contents={})]), 400,
         "inputs[0].contents"),
    Case("v1 extra field", BOSTON_V1, {"instances": [ROW], "extra": 1}, 400, "extra"),
    Case("imdb missing reviews", "/api/imdb", {}, 422, "reviews"),
    Case("imdb extra field", "/api/imdb", {"reviews": ["good"], "top_k": 2}, 422, "top_k"),
    Case("imdb review not a string", "/api/imdb", {"reviews": [42]}, 422, "reviews[0]"),
    Case("reuters top_k too large", "/api/reuters", {"newswires": ["a"], "top_k": 47}, 422,
         "top_k"),
    Case("reuters both texts and ids", "/api/reuters",
         {"newswires": ["a"], "word_ids": [[1]]}, 422, "newswires"),
    Case("reuters neither texts nor ids", "/api/reuters", {"top_k": 2}, 422, "newswires"),
    Case("boston missing feature", "/api/boston", {"houses": [without(HOUSE, "lstat")]}, 422,
         "houses[0].lstat"),
    Case("boston unknown feature", "/api/boston", {"houses": [{**HOUSE, "garage": 1}]}, 422,
         "houses[0].garage"),
    Case("boston feature below its range", "/api/boston",
         {"houses": [HOUSE, {**HOUSE, "rm": 0.5}]}, 422, "houses[1].rm"),
    Case("boston feature above its range", "/api/boston", {"houses": [{**HOUSE, "zn": 101}]},
         422, "houses[0].zn"),
    Case("not JSON", BOSTON, b'{"inputs": [', 400, "body"),
    Case("body not an object", "/api/imdb", ["good"], 422, "body"),
    Case("non-UTF-8 body (v2)", BOSTON, b'{"id": "caf\xe9", "inputs": []}', 400, "body"),
    Case("non-UTF-8 body (typed)", "/api/imdb", b'{"reviews": ["caf\xe9 \xff"]}', 422, "body"),
    Case("typed body not labelled JSON", "/api/imdb", {"reviews": ["good"]}, 415, "body",
         headers={"content-type": "text/plain"}),
    Case("empty body", BOSTON, b"", 400, "body"),
    # -- models, versions, outputs
    Case("v2 unknown model", "/v2/models/nope/infer", v2(), 404, "model"),
    Case("v2 unknown model metadata", "/v2/models/nope", None, 404, "model", method="GET"),
    Case("v2 unknown version", "/v2/models/boston/versions/999/infer", v2(), 404, "version"),
    Case("v2 unknown version ready", "/v2/models/boston/versions/999/ready", None, 404,
         "version", method="GET"),

    Case("v1 unknown model", "/v1/models/nope:predict", {"instances": [ROW]}, 404, "model"),
    Case("v1 unknown model status", "/v1/models/nope", None, 404, "model", method="GET"),
    Case("v1 unknown version", "/v1/models/boston/versions/999:predict", {"instances": [ROW]},
         404, "version"),
    Case("v2 version 0", "/v2/models/boston/versions/0/infer", v2(), 400, "version"),
    Case("v1 version beyond the largest", "/v1/models/boston/versions/1000000000/metadata", None,
         400, "version", method="GET"),
    Case("typed unknown version", "/api/boston?version=999", {"houses": [HOUSE]}, 404,
         "version"),
    Case("typed non-numeric version", "/api/boston?version=new", {"houses": [HOUSE]}, 422,
         "version"),

    *[Case(f"typed version {text!r}", f"/api/boston?version={text}", {"houses": [HOUSE]}, 422,
           "version") for text in ("1_0", "+1", "%201", "\u0661", "0")],
    Case("v2 unknown output", BOSTON, v2(outputs=[{"name": "value"}]), 400, "outputs"),
    Case("v2 binary size and JSON data", BOSTON,
         v2(inputs=[tensor(parameters={"binary_data_size": 52})]), 400, "inputs[0].parameters"),
    Case("v2 binary size not a number", BOSTON,
         v2(inputs=[without(tensor(parameters={"binary_data_size": "52"}), "data")]), 400,
         "inputs[0].parameters"),
    Case("v2 binary size without binary data", BOSTON,
         v2(inputs=[without(tensor(parameters={"binary_data_size": 52}), "data")]), 400,
         "inputs[0]"),
    Case("v2 wrong input name", BOSTON, v2(inputs=[tensor(name="x")]), 400, "inputs"),
    Case("v2 two inputs", BOSTON, v2(inputs=[tensor(), tensor()]), 400, "inputs"),
    Case("v1 wrong input name", BOSTON_V1, {"inputs": {"x": [ROW]}}, 400, "inputs"),
    Case("v1 wrong instance key", BOSTON_V1, {"instances": [{"x": ROW}]}, 400, "instances"),
    Case("v1 unknown signature", BOSTON_V1,
         {"signature_name": "classify", "instances": [ROW]}, 400, "signature_name"),
    Case("v1 both instances and inputs", BOSTON_V1, {"instances": [ROW], "inputs": [ROW]}, 400,
         "body"),
    Case("v1 neither instances nor inputs", BOSTON_V1, {"signature_name": "serving_default"},
         400, "body"),
    Case("boston house without features", "/api/boston", {"houses": [{}]}, 422,
         "houses[0].crim"),
]  # fmt: skip


@pytest.fixture(scope="module")
def strict_client():
    app = create_app(
        settings(max_body_bytes=MAX_BODY, max_batch_rows=MAX_ROWS, max_text_chars=MAX_CHARS)
    )
    with TestClient(app) as test_client:
        yield test_client


def send(client, case: Case):
    headers = dict(case.headers)
    if case.body is None:
        return client.request(case.method, case.path, headers=headers)
    content = case.body if isinstance(case.body, bytes) else json.dumps(case.body).encode()
    headers.setdefault("content-type", "application/json")
    if case.chunked:
        chunks = [content[i : i + 1024] for i in range(0, len(content), 1024)]
        return client.request(case.method, case.path, content=iter(chunks), headers=headers)
    return client.request(case.method, case.path, content=content, headers=headers)


def test_the_cases_have_distinct_names():
    assert len({c.id for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(strict_client, case):
    answer = send(strict_client, case)
    assert answer.status_code == case.status, answer.text
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert set(body) == {"error", "details"}, body
    assert isinstance(body["error"], str)
    assert body["error"]
    assert body["details"], body
    for detail in body["details"]:
        assert set(detail) == {"field", "reason"}
        assert isinstance(detail["reason"], str)
        assert detail["reason"]
    fields = [d["field"] for d in body["details"]]
    assert case.field in fields, body
    assert case.field in body["error"]


def test_still_serving_after_the_bad_inputs(strict_client):
    for case in CASES:
        send(strict_client, case)
    rows = sample_rows("boston")[:MAX_ROWS]
    answer = strict_client.post(
        BOSTON, json={"inputs": [tensor(shape=[len(rows), 13], data=rows.ravel().tolist())]}
    )
    assert answer.status_code == 200, answer.text
    expected = ort_predict("boston", newest("boston"), rows)
    got = np.asarray(answer.json()["outputs"][0]["data"], np.float32).reshape(expected.shape)
    assert np.abs(got - expected).max() <= 1e-6
    assert strict_client.post("/api/imdb", json={"reviews": ["a fine film"]}).status_code == 200
    assert strict_client.get("/v2/health/ready").status_code == 200


@pytest.mark.parametrize(("size", "status"), [(MAX_BODY, 200), (MAX_BODY + 1, 413)])
def test_the_body_limit_is_exact(strict_client, size, status):
    content = '{"reviews": ["a fine film"]}'
    content = content[:-1] + " " * (size - len(content)) + "}"  # JSON allows the whitespace
    assert len(content.encode()) == size
    answer = strict_client.post(
        "/api/imdb", content=content, headers={"content-type": "application/json"}
    )
    assert answer.status_code == status, answer.text


@pytest.mark.parametrize("text", ["latest", "1_0", "+1", "%201", "\u0661", "0.1.0", "1e3"])
def test_a_version_in_a_path_is_digits_or_no_route(strict_client, text):
    """Only digits make a version path (the OpenAPI document says integer): anything else is a
    path the service does not have."""
    answer = strict_client.post(f"/v2/models/boston/versions/{text}/infer", json=v2())
    assert answer.status_code == 404, answer.text
    assert set(answer.json()) == {"error", "details"}
    get = strict_client.get(f"/v1/models/boston/versions/{text}")
    assert get.status_code == 404, get.text


def test_a_predict_path_is_not_a_version(strict_client):
    answer = strict_client.get("/v1/models/boston/versions/1:predict")
    assert answer.status_code == 405, answer.text
