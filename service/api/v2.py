"""Open Inference Protocol (KServe V2) over REST, JSON tensors (the binary extension is not offered).

https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from service import __version__
from service.api import RegistryDep, served, wire
from service.errors import BadInputError, ErrorResponse
from service.registry import LoadedModel

# Protocol clients need not send a JSON Content-Type (tritonclient sends none); FastAPI >= 0.132
# would otherwise not parse their bodies. Nothing here acts on a browser's cookies, so no CSRF risk.
router = APIRouter(prefix="/v2", tags=["Open Inference Protocol (V2)"], strict_content_type=False)
ERRORS = {
    400: {"model": ErrorResponse},
    404: {"model": ErrorResponse},
    503: {"model": ErrorResponse},
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
    parameters: dict[str, Any] | None = None
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
    responses=ERRORS,
)
async def infer(request: Request, model: str, version: str | None = None):
    loaded = served(request, model, version)
    body = await wire.read(request, InferenceRequest, require_json_type=False)
    spec, output = loaded.config.inputs[0], loaded.config.outputs[0]
    if _binary_requested(body):
        raise BadInputError(
            "the binary tensor data extension is not supported; send JSON data", "parameters"
        )
    if len(body.inputs) != 1 or body.inputs[0].name != spec.name:
        names = [i.name for i in body.inputs]
        raise BadInputError(f"the model takes one input named '{spec.name}', got {names}", "inputs")
    tensor = body.inputs[0]
    if tensor.datatype != spec.datatype:
        raise BadInputError(
            f"datatype {tensor.datatype} does not match the model input's {spec.datatype}",
            "inputs[0].datatype",
        )
    rows = tensor_to_array(
        tensor.data, tensor.shape, "inputs[0]", request.app.state.settings.max_batch_rows
    )
    if body.outputs is not None:
        unknown = [o.name for o in body.outputs if o.name != output.name]
        if unknown:
            raise BadInputError(
                f"unknown outputs {unknown}; the model has '{output.name}'", "outputs"
            )
    result = await loaded.predict(rows, "inputs[0]")
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


@router.get("/health/ready", responses=ERRORS)
async def ready(request: Request, response: Response):
    is_ready = bool(getattr(request.app.state, "ready", False))
    response.status_code = 200 if is_ready else 503
    return {"ready": is_ready}


def _metadata(registry, model: LoadedModel) -> ModelMetadata:
    config = model.config
    return ModelMetadata(
        name=config.name,
        versions=[str(v) for v in sorted(registry.models.get(config.name, {}))],
        platform=config.platform,
        inputs=[TensorMetadata(**s.model_dump()) for s in config.inputs],
        outputs=[TensorMetadata(**s.model_dump()) for s in config.outputs],
        execution_providers=model.runtime.providers,
    )


@router.get("/models/{model}", response_model=ModelMetadata, responses=ERRORS)
@router.get("/models/{model}/versions/{version}", response_model=ModelMetadata, responses=ERRORS)
async def model_metadata(
    registry: RegistryDep, request: Request, model: str, version: str | None = None
):
    return _metadata(registry, served(request, model, version))


@router.get("/models/{model}/ready", responses=ERRORS)
@router.get("/models/{model}/versions/{version}/ready", responses=ERRORS)
async def model_ready(request: Request, model: str, version: str | None = None):
    loaded = served(request, model, version)
    return {"name": loaded.name, "version": str(loaded.version), "ready": True}


def _binary_requested(body: InferenceRequest) -> bool:
    flags = [body.parameters or {}] + [o.parameters or {} for o in body.outputs or []]
    flags += [i.parameters or {} for i in body.inputs]
    return any(
        f.get("binary_data") or f.get("binary_data_output") or f.get("binary_data_size")
        for f in flags
    )


def tensor_to_array(
    data: list, shape: list[int], field: str, max_rows: int, rows_only: bool = False
) -> np.ndarray:
    """JSON tensor data (flat or nested; a list of rows where `rows_only`) → a float array of
    `shape`, or a 400 naming the field (a list of rows has no `shape` and `data` of its own)."""
    shape_field, data_field = (field, field) if rows_only else (f"{field}.shape", f"{field}.data")
    if len(shape) != 2 or any(d < 0 for d in shape):
        raise BadInputError(f"expected a 2-d shape [rows, columns], got {shape}", shape_field)
    if shape[0] > max_rows:
        raise BadInputError(f"{shape[0]} rows exceed the limit of {max_rows}", shape_field)
    try:
        array = np.asarray(data)
    except ValueError:
        raise BadInputError("nested data is ragged", data_field) from None
    if array.size and array.dtype.kind not in "iuf":
        raise BadInputError("data must hold numbers only", data_field)
    if rows_only and array.size and array.ndim != 2:
        raise BadInputError(f"expected a list of rows of {shape[1]} numbers", field)
    if array.size != shape[0] * shape[1]:
        raise BadInputError(
            f"data holds {array.size} elements, shape {shape} needs {shape[0] * shape[1]}",
            data_field,
        )
    return array.reshape(shape)
