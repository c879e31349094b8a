"""The prediction routes, dispatched without FastAPI's per-request machinery.

FastAPI takes a request through its middleware stack, its router (included routers, effective
route contexts), dependency solving for the path and query parameters and its exception
middleware: about 100 µs a request, more than a Boston inference costs. The prediction handlers
need none of it: they take the request and their path parameters, read and validate their bodies
themselves (`service.api.wire`) and return a finished response.

`PredictionPath` matches a request against the POST routes that `wire.post` registered, the very
route objects FastAPI holds (so their paths label the metrics and their protocols choose the error
statuses), and calls the handler. Everything else goes to FastAPI unchanged: the other routes, and
the requests whose parameters FastAPI would have to check (a query string, a version out of
range), which it answers as it always has. The OpenAPI document is FastAPI's, of the same routes.
"""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import APIRouter, FastAPI, Request
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import ASGIApp, Receive, Scope, Send

from service.api.rest import MAX_VERSION, errors, wire


class PredictionPath:
    """ASGI: the prediction routes of `routers` directly, the rest through `fallback` (FastAPI's
    own stack)."""

    def __init__(self, app: FastAPI, routers: Sequence[APIRouter], fallback: ASGIApp):
        self.app = app
        self.fallback = fallback
        self.routes = [
            route
            for router in routers
            for route in router.routes
            if isinstance(route, APIRoute) and wire.is_prediction(route) and "POST" in route.methods
        ]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._route(scope) if scope["type"] == "http" else None
        if route is None:
            await self.fallback(scope, receive, send)
            return
        scope["app"] = self.app
        request = Request(scope, receive)
        try:
            response = await route.endpoint(request, **scope["path_params"])
        except errors.ANSWERED as error:
            response = errors.answer(error, scope)
        await response(scope, receive, send)

    def _route(self, scope: Scope) -> APIRoute | None:
        """The prediction route that takes this request whole (its scope updated as FastAPI's
        router would), or None."""
        if scope["method"] != "POST" or scope["query_string"]:
            return None
        for route in self.routes:
            match, child_scope = route.matches(scope)
            if match is Match.FULL:
                if not 1 <= child_scope["path_params"].get("version", 1) <= MAX_VERSION:
                    return None
                scope.update(child_scope)
                return route
        return None
