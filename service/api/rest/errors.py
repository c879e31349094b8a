"""The one error shape of the REST transports: every 4xx and 5xx answer is

    {"error": "<field>: <reason>", "details": [{"field": "<field>", "reason": "<reason>"}]}

`error` is what the Open Inference Protocol and TF Serving clients read; `details` lists each field
that failed.

Each protocol declares the status it answers for each error kind on its routes (`ProtocolRoute`):
input errors are 400 on /v1 and /v2, as their specs say, and 422 on the typed routes, as FastAPI's
clients expect. No status is chosen from the URL.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import RETRY_AFTER_S, Kind, ServiceError

log = logging.getLogger(__name__)

# The HTTP status of each kind, unless a protocol says otherwise.
HTTP_STATUS: Mapping[Kind, int] = {
    Kind.BAD_INPUT: 400,
    Kind.UNAUTHENTICATED: 401,
    Kind.FORBIDDEN: 403,
    Kind.NOT_FOUND: 404,
    Kind.TOO_LARGE: 413,
    Kind.UNSUPPORTED_MEDIA_TYPE: 415,
    Kind.LOAD_FAILED: 400,  # as Triton answers a failed load
    Kind.UNAVAILABLE: 503,
    Kind.DEADLINE_EXCEEDED: 504,
    Kind.INTERNAL: 500,
}


class ErrorDetail(BaseModel):
    field: str | None = None
    reason: str


class ErrorResponse(BaseModel):
    """Every error answer has this shape."""

    error: str
    details: list[ErrorDetail] = []


def protocol_route(**statuses: int) -> type[APIRoute]:
    """A route class for a protocol's router that answers kind `k` with `statuses[k]` (the rest as
    `HTTP_STATUS`)."""
    table = {**HTTP_STATUS, **{Kind(k): s for k, s in statuses.items()}}
    return type("ProtocolRoute", (APIRoute,), {"error_statuses": table})


def status_of(kind: Kind, scope: Mapping) -> int:
    """The status the route that took this request answers for `kind`."""
    table = getattr(scope.get("route"), "error_statuses", HTTP_STATUS)
    return table[kind]


def error_response(status: int, details: list[ErrorDetail]) -> JSONResponse:
    message = "; ".join(f"{d.field}: {d.reason}" if d.field else d.reason for d in details)
    headers = {"Retry-After": str(RETRY_AFTER_S)} if status == 503 else None
    return JSONResponse(
        ErrorResponse(error=message, details=details).model_dump(), status, headers=headers
    )


def _field(location: tuple) -> str:
    """('body', 'inputs', 0, 'shape') → 'inputs[0].shape'."""
    parts = [p for p in location if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _validation_detail(error: dict) -> ErrorDetail:
    if error["type"] == "json_invalid":  # pydantic's error says where: "... at line 1 column 9"
        reason = f"not valid JSON: {error.get('ctx', {}).get('error', error['msg'])}"
        return ErrorDetail(field="body", reason=reason)
    return ErrorDetail(field=_field(tuple(error["loc"])), reason=error["msg"])


def answer(error: Exception, scope: Mapping) -> JSONResponse:
    """The answer to an error a route raised: its kind's status on that route, or the status of
    an HTTP error, in the one error shape."""
    if isinstance(error, ServiceError):
        status = status_of(error.kind, scope)
        return error_response(status, [ErrorDetail(field=error.field, reason=error.reason)])
    if isinstance(error, RequestValidationError):
        details = [_validation_detail(e) for e in error.errors()]
        return error_response(status_of(Kind.BAD_INPUT, scope), details)
    if isinstance(error, StarletteHTTPException):
        response = error_response(error.status_code, [ErrorDetail(reason=str(error.detail))])
        response.headers.update(getattr(error, "headers", None) or {})
        return response
    raise TypeError(f"{type(error).__name__} is not an error a route answers") from error


ANSWERED = (ServiceError, RequestValidationError, StarletteHTTPException)  # by `answer`


def install(app: FastAPI) -> None:
    """The handlers of the errors that routes raise; anything else is the request middleware's
    (`service.api.rest.middleware`): a 500, logged once, with the request id."""

    async def handle(request: Request, error: Exception):
        return answer(error, request.scope)

    for kind in ANSWERED:
        app.add_exception_handler(kind, handle)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        # Starlette re-raises the error after this answer; the request middleware logs it once.
        return error_response(500, [ErrorDetail(reason="internal error; see the service log")])
