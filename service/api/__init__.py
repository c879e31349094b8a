"""The protocols: each module holds its wire types and routes, and only translates between them and
the data plane (`service.dataplane`), where lookup, limits, checks, batching and inference live
once."""

from __future__ import annotations

from fastapi import Request

from service.dataplane import Call, DataPlane
from service.registry import LoadedModel


def dataplane(request: Request) -> DataPlane:
    return request.app.state.dataplane


def call_of(request: Request) -> Call:
    """The request's passage through the data plane, begun by the request middleware."""
    return request.scope["state"]["call"]


def served(request: Request, name: str, version: int | str | None = None) -> LoadedModel:
    """The loaded version that answers this request (the newest where none is named), leased
    until the answer is written."""
    return dataplane(request).lease(call_of(request), name, version)
