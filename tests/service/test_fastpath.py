"""The prediction routes' direct path (`service.api.rest.fastpath`) answers exactly as FastAPI's routing
of the same routes does, good requests and bad, and leaves to FastAPI what it must check."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest

import service.api.rest.app
from service.api.rest.fastpath import PredictionPath
from service.server import create_app
from tests.service.support import TestClient, sample_rows, settings, v2_body

HOUSE = {"crim": 0.1, "zn": 0.0, "indus": 8.0, "chas": 0.0, "nox": 0.5, "rm": 6.4, "age": 60.0,
         "dis": 4.0, "rad": 4.0, "tax": 300.0, "ptratio": 18.0, "b": 390.0, "lstat": 9.0}  # fmt: skip
BOSTON = v2_body("boston", sample_rows("boston"))
BINARY_ROWS = sample_rows("boston")[:2].astype(np.float32)
BINARY_HEADER = json.dumps({"inputs": [{
    "name": "features", "shape": [2, 13], "datatype": "FP32",
    "parameters": {"binary_data_size": BINARY_ROWS.nbytes}}]}).encode()  # fmt: skip
JSON = {"content-type": "application/json"}

# (method, path, body bytes, headers, taken directly): every prediction protocol, good and bad
REQUESTS = [
    ("POST", "/v2/models/boston/infer", json.dumps(BOSTON).encode(), JSON, True),
    ("POST", "/v2/models/boston/versions/1/infer", json.dumps(BOSTON).encode(), JSON, True),
    ("POST", "/v2/models/boston/versions/0/infer", json.dumps(BOSTON).encode(), JSON, False),
    ("POST", "/v2/models/boston/versions/01/infer", json.dumps(BOSTON).encode(), JSON, True),
    ("POST", "/v2/models/boston/versions/9/infer", json.dumps(BOSTON).encode(), JSON, True),
    ("POST", "/v2/models/boston/versions/1000000000/infer", b"{}", JSON, False),
    ("POST", "/v2/models/boston/versions/x/infer", b"{}", JSON, False),
    ("POST", "/v2/models/nope/infer", json.dumps(BOSTON).encode(), JSON, True),
    ("POST", "/v2/models/boston/infer", b'{"inputs": [', JSON, True),
    ("POST", "/v2/models/boston/infer", b'{"inputs": []}', {}, True),
    (
        "POST",
        "/v2/models/boston/infer",
        gzip.compress(json.dumps(BOSTON).encode()),
        {**JSON, "content-encoding": "gzip", "accept-encoding": "gzip"},
        True,
    ),
    (
        "POST",
        "/v2/models/boston/infer",
        BINARY_HEADER + BINARY_ROWS.tobytes(),
        {"inference-header-content-length": str(len(BINARY_HEADER))},
        True,
    ),
    (
        "POST",
        "/v2/models/boston/infer",
        BINARY_HEADER + b"short",
        {"inference-header-content-length": str(len(BINARY_HEADER))},
        True,
    ),
    ("GET", "/v2/models/boston/infer", b"", {}, False),
    ("POST", "/v1/models/boston:predict", json.dumps({"instances": [HOUSE]}).encode(), JSON, True),
    (
        "POST",
        "/v1/models/boston/versions/2:predict",
        json.dumps({"instances": sample_rows("boston").tolist()}).encode(),
        JSON,
        True,
    ),
    ("POST", "/v1/models/boston:predict", b"{}", JSON, True),
    ("POST", "/api/boston", json.dumps({"houses": [HOUSE]}).encode(), JSON, True),
    ("POST", "/api/boston?version=1", json.dumps({"houses": [HOUSE]}).encode(), JSON, False),
    ("POST", "/api/boston?version=0", json.dumps({"houses": [HOUSE]}).encode(), JSON, False),
    ("POST", "/api/boston", json.dumps({"houses": [{**HOUSE, "rm": "6"}]}).encode(), JSON, True),
    ("POST", "/api/boston", json.dumps({"houses": [HOUSE]}).encode(), {}, True),
    ("POST", "/api/imdb", json.dumps({"reviews": ["A fine film."]}).encode(), JSON, True),
    ("POST", "/api/reuters", json.dumps({"newswires": ["oil prices rose"]}).encode(), JSON, True),
    (
        "POST",
        "/api/reuters",
        json.dumps({"word_ids": [[1, 5, 9]], "top_k": 2}).encode(),
        JSON,
        True,
    ),
    ("POST", "/v2/repository/models/boston/load", b"", {}, False),
]


@pytest.fixture(scope="module")
def clients(monkeypatch_module):
    # Starlette builds an app's middleware stack on its first request: built here, at once.
    direct = create_app(settings())
    direct.middleware_stack = direct.build_middleware_stack()
    monkeypatch_module.setattr(
        service.api.rest.app, "PredictionPath", lambda app, routers, rest: rest
    )
    through_fastapi = create_app(settings())
    through_fastapi.middleware_stack = through_fastapi.build_middleware_stack()
    with TestClient(direct) as fast, TestClient(through_fastapi) as slow:
        yield fast, slow


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.mark.parametrize(("method", "path", "body", "headers", "direct"), REQUESTS)
def test_the_direct_path_answers_as_fastapi_does(clients, method, path, body, headers, direct):
    fast, slow = clients
    answers = [c.request(method, path, content=body, headers=headers) for c in (fast, slow)]
    assert answers[0].status_code == answers[1].status_code, [a.text for a in answers]
    assert answers[0].content == answers[1].content
    for name in ("content-type", "content-encoding", "retry-after", "allow",
                 "inference-header-content-length"):  # fmt: skip
        assert answers[0].headers.get(name) == answers[1].headers.get(name), name


@pytest.mark.parametrize(("method", "path", "body", "headers", "direct"), REQUESTS)
def test_what_the_direct_path_takes(clients, method, path, body, headers, direct):
    """Only whole matches of the prediction routes, with nothing for FastAPI to check."""
    fast, _ = clients
    dispatch = fast.app.middleware_stack.app
    assert isinstance(dispatch, PredictionPath)
    route_path, _, query = path.partition("?")
    scope = {"type": "http", "method": method, "path": route_path, "root_path": "",
             "query_string": query.encode()}  # fmt: skip
    assert (dispatch._route(scope) is not None) == direct


def test_metrics_name_the_route_on_the_direct_path(clients):
    fast, _ = clients
    fast.post("/v2/models/boston/versions/1/infer", json=BOSTON)
    text = fast.get("/metrics").text
    assert (
        'service_requests_total{endpoint="/v2/models/{model}/versions/{version:int}/infer",'
        'model="boston",status="200",version="1"}'
    ) in text
