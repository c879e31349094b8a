"""create_app(): start-up (every model loaded and checked before the service says ready), routers,
the request middleware (outermost: request ids, deadlines, metrics, tracing, access log, the one
500) and the error handlers."""

from __future__ import annotations

import asyncio
import logging
import os
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__, errors, logs, tracing
from service.api import admin, typed, v1, v2, wire
from service.api.fastpath import PredictionPath
from service.api.grpc_v2 import GrpcServer
from service.dataplane import ClientDisconnectedError, DataPlane, deadline_error
from service.errors import ErrorDetail, ServiceError, error_response, status_of
from service.metrics import Metrics
from service.settings import Settings

log = logging.getLogger("service")
STATIC = Path(__file__).parent / "static"


def create_app(
    settings: Settings | None = None, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """`tracer_provider`: where the spans go; by default where the `OTEL_*` variables say
    (`service.tracing`), and none are made when they say nothing."""
    settings = settings or Settings()
    metrics = Metrics()
    own_provider = tracer_provider is None
    if own_provider:
        tracer_provider = tracing.provider_from_environment()
    dataplane = DataPlane(settings, metrics, tracing.tracer_of(tracer_provider))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        try:
            dataplane.load()
        except Exception as error:
            log.critical("cannot start: %s", error)
            raise
        dataplane.start()
        grpc_server = GrpcServer(dataplane) if settings.grpc_port else None
        if grpc_server is not None:
            await grpc_server.start()
        log.info(
            "ready in %.2f s: %s, %d intra-op threads per model",
            time.perf_counter() - started,
            ", ".join(f"{n} v{sorted(v)}" for n, v in dataplane.registry.models.items()),
            settings.intra_op_threads,
        )
        yield {"dataplane": dataplane}  # also seen by the server's connections (service.server)
        dataplane.drain()
        if grpc_server is not None:
            await grpc_server.stop()
        await dataplane.close()
        if own_provider and tracer_provider is not None:
            # Exports the spans still buffered: the SDK's own atexit hook does not run in
            # worker processes (SERVICE_WORKERS > 1).
            tracer_provider.shutdown()
        log.info("stopped")

    # /docs and /redoc with Swagger UI's and ReDoc's files served from the fastapi-offline package
    # (FastAPI's own pages load them from a CDN: blank without internet).
    app = FastAPIOffline(
        title="dlwp-serving",
        version=__version__,
        description="IMDB sentiment, Reuters topics and Boston house prices, served by "
        "onnxruntime: Open Inference Protocol (V2; REST here, gRPC on SERVICE_GRPC_PORT), "
        "TensorFlow Serving REST (V1) and typed endpoints.",
        lifespan=lifespan,
        # The service makes its own spans (service.tracing); FastAPI's native telemetry would
        # add a second server span and look the global providers up on every request.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.dataplane = dataplane
    errors.install(app)
    app.include_router(v2.router)
    app.include_router(admin.router)
    app.include_router(v1.router)
    app.include_router(typed.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics():
        return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def home():
        return FileResponse(STATIC / "index.html")

    # The demo page's CSS and JavaScript (service/static, shipped as package data).
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    def openapi() -> dict:  # FastAPI's, with the bodies that the prediction routes read themselves
        return wire.add_body_schemas(FastAPI.openapi(app))

    app.openapi = openapi
    # The request middleware goes outside all that Starlette builds, its error handling included,
    # so that every answer, a 500 too, carries the request id. Inside it, the prediction routes
    # are taken straight to their handlers (service.api.fastpath), the rest through FastAPI.
    inner = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestMiddleware(
        PredictionPath(app, [v2.router, v1.router, typed.router], inner()), dataplane
    )
    return app


class RequestMiddleware:
    """Per request: an id (`X-Request-ID`, echoed or made), its `Call` through the data plane
    (deadline, leases, memory: given back once the answer is written), `X-Process-Time-Ms`,
    Prometheus counters and latency, an access-log line where `SERVICE_ACCESS_LOG` asks for one,
    and, where tracing is on, its SERVER span (`service.tracing`) and a `traceparent` header.

    Being outermost, it also answers what nothing inside did: a call the data plane cancelled
    (deadline: 504; shutdown: 503) and an unexpected error (500, logged once with the id)."""

    def __init__(self, app: ASGIApp, dataplane: DataPlane):
        self.app = app
        self.dataplane = dataplane
        self.metrics = dataplane.metrics
        self.access_log = dataplane.settings.access_log
        self.tracer = dataplane.tracer

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        rid = ""
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                rid = value.decode("latin-1")[:200]
        rid = rid or os.urandom(16).hex()  # as random as uuid4().hex, without the UUID object
        token = logs.request_id.set(rid)
        call = self.dataplane.begin()
        scope.setdefault("state", {})["call"] = call
        status = 500
        span = None
        if self.tracer is not None and tracing.traced(scope["path"]):
            span, trace_token = tracing.start_request(self.tracer, scope)

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                call.answering = True
                status = message["status"]
                elapsed = f"{(time.perf_counter() - started) * 1000:.2f}"
                message.setdefault("headers", [])
                message["headers"] += [
                    (b"x-request-id", rid.encode("latin-1")),
                    (b"x-process-time-ms", elapsed.encode()),
                ]
                if span is not None:
                    message["headers"] += tracing.response_headers(span)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except asyncio.CancelledError:
            if call.reason is None:  # not the data plane's doing
                raise
            asyncio.current_task().uncancel()
            if call.reason != "disconnected" and not call.answering:
                await self._answer(scope, send_with_headers, deadline_error(call))
        except ClientDisconnectedError:
            pass
        except Exception:
            log.exception("unhandled error on %s %s", scope["method"], scope["path"])
            if not call.answering:
                response = error_response(
                    500, [ErrorDetail(reason="internal error; see the service log")]
                )
                await response(scope, receive, send_with_headers)
        finally:
            self.dataplane.end(call)
            self._observe(scope, call, status, time.perf_counter() - started)
            if span is not None:
                tracing.end_request(span, trace_token, scope, status, call.model)
            logs.request_id.reset(token)

    @staticmethod
    async def _answer(scope: Scope, send: Send, error: ServiceError) -> None:
        status = status_of(error.kind, scope)
        response = error_response(status, [ErrorDetail(field=error.field, reason=error.reason)])
        await response(scope, _no_body, send)

    def _observe(self, scope: Scope, call, status: int, seconds: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        model = call.model
        name, version = (model.name, str(model.version)) if model else ("", "")
        self.metrics.request(endpoint, name, version, str(status), seconds)
        if model and wire.is_prediction(route):
            self.metrics.version(model.name, model.version).request(status == 200, seconds)
        if self.access_log:
            log.info(
                "%s %s %s %s %.1f ms",
                scope["method"],
                scope["path"],
                status,
                f"{name}/{version}" if model else "-",
                seconds * 1000,
            )


async def _no_body() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}
