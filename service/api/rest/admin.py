"""Triton's model-repository extension: index, load (or reload) and unload models while serving.

Off unless `SERVICE_ADMIN_API_KEY` is set; then every call must send it as
`Authorization: Bearer <key>`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from service.api.rest import dataplane
from service.api.rest.errors import ErrorResponse, protocol_route
from service.inference import check_admin_key


async def require_admin(request: Request) -> None:
    check_admin_key(
        request.app.state.settings.admin_api_key, request.headers.get("authorization", "")
    )


router = APIRouter(
    prefix="/v2/repository",
    tags=["Model repository"],
    dependencies=[Depends(require_admin)],
    route_class=protocol_route(bad_input=400),
    responses={
        401: {"model": ErrorResponse},
        403: {"model": ErrorResponse},
        404: {"model": ErrorResponse},
    },
)


@router.post("/index")
async def index(request: Request):
    return dataplane(request).registry.index()


@router.post(
    "/models/{model}/load",
    responses={400: {"model": ErrorResponse, "description": "a file of the model is broken"}},
)
async def load(request: Request, model: str):
    """Loads every version of the model from the repository; replaces what is loaded, letting
    requests in flight finish on the old versions."""
    versions = await dataplane(request).registry.load(model)
    return {"name": model, "versions": [str(v) for v in versions]}


@router.post("/models/{model}/unload")
async def unload(request: Request, model: str):
    """Takes the model out of service: new requests get 404; requests admitted before finish."""
    await dataplane(request).registry.unload(model)
    return {"name": model, "state": "UNAVAILABLE"}
