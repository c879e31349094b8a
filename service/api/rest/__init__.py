"""The protocols: each module holds its wire types and routes, and only translates between them and
the data plane (`service.dataplane`), where lookup, limits, checks, batching and inference live
once."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Path, Query, Request
from pydantic import BeforeValidator

from contract.numbers import MAX_VERSION, VERSION_RULE, read_version
from service.dataplane import Call, DataPlane
from service.registry import LoadedModel


def _version_number(value: Any) -> Any:
    """The one strict reader (`contract.numbers`), before pydantic's lenient int()."""
    if isinstance(value, str) and read_version(value) is None:
        raise ValueError(f"a version is {VERSION_RULE}")
    return value


_STRICT = BeforeValidator(_version_number)
# In a path, `{version:int}`: only digits match the route (/versions/1:predict is not a version).
# A handler that also serves a path without a version gives it the default None (see `routes`).
VERSION = "{version:int}"
VersionPath = Annotated[int, Path(ge=1, le=MAX_VERSION, description="model version"), _STRICT]
VersionQuery = Annotated[
    int | None,
    Query(ge=1, le=MAX_VERSION, description="model version; default: the newest"),
    _STRICT,
]


def routes(register: Callable, *paths: str, **options: Any) -> Callable:
    """Registers a handler on each of `paths` with `register` (e.g. `router.get`). Where some paths
    name a `{version}` and others do not, the handler's `version` parameter is left out on the
    others, so that it does not become an undocumented `?version=` query parameter there."""

    def decorate(handler: Callable) -> Callable:
        signature = inspect.signature(handler, eval_str=True)
        versioned = any(VERSION in path for path in paths)
        for path in paths:
            endpoint = handler
            if versioned:
                parameters = [p for n, p in signature.parameters.items() if n != "version"]
                if VERSION in path:  # a path parameter has no default
                    version = signature.parameters["version"]
                    parameters.append(version.replace(default=inspect.Parameter.empty))
                endpoint = _with_parameters(handler, signature.replace(parameters=parameters))
            register(path, **options)(endpoint)
        return handler

    return decorate


def _with_parameters(handler: Callable, signature: inspect.Signature) -> Callable:
    async def endpoint(*args, **kwargs):
        return await handler(*args, **kwargs)

    endpoint.__signature__ = signature
    endpoint.__name__ = handler.__name__
    endpoint.__doc__ = handler.__doc__
    endpoint.__dict__.update(handler.__dict__)  # e.g. wire.post's mark
    return endpoint


def dataplane(request: Request) -> DataPlane:
    """The data plane, as the request middleware put it beside the request's `Call`."""
    return request.scope["state"]["dataplane"]


def call_of(request: Request) -> Call:
    """The request's passage through the data plane, begun by the request middleware."""
    return request.scope["state"]["call"]


def served(request: Request, name: str, version: int | str | None = None) -> LoadedModel:
    """The loaded version that answers this request (the newest where none is named), leased
    until the answer is written."""
    return dataplane(request).lease(call_of(request), name, version)
