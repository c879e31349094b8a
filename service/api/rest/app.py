"""The REST transport's application: the protocols' routers, the prediction fast path, the OpenAPI
document (all three from one list, `PROTOCOLS`), the error handlers, the demo page and /metrics,
inside the request middleware. The data plane and the start and stop of everything come from the
composition root (`service.server`)."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path

from fastapi import APIRouter, FastAPI
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
FASTAPI_SCHEMAS = {"HTTPValidationError", "ValidationError"}  # FastAPI's own, in the document


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
    routers = protocol_routers(dataplane)
    for router in routers:
        app.include_router(router)
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
        routes = [route for router in routers for route in router.routes]
        return wire.add_body_schemas(FastAPI.openapi(app), routes)

    app.openapi = openapi
    # The request middleware goes outside all that Starlette builds, its error handling included,
    # so that every answer, a 500 too, carries the request id. Inside it, the prediction routes
    # are taken straight to their handlers (service.api.rest.fastpath), the rest through FastAPI.
    inner = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestMiddleware(
        PredictionPath(app, routers, inner()), dataplane
    )
    return app


def protocol_routers(dataplane: DataPlane) -> list[APIRouter]:
    """Each protocol's router, in `PROTOCOLS`' order. The typed protocol's is made for each app,
    from the models in its repository (`typed.router_for`), its schemas' names kept clear of the
    other protocols'."""
    fixed = [protocol.router for protocol in PROTOCOLS if protocol is not typed]
    taken = wire.route_schema_names(route for router in fixed for route in router.routes)
    typed_router = typed.router_for(dataplane, taken | FASTAPI_SCHEMAS)
    return [typed_router if protocol is typed else protocol.router for protocol in PROTOCOLS]
