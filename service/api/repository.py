"""Triton's model-repository extension: index, load (or reload) and unload models while serving.

Off unless `SERVICE_ADMIN_API_KEY` is set; then every call must send it as
`Authorization: Bearer <key>`.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Depends, Request

from service.api import RegistryDep
from service.errors import ErrorResponse, ServiceError


async def require_admin(request: Request) -> None:
    key = request.app.state.settings.admin_api_key
    if key is None:
        raise ServiceError(403, "the repository API is off; set SERVICE_ADMIN_API_KEY to enable it")
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secrets.compare_digest(given, key.get_secret_value()):
        raise ServiceError(401, "missing or wrong API key", "authorization")


router = APIRouter(
    prefix="/v2/repository",
    tags=["Model repository"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)


@router.post("/index")
async def index(registry: RegistryDep):
    return registry.index()


@router.post("/models/{model}/load")
async def load(registry: RegistryDep, model: str):
    """Loads every version of the model from the repository; replaces what is loaded, letting
    requests in flight finish on the old versions."""
    versions = await registry.load(model)
    return {"name": model, "versions": [str(v) for v in versions]}


@router.post("/models/{model}/unload")
async def unload(registry: RegistryDep, model: str):
    await registry.unload(model)
    return {"name": model, "state": "UNAVAILABLE"}
