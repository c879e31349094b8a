"""Typed endpoints generated from the config (service/api/rest/typed/): the book models' routes and
documents as they were, a route of its own for any other model with an encoding, answered in its
own words, and the generic route for models that have none of their own (loaded later, or whose
schema names are taken)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from contract.catalog import BOSTON_ENDPOINT, BOSTON_EXAMPLE, IMDB_ENDPOINT, REUTERS_ENDPOINT
from contract.config import read_config
from contract.endpoint import TabularEndpoint, TextEndpoint
from service.api.rest.fastpath import PredictionPath
from service.api.rest.typed.interface import camel, plural
from service.server import create_app
from tests.service.support import (
    HOUSES,
    MODELS,
    REVIEWS,
    TestClient,
    copy_repository,
    derive_model,
    house_rows,
    ort_predict,
    settings,
    versions,
)

SNAPSHOT = Path(__file__).parent / "snapshots" / "typed_openapi.json"
KEY = "typed-admin-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# homes: Boston's graph (13 columns), two of its features renamed and described anew.
RENAMED = {"crim": "town_crime", "rm": "average_rooms"}
DESCRIBED = {"town_crime": "Crimes per resident of the town", "average_rooms": "Rooms per home"}


def typed_part(openapi: dict, paths) -> dict:
    """The operations of `paths` and every schema they refer to, directly or not."""
    schemas, found = openapi["components"]["schemas"], {}

    def walk(node) -> None:
        if isinstance(node, dict):
            if "$ref" in node:
                name = node["$ref"].rsplit("/", 1)[-1]
                if name not in found:
                    found[name] = schemas[name]
                    walk(schemas[name])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    operations = {path: openapi["paths"][path] for path in paths}
    walk(operations)
    return {"paths": operations, "schemas": dict(sorted(found.items()))}


def renamed(house: dict) -> dict:
    return {RENAMED.get(name, name): value for name, value in house.items()}


def homes_encoding(root: Path) -> dict:
    encoding = read_config(root / "boston" / "2").encoding
    features = [
        f.model_copy(update={"name": RENAMED[f.name], "description": DESCRIBED[RENAMED[f.name]]})
        if f.name in RENAMED
        else f
        for f in encoding.features
    ]
    endpoint = TabularEndpoint(example=renamed(BOSTON_EXAMPLE))
    return {"kind": "features", "features": features, "endpoint": endpoint}


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = copy_repository(tmp_path_factory.mktemp("typed") / "models", ["boston", "imdb"])
    derive_model(root, "boston", 2, "homes", encoding=homes_encoding(root))
    derive_model(root, "boston", 2, "plain", encoding=None)  # tensors only
    # Its generic names (HousesRequest, …) would be boston's: it keeps the generic route only.
    boston = read_config(root / "boston" / "2").encoding
    derive_model(
        root,
        "boston",
        2,
        "houses",
        encoding=boston.model_copy(update={"endpoint": TabularEndpoint()}),
    )
    imdb = read_config(root / "imdb" / "1").encoding
    critics = imdb.model_copy(update={"endpoint": TextEndpoint()})
    derive_model(root, "imdb", 1, "critics", labels=["bad", "good"], encoding=critics)
    return root


@pytest.fixture(scope="module")
def app(repository):
    with TestClient(create_app(settings(model_repository=repository))) as client:
        yield client


@pytest.fixture(scope="module")
def openapi(app) -> dict:
    return app.get("/openapi.json").json()


def post(client, path: str, body: dict) -> dict:
    answer = client.post(path, json=body)
    assert answer.status_code == 200, answer.text
    return answer.json()


def prices(answer: dict) -> list[float]:
    return [p["price"] for p in answer["predictions"]]


def test_the_book_models_routes_and_schemas_are_as_before(client):
    expected = json.loads(SNAPSHOT.read_text("utf-8"))
    document = client.get("/openapi.json").json()
    assert typed_part(document, expected["paths"]) == expected


@pytest.mark.parametrize(
    ("name", "endpoint"),
    [("imdb", IMDB_ENDPOINT), ("reuters", REUTERS_ENDPOINT), ("boston", BOSTON_ENDPOINT)],
)
def test_every_committed_version_names_the_catalogue_s_endpoint(name, endpoint):
    """The book models' words are in their configs (what the service reads) and the catalogue
    (what the trainer writes, and what `service.api.rest.typed` exports their schemas from)."""
    for version in versions(name):
        assert read_config(MODELS / name / str(version)).encoding.endpoint == endpoint


def test_another_model_s_names_leave_the_book_models_alone(openapi):
    expected = json.loads(SNAPSHOT.read_text("utf-8"))
    paths = [p for p in expected["paths"] if p != "/api/reuters"]  # not in this repository
    schemas = {k: v for k, v in expected["schemas"].items() if "Topic" not in k and "News" not in k}
    assert typed_part(openapi, paths) == {
        "paths": {p: expected["paths"][p] for p in paths},
        "schemas": schemas,
    }


def test_named_features_get_a_route_with_their_names(openapi, repository):
    post_ = openapi["paths"]["/api/homes"]["post"]
    assert post_["operationId"] == "homes_predict_api_homes_post"
    assert post_["description"] == read_config(repository / "homes" / "1").description
    body = post_["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/HomesRequest"}
    answer = post_["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/HomesAnswer"}
    schemas = openapi["components"]["schemas"]
    rows = schemas["HomesRequest"]["properties"]["rows"]
    assert rows["items"] == {"$ref": "#/components/schemas/HomesRow"}
    assert rows["description"] == "Rows with the 13 named features"
    row = schemas["HomesRow"]
    assert row["required"] == [RENAMED.get(f, f) for f in BOSTON_EXAMPLE]
    assert row["properties"]["town_crime"]["description"] == DESCRIBED["town_crime"]
    assert (
        row["properties"]["average_rooms"]["description"] == DESCRIBED["average_rooms"] + " (rooms)"
    )
    assert row["properties"]["average_rooms"]["minimum"] == 1
    assert "crim" not in row["properties"]
    assert row["examples"] == [renamed(BOSTON_EXAMPLE)]
    prediction = schemas["HomesAnswer"]["properties"]["predictions"]["items"]
    assert prediction == {"$ref": "#/components/schemas/HomesPrediction"}
    assert list(schemas["HomesPrediction"]["properties"]) == ["price", "unit"]


def test_named_features_answer_boston_s_prices_for_the_same_rows(app):
    boston = post(app, "/api/boston", {"houses": HOUSES})
    homes = post(app, "/api/homes", {"rows": [renamed(h) for h in HOUSES]})
    assert (homes["model"], homes["version"]) == ("homes", 1)
    assert prices(homes) == pytest.approx(prices(boston), abs=1e-5)
    expected = ort_predict("boston", 2, house_rows(HOUSES, 2))[:, 0]  # onnxruntime itself
    assert prices(homes) == pytest.approx(expected.tolist(), abs=1e-5)
    assert homes["predictions"][0] == {"price": prices(homes)[0], "unit": "$1000s"}
    # Its own names only: boston's are refused, naming the field.
    refused = app.post("/api/homes", json={"rows": HOUSES})
    assert refused.status_code == 422
    assert "rows[0].town_crime" in [d["field"] for d in refused.json()["details"]]


def test_texts_with_the_generic_words_and_labels_of_their_own(app, openapi):
    critics = post(app, "/api/critics", {"texts": REVIEWS})
    imdb = post(app, "/api/imdb?version=1", {"reviews": REVIEWS})  # the same graph
    for mine, book in zip(critics["predictions"], imdb["predictions"], strict=True):
        assert mine["label"] == {"negative": "bad", "positive": "good"}[book["label"]]
        assert mine["probability"] == pytest.approx(book["probability"], abs=1e-6)
        assert list(mine["scores"]) == ["bad", "good"]
    schemas = openapi["components"]["schemas"]
    assert schemas["CriticsPrediction"]["properties"]["label"]["description"] == "bad or good"
    assert list(schemas["CriticsRequest"]["properties"]) == ["texts"]
    assert "examples" not in schemas["CriticsRequest"]


def test_a_model_without_an_encoding_is_answered_as_tensors_only(app, openapi):
    assert "/api/plain" not in openapi["paths"]
    assert {"name": "plain", "versions": [1], "typed": False} in app.get("/api").json()["models"]
    assert app.get("/api/plain/schema").status_code == 404
    answer = app.post("/api/plain", json={"rows": HOUSES})
    assert answer.status_code == 404, answer.text
    assert "no encoding" in answer.json()["error"]
    assert "/v2/models/plain/infer" in answer.json()["error"]


def test_taken_schema_names_leave_a_model_the_generic_route(app, openapi):
    assert "/api/houses" not in openapi["paths"]
    assert (
        "/api/{model}" not in openapi["paths"]
    )  # its body depends on the model: GET /api/…/schema
    answer = post(app, "/api/houses", {"rows": HOUSES})  # served by /api/{model}
    boston = post(app, "/api/boston", {"houses": HOUSES})
    assert answer["model"] == "houses"
    assert prices(answer) == pytest.approx(prices(boston), abs=1e-5)


def test_the_fast_path_takes_the_generated_and_the_generic_routes(app):
    dispatch = app.app.middleware_stack.app
    assert isinstance(dispatch, PredictionPath)
    for path, route in [("/api/homes", "/api/homes"), ("/api/houses", "/api/{model}")]:
        scope = {"type": "http", "method": "POST", "path": path, "root_path": "",
                 "query_string": b""}  # fmt: skip
        assert dispatch._route(scope).path == route


def test_models_loaded_later_are_served_by_the_config_of_the_version_served(tmp_path):
    """A model loaded after the start has the generic route; a route made at start serves the
    version loaded now, read with that version's config."""
    root = copy_repository(tmp_path / "models", ["boston"])
    app = create_app(settings(model_repository=root, admin_api_key=KEY))
    with TestClient(app) as client:
        assert client.post("/api/homes", json={"rows": HOUSES}).status_code == 404
        derive_model(root, "boston", 2, "homes", encoding=homes_encoding(root))
        assert client.post("/v2/repository/models/homes/load", headers=AUTH).status_code == 200
        homes = post(client, "/api/homes", {"rows": [renamed(h) for h in HOUSES]})
        boston = post(client, "/api/boston", {"houses": HOUSES})
        assert prices(homes) == pytest.approx(prices(boston), abs=1e-5)
        assert "/api/homes" not in client.get("/openapi.json").json()["paths"]
        # What is loaded now, and its schema, for the models that the document does not describe.
        listed = client.get("/api").json()["models"]
        assert {"name": "homes", "versions": [1], "typed": True} in listed
        schema = client.get("/api/homes/schema").json()
        assert (schema["items"], schema["value"], schema["label"]) == ("rows", "price", None)
        row = schema["request"]["$defs"]["HomesRow"]
        assert row["required"] == [RENAMED.get(f, f) for f in BOSTON_EXAMPLE]

        # boston v3 takes the renamed features: /api/boston reads each version with its own.
        shutil.copytree(root / "homes" / "1", root / "boston" / "3")
        config = read_config(root / "homes" / "1").model_copy(
            update={"name": "boston", "version": 3}
        )
        (root / "boston" / "3" / "config.json").write_text(config.model_dump_json(), "utf-8")
        assert client.post("/v2/repository/models/boston/load", headers=AUTH).status_code == 200
        newest = post(client, "/api/boston", {"rows": [renamed(h) for h in HOUSES]})
        assert newest["version"] == 3
        older = post(client, "/api/boston?version=2", {"houses": HOUSES})
        assert prices(newest) == pytest.approx(prices(older), abs=1e-5)

        assert client.post("/v2/repository/models/homes/unload", headers=AUTH).status_code == 200
        gone = client.post("/api/homes", json={"rows": [renamed(h) for h in HOUSES]})
        assert gone.status_code == 404, gone.text


@pytest.mark.parametrize(
    ("noun", "many"),
    [("topic", "topics"), ("category", "categories"), ("class", "classes"), ("day", "days")],
)
def test_plurals(noun, many):
    assert plural(noun) == many


def test_default_schema_names_are_the_model_s_in_camel_case():
    assert camel("boston-2_homes") == "Boston2Homes"
