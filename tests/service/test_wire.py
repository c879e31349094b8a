"""The prediction routes read their bodies and write their answers themselves (service/api/wire.py):
their answers must still be what the OpenAPI document promises, and the document must still
describe their bodies."""

from __future__ import annotations

import pytest

from service.api.rest.typed import (
    HousesRequest,
    NewswiresRequest,
    PricesAnswer,
    ReviewsRequest,
    SentimentAnswer,
    TopicsAnswer,
)
from service.api.rest.v1 import PredictRequest, PredictResponse
from service.api.rest.v2 import InferenceRequest, InferenceResponse
from tests.service.support import (
    HOUSES,
    NEWSWIRES,
    REVIEWS,
    newest,
    sample_rows,
    v1_body,
    v2_body,
)

BOSTON_V2 = f"/v2/models/boston/versions/{newest('boston')}/infer"
ROUTES = [  # path, its OpenAPI template, a body, the body's model, the answer's model
    ("/api/imdb", "/api/imdb", {"reviews": REVIEWS}, ReviewsRequest, SentimentAnswer),
    ("/api/reuters", "/api/reuters", {"newswires": NEWSWIRES}, NewswiresRequest, TopicsAnswer),
    ("/api/boston", "/api/boston", {"houses": HOUSES}, HousesRequest, PricesAnswer),
    (
        BOSTON_V2,
        "/v2/models/{model}/versions/{version}/infer",
        {**v2_body("boston", sample_rows("boston")[:2]), "id": "a-7"},
        InferenceRequest,
        InferenceResponse,
    ),
    (
        "/v1/models/reuters:predict",
        "/v1/models/{model}:predict",
        v1_body("reuters", sample_rows("reuters")[:2], "instances"),
        PredictRequest,
        PredictResponse,
    ),
    (
        "/v1/models/boston:predict",
        "/v1/models/{model}:predict",
        {"inputs": sample_rows("boston")[:2].tolist()},
        PredictRequest,
        PredictResponse,
    ),
]
IDS = [f"{r[0]} {next(iter(r[2]))}" for r in ROUTES]


@pytest.fixture(scope="module")
def openapi(client) -> dict:
    return client.get("/openapi.json").json()


@pytest.mark.parametrize(
    ("path", "template", "body", "body_model", "answer_model"), ROUTES, ids=IDS
)
def test_answers_are_what_the_document_promises(
    client, path, template, body, body_model, answer_model
):
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"
    # Strict: a field of another type (an int for a float, a str for an int) or a missing one fails.
    parsed = answer_model.model_validate(answer.json(), strict=True)
    assert parsed.model_dump(exclude_none=True) == {
        k: v for k, v in answer.json().items() if v is not None
    }


@pytest.mark.parametrize(
    ("path", "template", "body", "body_model", "answer_model"), ROUTES, ids=IDS
)
def test_the_document_describes_each_body_and_answer(
    openapi, path, template, body, body_model, answer_model
):
    post = openapi["paths"][template]["post"]
    schema = post["requestBody"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": f"#/components/schemas/{body_model.__name__}"}
    documented = openapi["components"]["schemas"][body_model.__name__]
    assert set(documented["properties"]) == set(body_model.model_fields)
    answer = post["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": f"#/components/schemas/{answer_model.__name__}"}
    body_model.model_validate(body)  # the bodies above are ones the documented model accepts


def test_the_demo_page_finds_the_house_features(openapi):
    house = openapi["components"]["schemas"]["House"]
    assert len(house["properties"]) == 13
    assert house["properties"]["rm"]["minimum"] == 1


def test_version_parameters_are_whole_numbers_and_only_where_a_path_has_one(openapi):
    for path, operations in openapi["paths"].items():
        for method, operation in operations.items():
            versions = [p for p in operation.get("parameters", []) if p["name"] == "version"]
            if "{version}" in path:
                (parameter,) = versions
                assert parameter["in"] == "path", (method, path)
            elif path.startswith("/api/"):
                (parameter,) = versions  # the typed routes' ?version=
                assert parameter["in"] == "query", (method, path)
            else:
                assert versions == [], (method, path)  # no accidental ?version=
            for parameter in versions:
                schema = parameter["schema"]
                kinds = [schema, *schema.get("anyOf", [])]
                assert any(k.get("type") == "integer" and k.get("minimum") == 1 for k in kinds)


@pytest.mark.parametrize("path", ["/v2/models/{model}/infer", "/v1/models/{model}:predict",
                                  "/api/imdb", "/api/boston"])  # fmt: skip
def test_every_status_a_prediction_can_answer_is_documented(openapi, path):
    (operation,) = openapi["paths"][path].values()
    invalid = "422" if path.startswith("/api/") else "400"
    for status in (invalid, "404", "413", "415", "503", "504"):
        content = operation["responses"][status]["content"]["application/json"]
        assert content["schema"]["$ref"].endswith("/ErrorResponse"), (path, status)


def test_one_of_rules_are_in_the_schema(openapi):
    schemas = openapi["components"]["schemas"]
    for name, fields in (("PredictRequest", ["instances", "inputs"]),
                         ("NewswiresRequest", ["newswires", "word_ids"])):  # fmt: skip
        variants = schemas[name]["oneOf"]
        assert [v["required"] for v in variants] == [[f] for f in fields]
        for variant, field in zip(variants, fields, strict=True):
            assert "null" not in str(variant["properties"][field]["type"])  # null is neither
