"""The prediction routes' bodies in and answers out, through pydantic-core directly, compressed
as the client says (`Content-Encoding` in, `Accept-Encoding` out: gzip or deflate).

FastAPI's own way (a body parameter and a response model) parses the JSON with `json.loads`,
validates the Python objects, then validates and encodes the returned model again: for a Boston
house that costs more than the inference. Here a body is parsed and validated in one pass by
`Model.model_validate_json`, and an answer is written by `pydantic_core.to_json`. The routes still
declare their models, so the OpenAPI document (and the demo page, which reads it) is unchanged:
`request_body` documents the body, `response_model` the answer.
"""

from __future__ import annotations

import gzip
import itertools
import zlib
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar

import numpy as np
import pydantic_core
from fastapi import APIRouter, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from pydantic.json_schema import models_json_schema

from contract.numbers import read_count
from service.admission import DECOMPRESSORS, BodyKind
from service.api.rest import call_of, dataplane, routes
from service.api.rest.binary import HEADER_LENGTH
from service.errors import BadInputError, Kind, ServiceError
from service.registry import LoadedModel

Body = TypeVar("Body", bound=BaseModel)

COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "gzip": lambda data: gzip.compress(data, 1),  # level 1: most of the gain for a little CPU
    "deflate": lambda data: zlib.compress(data, 1),
}
# Bodies up to this size are parsed by `model_validate_json` in one pass (faster for small ones).
DIRECT_JSON_BYTES = 64 * 1024
_REF = "#/components/schemas/{model}"


async def read(
    request: Request, model: type[Body], kind: BodyKind, require_json_type: bool = True
) -> Body:
    """The request's body as `model`, or a 4xx naming the fields at fault, as FastAPI would give.
    `kind`: what the body holds, for its memory (`service.admission`).

    `require_json_type`: refuse bodies not labelled JSON (a browser form cannot send JSON to
    another site without asking first, so this keeps cross-site forms out)."""
    if require_json_type and not _is_json(request.headers.get("content-type", "")):
        raise ServiceError(
            "send the body as JSON, with Content-Type: application/json",
            "body",
            Kind.UNSUPPORTED_MEDIA_TYPE,
        )
    return await parse(request, model, await read_bytes(request, kind))


def tensors_kind(model: LoadedModel) -> BodyKind:
    """What a body of tensors for `model` costs: numbers, or a sparse text model's entries."""
    return BodyKind.ENTRIES if model.sparse else BodyKind.NUMBERS


async def read_bytes(request: Request, kind: BodyKind, binary_from: int | None = None) -> bytes:
    """The request's body, decompressed, within the limits, its memory admitted
    (`DataPlane.read_body`). `binary_from`: where its binary tensor data begins."""
    length = request.headers.get("content-length")
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding not in DECOMPRESSORS and encoding != "identity":
        raise ServiceError(
            f"Content-Encoding {encoding} is not supported; send gzip, deflate or identity",
            "Content-Encoding",
            Kind.UNSUPPORTED_MEDIA_TYPE,
        )
    declared = read_count(length) if length is not None else None
    return await dataplane(request).read_body(
        call_of(request), request.receive, declared, kind, encoding, binary_from
    )


async def parse(request: Request, model: type[Body], body: bytes) -> Body:
    """JSON `body` as `model`, or a 4xx naming the fields at fault."""
    try:
        return await dataplane(request).decode(body, lambda data: validate_json(model, data))
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


def validate_json(model: type[Body], body: bytes) -> Body:
    """`model.model_validate_json(body)`; but a large body is first made Python objects
    (`pydantic_core.from_json`) and those validated: `model_validate_json` builds a tree of its
    own of the whole document first, 2.5 times the memory at the peak for a body of numbers (46
    against 18 bytes a number)."""
    if len(body) <= DIRECT_JSON_BYTES:
        return model.model_validate_json(body)
    try:
        data = pydantic_core.from_json(body)
    except ValueError as error:
        invalid = {"type": "json_invalid", "loc": (), "input": "", "ctx": {"error": str(error)}}
        raise ValidationError.from_exception_data(model.__name__, [invalid]) from None
    return model.model_validate(data)


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
    booleans_possible: bool = True,
) -> np.ndarray:
    """JSON tensor data (flat or nested; a list of rows where `rows_only`) → an array of `shape`
    that fits `model`, or a 400 naming the field (a list of rows has no `shape` and `data` of its
    own). `booleans_possible`: False where the body's text has no `true` or `false`, which spares
    looking at every number."""
    shape_field, data_field = (field, field) if rows_only else (f"{field}.shape", f"{field}.data")
    dataplane(request).check_shape(model, shape, shape_field, field)
    try:
        array = np.asarray(data)
    except ValueError:
        raise BadInputError("nested data is ragged", data_field) from None
    if array.size and (
        array.dtype.kind not in "iuf" or (booleans_possible and _holds_booleans(data))
    ):
        raise BadInputError("data must hold numbers only", data_field)
    if rows_only and array.size and array.ndim != 2:
        raise BadInputError(f"expected a list of rows of {shape[1]} numbers", field)
    if array.size != shape[0] * shape[1]:
        raise BadInputError(
            f"data holds {array.size} elements, shape {shape} needs {shape[0] * shape[1]}",
            data_field,
        )
    return array.reshape(shape)


def may_hold_booleans(body: bytes) -> bool:
    return b"true" in body or b"false" in body


def _holds_booleans(data: list) -> bool:
    """NumPy reads true and false among numbers as 1 and 0; JSON means otherwise."""
    types = set(map(type, data))
    if list in types:  # rows
        types = set(map(type, itertools.chain.from_iterable(data)))
    return bool in types


def answer(request: Request, content: dict, binary: Sequence[bytes] = ()) -> Response:
    """A 200 answer from plain data (lists, dicts, str, float): no response-model pass. With
    `binary` (tensor data), the binary tensor data extension's form: the JSON, then the data."""
    body = pydantic_core.to_json(content)
    headers = {}
    media_type = "application/json"
    if binary:
        headers[HEADER_LENGTH] = str(len(body))
        media_type = "application/octet-stream"
        body = b"".join([body, *binary])
    encoding = _accepted_encoding(request.headers.get("accept-encoding"))
    if encoding is not None:
        body = COMPRESSORS[encoding](body)
        headers["content-encoding"] = encoding
    return Response(body, media_type=media_type, headers=headers)


def _accepted_encoding(accept: str | None) -> str | None:
    """gzip or deflate where the client accepts it (tritonclient's response compression)."""
    if not accept:
        return None
    for item in accept.lower().split(","):
        name, _, quality = item.strip().partition(";")
        if name.strip() in COMPRESSORS and quality.strip() not in ("q=0", "q=0.0"):
            return name.strip()
    return None


def post(
    router: APIRouter,
    *paths: str,
    body: type[BaseModel] | None,
    answer: type[BaseModel] | None,
    **options: Any,
) -> Callable:
    """Registers a prediction handler on each of `paths`: it reads `body` with `read` and returns
    `answer`'s shape with `answer`; both are documented in the OpenAPI document. None: the route
    is left out of the document (`include_in_schema=False`), its body being the model's own."""

    def register(handler: Callable) -> Callable:
        handler.prediction = True  # counted as an inference request (Triton's metrics)
        if body is None:
            return routes(router.post, *paths, include_in_schema=False, **options)(handler)
        handler.documented_body = body  # for the OpenAPI document (`add_body_schemas`)
        extra = request_body(body)
        return routes(router.post, *paths, response_model=answer, openapi_extra=extra, **options)(
            handler
        )

    return register


def is_prediction(route) -> bool:
    """Whether the route that took a request was registered by `post`."""
    return getattr(getattr(route, "endpoint", None), "prediction", False)


def request_body(model: type[BaseModel]) -> dict:
    """`openapi_extra` for a route that reads `model` with `read` (its schema: `add_body_schemas`)."""
    schema = {"$ref": _REF.format(model=model.__name__)}
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def documented_bodies(routes: Iterable) -> list[type[BaseModel]]:
    """The bodies that the prediction routes among `routes` read (registered by `post`)."""
    bodies = (getattr(getattr(r, "endpoint", None), "documented_body", None) for r in routes)
    return list({body.__name__: body for body in bodies if body is not None}.values())


def add_body_schemas(openapi: dict, routes: Iterable) -> dict:
    """Adds the JSON schemas of the bodies that the prediction routes among `routes` read to
    their OpenAPI document."""
    bodies = documented_bodies(routes)
    _, schemas = models_json_schema([(m, "validation") for m in bodies], ref_template=_REF)
    openapi.setdefault("components", {}).setdefault("schemas", {}).update(schemas.get("$defs", {}))
    return openapi


def schema_names(bodies: Iterable[type[BaseModel]], answers: Iterable[type[BaseModel]]) -> set[str]:
    """The names that these request bodies and answers, and the models they hold, take in the
    OpenAPI document."""
    models = [(m, "validation") for m in bodies] + [(m, "serialization") for m in answers]
    _, schemas = models_json_schema(models, ref_template=_REF)
    return set(schemas.get("$defs", {}))


def route_schema_names(routes: Iterable) -> set[str]:
    """The schema names that `routes`' bodies, answers and documented errors take."""
    routes = list(routes)
    answers = {getattr(r, "response_model", None) for r in routes}
    for route in routes:
        answers |= {spec.get("model") for spec in getattr(route, "responses", {}).values()}
    models = [m for m in answers if isinstance(m, type) and issubclass(m, BaseModel)]
    return schema_names(documented_bodies(routes), models)
