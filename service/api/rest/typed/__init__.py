"""Typed endpoints for people, generated from each model's config: `POST /api/{model}` takes what
the model's encoding describes (raw texts, or rows of named features, `requests.py`) and answers in
the terms of its task (a label, the most probable labels, a value and its unit, `answers.py`),
under the names its config gives (`interface.py`, `contract.endpoint`). The book models' configs
name theirs, so /api/imdb, /api/reuters and /api/boston are what their clients have always known.

Models come and go while the service runs (repository polling, the repository API). The routes
and the OpenAPI document follow them so:

- When the app is built, each model of the repository with a typed endpoint gets its own route,
  documented with the schemas generated from the config of its newest version to serve. Routes
  are made once and not changed under a running service: the OpenAPI document is a contract that
  clients generate code from, and the fast path, the metrics (labelled by route) and the document
  all hold the same route objects.
- After them, the generic route, `POST /api/{model}`, serves any loaded model with a typed
  endpoint, those loaded later included. What it takes depends on the model named in its path, so
  no schema of the document could say it truly (and the document is held to exactly what the
  service accepts, tests/service/test_schema_fuzz.py): the route is left out of it, and
  documented by the routes that are in it, `GET /api` (the models loaded now, and which are
  typed) and `GET /api/{model}/schema` (the model's own request and answer schemas,
  `listing.py`); the model's own route comes with the next start.
- Either way, a request is read and answered with the config of the version that serves it (the
  newest, or `?version=`): a route made at start serves whatever version is loaded now, and
  answers 404 once its model is unloaded.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request

from contract.config import ModelConfig, RepositoryError, list_versions, read_config
from service.api.rest import VersionQuery, wire
from service.api.rest.errors import ErrorResponse, protocol_route
from service.api.rest.typed.api import TypedApi, answer, typed_api
from service.api.rest.typed.book import (  # the book models' schemas, by the names clients import
    EXAMPLE_HOUSE,
    HousesRequest,
    NewswiresRequest,
    PricesAnswer,
    ReviewsRequest,
    SentimentAnswer,
    TopicsAnswer,
)
from service.api.rest.typed.interface import Interface, NoTypedEndpointError
from service.api.rest.typed.listing import ServedModels, TypedSchemas, add_listing_routes
from service.api.rest.v2 import INFER_ERRORS
from service.dataplane import DataPlane

log = logging.getLogger(__name__)

ERRORS = {
    **{status: spec for status, spec in INFER_ERRORS.items() if status != 400},
    415: {"model": ErrorResponse, "description": "the body is not labelled JSON"},
    422: {"model": ErrorResponse, "description": "bad input, naming the field"},
}


def router_for(plane: DataPlane, taken: set[str]) -> APIRouter:
    """The typed routes of one app: a route per model of its repository with a typed endpoint,
    then the generic one. `taken`: schema names the other protocols use; a model whose schemas
    would take one of them (or another model's) keeps only the generic route."""
    router = APIRouter(
        prefix="/api", tags=["Typed endpoints"], route_class=protocol_route(bad_input=422)
    )
    taken = taken | wire.schema_names([], [ServedModels, TypedSchemas])
    for config in _newest_configs(plane):
        try:
            api = TypedApi.of(Interface.of(config))
        except NoTypedEndpointError:
            continue  # answered as tensors only; the generic route says why
        names = api.schema_names()
        if names & taken:
            log.warning(
                "%s: no route of its own: its schema names %s are taken; name them in its "
                "config (encoding.endpoint.schemas)",
                config.name, sorted(names & taken),
            )  # fmt: skip
            continue
        taken |= names
        _add_model_route(router, config.name, api)
    _add_generic_route(router)
    add_listing_routes(router)
    return router


def _newest_configs(plane: DataPlane) -> list[ModelConfig]:
    """The config of each model's newest version to serve, as the repository holds it now. One
    that cannot be read is left out: loading it stops the start, naming the file."""
    settings = plane.settings
    try:
        listing = list_versions(settings.model_repository)
    except RepositoryError:
        return []
    configs = []
    for name, numbers in listing.items():
        numbers = settings.versions_to_serve(name, numbers)
        if numbers:
            try:
                configs.append(read_config(settings.model_repository / name / str(max(numbers))))
            except RepositoryError:
                continue
    return configs


def _add_model_route(router: APIRouter, name: str, api: TypedApi) -> None:
    async def endpoint(request: Request, version: VersionQuery = None):
        return await answer(request, name, version)

    interface = api.interface
    wire.post(
        router,
        f"/{name}",
        body=api.request,
        answer=api.answer,
        responses=ERRORS,
        name=interface.route_name,
        description=interface.summary,
    )(endpoint)


def _add_generic_route(router: APIRouter) -> None:
    @wire.post(router, "/{model}", body=None, answer=None)
    async def any_model(
        request: Request,
        model: str,
        version: VersionQuery = None,
    ):
        """Any loaded model with a typed endpoint, those loaded after the start included: the
        body and the answer that its schema (`GET /api/{model}/schema`) says."""
        return await answer(request, model, version)


__all__ = [
    "EXAMPLE_HOUSE",
    "HousesRequest",
    "NewswiresRequest",
    "PricesAnswer",
    "ReviewsRequest",
    "SentimentAnswer",
    "TopicsAnswer",
    "router_for",
    "typed_api",
]
