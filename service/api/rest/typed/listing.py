"""What is served now, for the models that the OpenAPI document does not describe (those loaded
after the start) and for the demo page: `GET /api` lists the loaded models and says which have a
typed endpoint; `GET /api/{model}/schema` gives a typed endpoint's request and answer schemas,
generated from the config of the version that would serve it (the newest, or `?version=`).

Public, as the V2 model metadata is: it names only what is loaded, never why a version failed
(the repository index, behind the admin key, says that)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from service.api.rest import VersionQuery, dataplane, served
from service.api.rest.errors import ErrorResponse
from service.api.rest.typed.api import typed_api, typed_api_or_reason
from service.api.rest.typed.interface import NoTypedEndpointError


class ServedModel(BaseModel):
    name: str
    versions: list[int] = Field(description="the versions loaded, oldest first")
    typed: bool = Field(description="whether POST /api/{name} serves its newest version")


class ServedModels(BaseModel):
    models: list[ServedModel]


class TypedSchemas(BaseModel):
    model: str
    version: int
    task: Literal["binary_classification", "multiclass_classification", "regression"]
    encoding: Literal["text", "features"]
    items: str = Field(description="the request's field that lists the inputs")
    label: str | None = Field(description="classification: the answer's name of a label")
    labels: str | None = Field(description="multiclass: the answer's name of the labels' list")
    value: str | None = Field(description="regression: the answer's name of the value")
    request: dict[str, Any] = Field(description="the body's JSON schema")
    answer: dict[str, Any] = Field(description="the answer's JSON schema")


def add_listing_routes(router: APIRouter) -> None:
    @router.get("", response_model=ServedModels)
    async def served_models(request: Request):
        """The loaded models, with their versions, and whether each has a typed endpoint: one
        that `POST /api/{name}` serves, those loaded after the start included (their own route,
        and their schemas in this document, come with the next start; until then,
        `GET /api/{name}/schema` gives them)."""
        models = dataplane(request).registry.models
        entries = []
        for name, versions in sorted(models.items()):
            if versions:
                newest = versions[max(versions)]
                typed = not isinstance(typed_api_or_reason(newest), NoTypedEndpointError)
                entries.append({"name": name, "versions": sorted(versions), "typed": typed})
        return {"models": entries}

    @router.get(
        "/{model}/schema",
        response_model=TypedSchemas,
        responses={404: {"model": ErrorResponse, "description": "not loaded, or not typed"}},
    )
    async def typed_schemas(request: Request, model: str, version: VersionQuery = None):
        """The typed endpoint's request and answer schemas, from the config of the version that
        would serve it: what `POST /api/{model}` takes and answers, for a model loaded after the
        start too."""
        loaded = served(request, model, version)
        api = typed_api(loaded)
        interface = api.interface
        classifies = interface.task != "regression"
        return {
            "model": loaded.name,
            "version": loaded.version,
            "task": interface.task,
            "encoding": "features" if interface.tabular else "text",
            "items": interface.items,
            "label": interface.label if classifies else None,
            "labels": interface.label_plural if interface.task.startswith("multi") else None,
            "value": None if classifies else interface.value,
            **api.json_schemas,
        }
