"""The REST transport's entry to the request lifecycle (`service.lifecycle`): outermost, around
everything Starlette builds, its error handling included, so that every answer carries the
request id (`X-Request-ID`, echoed or made) and `X-Process-Time-Ms`, and, where tracing is on, a
`traceparent`. It answers what nothing inside did: a call the data plane cancelled (deadline: 504;
shutdown: 503), an unexpected error (500, logged once with the id)."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import tracing
from service.api.rest import wire
from service.api.rest.errors import ErrorDetail, error_response, status_of
from service.dataplane import DataPlane
from service.lifecycle import RequestContext


class RequestMiddleware:
    def __init__(self, app: ASGIApp, dataplane: DataPlane):
        self.app = app
        self.dataplane = dataplane

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                request_id = value.decode("latin-1")
        target = f"{scope['method']} {scope['path']}"
        with RequestContext(self.dataplane, target, request_id) as context:
            call = context.call
            state = scope.setdefault("state", {})
            state["call"], state["dataplane"] = call, self.dataplane
            span = (
                context.trace(*tracing.http_carrier(scope))
                if self.dataplane.tracer is not None and tracing.traced(scope["path"])
                else None
            )
            status = 500
            identity = [(b"x-request-id", context.request_id.encode("latin-1"))]

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    call.answering = True
                    status = message["status"]
                    elapsed = f"{(time.perf_counter() - started) * 1000:.2f}".encode()
                    message.setdefault("headers", [])
                    message["headers"] += [*identity, (b"x-process-time-ms", elapsed)]
                    if span is not None:
                        message["headers"] += tracing.response_headers(span)
                await send(message)

            try:
                await self.app(scope, receive, send_with_headers)
            except BaseException as error:
                failure = context.failure(error)
                if failure is not None and not call.answering:
                    details = [ErrorDetail(field=failure.field, reason=failure.reason)]
                    response = error_response(status_of(failure.kind, scope), details)
                    await response(scope, _no_body, send_with_headers)
            route = scope.get("route")
            context.prediction = wire.is_prediction(route)
            if span is not None:
                tracing.http_outcome(span, scope, status)
            endpoint = getattr(route, "path", "unmatched")
            context.finish(endpoint, str(status), ok=status == 200, fault=status >= 500)


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
