"""The REST transport's application: the protocols' routers, the prediction fast path, the OpenAPI
document (all three from one list, `PROTOCOLS`), the error handlers, the demo page and /metrics,
inside the request middleware. The data plane and the start and stop of everything come from the
composition root (`service.server`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST
from starlette.responses import HTMLResponse, Response

from service import __version__
from service.api.rest import admin, errors, typed, v1, v2, wire
from service.api.rest.fastpath import PredictionPath
from service.api.rest.middleware import RequestMiddleware
from service.dataplane import DataPlane

STATIC = Path(__file__).resolve().parents[2] / "static"
# The REST protocols, in the order their routes are tried: a new one is a module and a line here.
PROTOCOLS = [v2, admin, v1, typed]


def build(
    dataplane: DataPlane, lifespan: Callable[[FastAPI], AbstractAsyncContextManager]
) -> FastAPI:
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
    app.state.settings = dataplane.settings
    app.state.metrics = dataplane.metrics
    app.state.dataplane = dataplane
    errors.install(app)
    for protocol in PROTOCOLS:
        app.include_router(protocol.router)
    # Read once: a page that opens a file per request answers 500 when descriptors run out.
    home_page = (STATIC / "index.html").read_bytes()

    @app.get("/metrics", include_in_schema=False)
    async def prometheus_metrics():
        return Response(dataplane.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def home():
        return HTMLResponse(home_page)

    # The demo page's CSS and JavaScript (service/static, shipped as package data).
    app.mount("/static", StaticFiles(directory=STATIC, check_dir=False), name="static")

    def openapi() -> dict:  # FastAPI's, with the bodies that the prediction routes read themselves
        return wire.add_body_schemas(FastAPI.openapi(app))

    app.openapi = openapi
    # The request middleware goes outside all that Starlette builds, its error handling included,
    # so that every answer, a 500 too, carries the request id. Inside it, the prediction routes
    # are taken straight to their handlers (service.api.rest.fastpath), the rest through FastAPI.
    inner = app.build_middleware_stack
    routers = [protocol.router for protocol in PROTOCOLS]
    app.build_middleware_stack = lambda: RequestMiddleware(
        PredictionPath(app, routers, inner()), dataplane
    )
    return app
