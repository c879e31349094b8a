"""The prediction routes' bodies in and answers out, through pydantic-core directly.

FastAPI's own way (a body parameter and a response model) parses the JSON with `json.loads`,
validates the Python objects, then validates and encodes the returned model again: for a Boston
house that costs more than the inference. Here a body is parsed and validated in one pass by
`Model.model_validate_json`, and an answer is written by `pydantic_core.to_json`. The routes still
declare their models, so the OpenAPI document (and the demo page, which reads it) is unchanged:
`request_body` documents the body, `response_model` the answer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import pydantic_core
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from service.api import call_of, dataplane
from service.errors import BadInputError, Kind, ServiceError
from service.registry import LoadedModel

Body = TypeVar("Body", bound=BaseModel)

_DOCUMENTED: dict[str, type[BaseModel]] = {}  # request bodies read by `read`, for the OpenAPI
_REF = "#/components/schemas/{model}"


async def read(request: Request, model: type[Body], require_json_type: bool = True) -> Body:
    """The request's body as `model`, or a 4xx naming the fields at fault, as FastAPI would give.

    `require_json_type`: refuse bodies not labelled JSON (a browser form cannot send JSON to
    another site without asking first, so this keeps cross-site forms out)."""
    if require_json_type and not _is_json(request.headers.get("content-type", "")):
        raise ServiceError(
            "send the body as JSON, with Content-Type: application/json",
            "body",
            Kind.UNSUPPORTED_MEDIA_TYPE,
        )
    plane = dataplane(request)
    length = request.headers.get("content-length")
    body = await plane.read_body(
        call_of(request), request.receive, int(length) if length is not None else None
    )
    try:
        return await plane.decode(body, model.model_validate_json)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def json_rows(
    request: Request,
    model: LoadedModel,
    data: list,
    shape: list[int],
    field: str,
    rows_only: bool = False,
) -> np.ndarray:
    """JSON tensor data (flat or nested; a list of rows where `rows_only`) → an array of `shape`
    that fits `model`, or a 400 naming the field (a list of rows has no `shape` and `data` of its
    own)."""
    shape_field, data_field = (field, field) if rows_only else (f"{field}.shape", f"{field}.data")
    dataplane(request).check_shape(model, shape, shape_field, field)
    try:
        array = np.asarray(data)
    except ValueError:
        raise BadInputError("nested data is ragged", data_field) from None
    if array.size and array.dtype.kind not in "iuf":
        raise BadInputError("data must hold numbers only", data_field)
    if rows_only and array.size and array.ndim != 2:
        raise BadInputError(f"expected a list of rows of {shape[1]} numbers", field)
    if array.size != shape[0] * shape[1]:
        raise BadInputError(
            f"data holds {array.size} elements, shape {shape} needs {shape[0] * shape[1]}",
            data_field,
        )
    return array.reshape(shape)


def answer(content: dict) -> Response:
    """A 200 answer from plain data (lists, dicts, str, float): no response-model pass."""
    return Response(pydantic_core.to_json(content), media_type="application/json")


def post(
    router: APIRouter, *paths: str, body: type[BaseModel], answer: type[BaseModel], **options: Any
) -> Callable:
    """Registers a prediction handler on each of `paths`: it reads `body` with `read` and returns
    `answer`'s shape with `answer`; both are documented in the OpenAPI document."""

    def register(handler: Callable) -> Callable:
        for path in paths:
            router.post(path, response_model=answer, openapi_extra=request_body(body), **options)(
                handler
            )
        return handler

    return register


def request_body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for a route that reads `model` with `read`."""
    _DOCUMENTED[model.__name__] = model
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def add_body_schemas(openapi: dict) -> dict:
    """Adds the JSON schemas of the bodies `request_body` documented to an OpenAPI document."""
    _, schemas = models_json_schema(
        [(m, "validation") for m in _DOCUMENTED.values()], ref_template=_REF
    )
    openapi.setdefault("components", {}).setdefault("schemas", {}).update(schemas["$defs"])
    return openapi
