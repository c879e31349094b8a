"""The one error shape: every 4xx and 5xx answer is

    {"error": "<field>: <reason>", "details": [{"field": "<field>", "reason": "<reason>"}]}

`error` is what the Open Inference Protocol and TF Serving clients read; `details` lists each field
that failed. Input errors are 400 on the protocol routes (/v1, /v2, as their specs say) and 422 on
the typed routes (as FastAPI's clients expect).
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

PROTOCOL_PREFIXES = ("/v1/", "/v2/", "/v2")


class ErrorDetail(BaseModel):
    field: str | None = None
    reason: str


class ErrorResponse(BaseModel):
    """Every error answer has this shape."""

    error: str
    details: list[ErrorDetail] = []


class ServiceError(Exception):
    """An error to answer with `status`, naming the field at fault where there is one."""

    def __init__(self, status: int, reason: str, field: str | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.field = field


class BadInputError(ServiceError):
    def __init__(self, reason: str, field: str | None = None, status: int = 400):
        super().__init__(status, reason, field)


class NotFoundError(ServiceError):
    def __init__(self, reason: str, field: str | None = None):
        super().__init__(404, reason, field)


def error_response(
    status: int, details: list[ErrorDetail], headers: dict | None = None
) -> JSONResponse:
    message = "; ".join(f"{d.field}: {d.reason}" if d.field else d.reason for d in details)
    body = ErrorResponse(error=message, details=details)
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _field(location: tuple) -> str:
    """('body', 'inputs', 0, 'shape') → 'inputs[0].shape'."""
    parts = [p for p in location if p not in ("body", "query", "path", "header")]
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "body"


def _input_error_status(request: Request) -> int:
    return 400 if request.url.path.startswith(PROTOCOL_PREFIXES) else 422


def _validation_detail(error: dict) -> ErrorDetail:
    if error["type"] == "json_invalid":  # pydantic's error says where: "... at line 1 column 9"
        reason = f"not valid JSON: {error.get('ctx', {}).get('error', error['msg'])}"
        return ErrorDetail(field="body", reason=reason)
    return ErrorDetail(field=_field(tuple(error["loc"])), reason=error["msg"])


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, error: ServiceError):
        status = error.status
        if isinstance(error, BadInputError) and status == 400:
            status = _input_error_status(request)
        return error_response(status, [ErrorDetail(field=error.field, reason=error.reason)])

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError):
        details = [_validation_detail(e) for e in error.errors()]
        return error_response(_input_error_status(request), details)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        return error_response(
            error.status_code,
            [ErrorDetail(reason=str(error.detail))],
            getattr(error, "headers", None),
        )

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, [ErrorDetail(reason="internal error; see the service log")])
