"""Open Inference Protocol (KServe V2) over REST, JSON tensors (the binary extension is not offered).

https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from service import __version__
from service.api import call_of, dataplane, served, wire
from service.dataplane import Call
from service.errors import BadInputError, ErrorResponse, protocol_route
from service.registry import LoadedModel

# Protocol clients need not send a JSON Content-Type (tritonclient sends none); FastAPI >= 0.132
# would otherwise not parse their bodies. Nothing here acts on a browser's cookies, so no CSRF risk.
router = APIRouter(
    prefix="/v2",
    tags=["Open Inference Protocol (V2)"],
    strict_content_type=False,
    route_class=protocol_route(bad_input=400),
)
ERRORS = {
    400: {"model": ErrorResponse, "description": "bad input, naming the field"},
    404: {"model": ErrorResponse, "description": "no such model or version"},
}
# What a prediction may answer besides 200 (see README: limits, backpressure and deadlines).
INFER_ERRORS = {
    **ERRORS,
    413: {"model": ErrorResponse, "description": "the body exceeds SERVICE_MAX_BODY_BYTES"},
    503: {
        "model": ErrorResponse,
        "description": "the model's queue or the request memory is full, or the service is "
        "shutting down; see Retry-After",
    },
    504: {
        "model": ErrorResponse,
        "description": "the request's deadline (SERVICE_REQUEST_TIMEOUT_S, or "
        "parameters.timeout) passed before it ran",
    },
}
Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
                   "FP16", "FP32", "FP64", "BYTES"]  # fmt: skip


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    execution_providers: list[str] = Field(description="onnxruntime providers in use (extension)")


class RequestInput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    shape: list[int] = Field(description="Tensor shape; the data holds prod(shape) elements")
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] = Field(description="Row-major elements, flat or nested")


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = None


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description="`timeout`: the request's deadline in microseconds, as Triton's (0 or absent: "
        "the server's); a request that has not run by then is answered 504 and not run",
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    data: list[float]


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[ResponseOutput]


# The prediction routes first: routes are tried in order, and these carry the traffic.
@wire.post(
    router,
    "/models/{model}/infer",
    "/models/{model}/versions/{version}/infer",
    body=InferenceRequest,
    answer=InferenceResponse,
    responses=INFER_ERRORS,
)
async def infer(request: Request, model: str, version: str | None = None):
    loaded = served(request, model, version)
    body = await wire.read(request, InferenceRequest, require_json_type=False)
    call = call_of(request)
    apply_timeout(call, (body.parameters or {}).get("timeout"))
    output = loaded.config.outputs[0]
    if _binary_requested(body):
        raise BadInputError(
            "the binary tensor data extension is not supported; send JSON data", "parameters"
        )
    check_tensors(
        loaded, [(i.name, i.datatype) for i in body.inputs], [o.name for o in body.outputs or []]
    )
    tensor = body.inputs[0]
    rows = wire.json_rows(request, loaded, tensor.data, tensor.shape, "inputs[0]")
    result = await dataplane(request).infer(call, loaded, rows, "inputs[0]")
    return wire.answer(
        {
            "model_name": loaded.name,
            "model_version": str(loaded.version),
            "id": body.id,
            "parameters": None,
            "outputs": [
                {
                    "name": output.name,
                    "shape": list(result.shape),
                    "datatype": output.datatype,
                    "data": result.ravel().tolist(),
                }
            ],
        }
    )


@router.get("", response_model=ServerMetadata)
async def server_metadata():
    return ServerMetadata(name="dlwp-serving", version=__version__, extensions=["model_repository"])


@router.get("/health/live")
async def live():
    return {"live": True}


@router.get(
    "/health/ready",
    responses={503: {"description": "starting, or shutting down: send no traffic"}},
)
async def ready(request: Request, response: Response):
    is_ready = dataplane(request).ready
    response.status_code = 200 if is_ready else 503
    return {"ready": is_ready}


def _metadata(request: Request, model: LoadedModel) -> ModelMetadata:
    config = model.config
    loaded = dataplane(request).registry.models.get(config.name, {})
    return ModelMetadata(
        name=config.name,
        versions=[str(v) for v in sorted(loaded)],
        platform=config.platform,
        inputs=[TensorMetadata(**s.model_dump()) for s in config.inputs],
        outputs=[TensorMetadata(**s.model_dump()) for s in config.outputs],
        execution_providers=model.runtime.providers,
    )


@router.get("/models/{model}", response_model=ModelMetadata, responses=ERRORS)
@router.get("/models/{model}/versions/{version}", response_model=ModelMetadata, responses=ERRORS)
async def model_metadata(request: Request, model: str, version: str | None = None):
    return _metadata(request, served(request, model, version))


@router.get("/models/{model}/ready", responses=ERRORS)
@router.get("/models/{model}/versions/{version}/ready", responses=ERRORS)
async def model_ready(request: Request, model: str, version: str | None = None):
    loaded = served(request, model, version)
    return {"name": loaded.name, "version": str(loaded.version), "ready": True}


def apply_timeout(call: Call, timeout: object) -> None:
    """A V2 request's `timeout` parameter (microseconds, as Triton's; 0 or absent: the server's)
    shortens its deadline; REST and gRPC alike."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise BadInputError(
            "a timeout is a whole number of microseconds (0: the server's)", "parameters.timeout"
        )
    if timeout:
        call.shorten(timeout / 1e6)


def check_tensors(model: LoadedModel, inputs: list[tuple[str, str]], outputs: list[str]) -> None:
    """A V2 request's inputs (name, datatype) are the model's one input, and the outputs it asks
    for (none: all) are the model's; REST and gRPC alike."""
    spec, output = model.config.inputs[0], model.config.outputs[0]
    names = [name for name, _ in inputs]
    if names != [spec.name]:
        raise BadInputError(f"the model takes one input named '{spec.name}', got {names}", "inputs")
    datatype = inputs[0][1]
    if datatype != spec.datatype:
        raise BadInputError(
            f"datatype {datatype} does not match the model input's {spec.datatype}",
            "inputs[0].datatype",
        )
    unknown = [name for name in outputs if name != output.name]
    if unknown:
        raise BadInputError(f"unknown outputs {unknown}; the model has '{output.name}'", "outputs")


def _binary_requested(body: InferenceRequest) -> bool:
    flags = [body.parameters or {}] + [o.parameters or {} for o in body.outputs or []]
    flags += [i.parameters or {} for i in body.inputs]
    return any(
        f.get("binary_data") or f.get("binary_data_output") or f.get("binary_data_size")
        for f in flags
    )
