"""The protocols: each module holds its wire types and routes, and only translates between them and
`LoadedModel.predict`, where validation, batching and inference live once."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from service.registry import LoadedModel, Registry


async def get_registry(request: Request) -> Registry:
    # async: FastAPI runs a plain `def` dependency in its thread pool, a hop per request.
    return request.app.state.registry


RegistryDep = Annotated[Registry, Depends(get_registry)]


def served(request: Request, name: str, version: int | str | None = None) -> LoadedModel:
    """The loaded version that answers this request (the newest where none is named), recorded
    for the metrics and the access log."""
    model = request.app.state.registry.get(name, version)
    request.state.model = model.name
    request.state.version = str(model.version)
    return model
