"""create_app(): start-up (every model loaded and checked before the service says ready), routers,
the request middleware (request ids, body limit, metrics, access log) and the error handlers."""

from __future__ import annotations

import logging
import time
import uuid
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import __version__, errors, logs
from service.api import repository, typed, v1, v2, wire
from service.errors import ErrorDetail, ServiceError, error_response
from service.metrics import Metrics
from service.registry import Registry
from service.settings import Settings

log = logging.getLogger("service")
STATIC = Path(__file__).parent / "static"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        registry = Registry(settings, metrics)
        try:
            registry.load_all()
        except Exception as error:
            log.critical("cannot start: %s", error)
            raise
        app.state.registry = registry
        app.state.ready = True
        log.info(
            "ready in %.2f s: %s, %d intra-op threads per model",
            time.perf_counter() - started,
            ", ".join(f"{n} v{sorted(v)}" for n, v in registry.models.items()),
            settings.threads(),
        )
        yield
        app.state.ready = False
        await registry.close()
        log.info("stopped")

    # /docs and /redoc with Swagger UI's and ReDoc's files served from the fastapi-offline package
    # (FastAPI's own pages load them from a CDN: blank without internet).
    app = FastAPIOffline(
        title="dlwp-serving",
        version=__version__,
        description="IMDB sentiment, Reuters topics and Boston house prices, served by "
        "onnxruntime: Open Inference Protocol (V2), TensorFlow Serving REST (V1) and typed "
        "endpoints.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.ready = False
    errors.install(app)
    app.include_router(v2.router)
    app.include_router(repository.router)
    app.include_router(v1.router)
    app.include_router(typed.router)

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def home():
        return FileResponse(STATIC / "index.html")

    # The demo page's CSS and JavaScript (service/static, shipped as package data).
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    def openapi() -> dict:  # FastAPI's, with the bodies that the prediction routes read themselves
        return wire.add_body_schemas(FastAPI.openapi(app))

    app.openapi = openapi
    app.add_middleware(RequestMiddleware, settings=settings, metrics=metrics)
    return app


class RequestMiddleware:
    """Per request: an id (`X-Request-ID`, echoed or made), the body-size limit (413), the
    `X-Process-Time` header, Prometheus counters and latency, and an access-log line where
    `SERVICE_ACCESS_LOG` asks for one."""

    def __init__(self, app: ASGIApp, settings: Settings, metrics: Metrics):
        self.app = app
        self.limit = settings.max_body_bytes
        self.metrics = metrics
        self.access_log = settings.access_log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        headers = dict(scope["headers"])
        rid = headers.get(b"x-request-id", b"").decode("latin-1")[:200] or uuid.uuid4().hex
        token = logs.request_id.set(rid)
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                elapsed = f"{(time.perf_counter() - started) * 1000:.2f}"
                message.setdefault("headers", [])
                message["headers"] += [
                    (b"x-request-id", rid.encode("latin-1")),
                    (b"x-process-time-ms", elapsed.encode()),
                ]
            await send(message)

        try:
            declared = headers.get(b"content-length")
            if declared is not None and int(declared) > self.limit:
                await self._too_large(scope, receive, send_with_headers)
            else:
                # A declared length bounds the body (the HTTP parser reads no more); a chunked
                # body is counted as it arrives.
                checked = receive if declared is not None else self._limited(receive)
                await self.app(scope, checked, send_with_headers)
        finally:
            self._observe(scope, status, time.perf_counter() - started)
            logs.request_id.reset(token)

    def _limited(self, receive: Receive) -> Receive:
        """Counts a streamed (chunked) body as it arrives."""
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise ServiceError(413, f"the body exceeds {self.limit} bytes", "body")
            return message

        return limited

    async def _too_large(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = error_response(
            413, [ErrorDetail(field="body", reason=f"the body exceeds {self.limit} bytes")]
        )
        await response(scope, receive, send)

    def _observe(self, scope: Scope, status: int, seconds: float) -> None:
        route = scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        state = scope.get("state", {})
        model, version = state.get("model", ""), state.get("version", "")
        self.metrics.requests.labels(endpoint, model, version, str(status)).inc()
        self.metrics.latency.labels(endpoint, model).observe(seconds)
        if self.access_log:
            log.info(
                "%s %s %s %s %.1f ms",
                scope["method"],
                scope["path"],
                status,
                f"{model}/{version}" if model else "-",
                seconds * 1000,
            )
