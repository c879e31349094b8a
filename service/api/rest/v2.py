"""Open Inference Protocol (KServe V2) over REST: JSON tensors and Triton's binary tensor data
extension (`service/api/rest/binary.py`).

https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from contract.config import ModelConfig
from contract.numbers import read_count
from service import datatypes, inference
from service.api.rest import VersionPath, call_of, dataplane, routes, served, wire
from service.api.rest.binary import HEADER_LENGTH, BinaryData, binary_size, split
from service.api.rest.errors import ErrorResponse, protocol_route
from service.errors import BadInputError

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
    415: {"model": ErrorResponse, "description": "a Content-Encoding other than gzip or deflate"},
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
    parameters: dict[str, Any] | None = Field(
        None,
        description="`binary_data_size`: the input's data is that many bytes of the binary part "
        "of the body (binary tensor data extension) instead of `data`",
    )
    data: list[Any] | None = Field(
        None, description="Row-major elements, flat or nested; absent for binary data"
    )


class RequestOutput(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data`: answer this output in binary (or not)"
    )


class InferenceRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    parameters: dict[str, Any] | None = Field(
        None,
        description="`timeout`: the request's deadline in microseconds, as Triton's (0 or absent: "
        "the server's); a request that has not run by then is answered 504 and not run. "
        "`binary_data_output`: answer every output in binary unless it says otherwise",
    )
    inputs: list[RequestInput] = Field(min_length=1)
    outputs: list[RequestOutput] | None = None


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = Field(
        None, description="`binary_data_size` for an output in binary"
    )
    data: list[bool | int | float | str] | None = Field(
        None, description="Row-major elements, flat; absent for an output in binary"
    )


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
    "/models/{model}/versions/{version:int}/infer",
    body=InferenceRequest,
    answer=InferenceResponse,
    responses=INFER_ERRORS,
)
async def infer(request: Request, model: str, version: VersionPath = None):
    """Inference, with JSON tensors or Triton's binary tensor data extension (request header
    `Inference-Header-Content-Length`), in and out."""
    loaded = served(request, model, version)
    header_length = request.headers.get(HEADER_LENGTH)
    binary_from = read_count(header_length) if header_length is not None else None
    body_bytes = await wire.read_bytes(request, wire.tensors_kind(loaded), binary_from)
    header, binary = split(body_bytes, header_length)
    body = await wire.parse(request, InferenceRequest, header)
    call = call_of(request)
    inference.apply_timeout(call, (body.parameters or {}).get("timeout"))
    output = loaded.config.outputs[0]
    inference.check_tensors(
        loaded, [(i.name, i.datatype) for i in body.inputs], [o.name for o in body.outputs or []]
    )
    if not loaded.takes_rows:
        return await _infer_tensors(request, loaded, body, binary)
    tensor = body.inputs[0]
    size = _binary_size(tensor, "inputs[0]")
    if size is None:
        rows = wire.json_rows(
            request, loaded, tensor.data, tensor.shape, "inputs[0]",
            booleans_possible=wire.may_hold_booleans(header),
        )  # fmt: skip
    else:
        dataplane(request).check_shape(loaded, tensor.shape, "inputs[0].shape", "inputs[0]")
        binary_data = BinaryData(binary)
        rows = binary_data.take(tensor.name, size, tensor.datatype, tensor.shape, "inputs[0]")
        binary_data.check_all_taken()
    result = await dataplane(request).infer(call, loaded, rows, "inputs[0]")
    return _answer(request, loaded, body, {output.name: result})


async def _infer_tensors(request: Request, loaded, body: InferenceRequest, binary: memoryview):
    """A model of named tensors: each input in its own datatype and shape, every output (or
    those asked for) answered."""
    specs = loaded.input_specs
    binary_data = BinaryData(binary)
    arrays, fields = {}, {}
    for i, tensor in enumerate(body.inputs):
        field = fields[tensor.name] = f"inputs[{i}]"
        inference.check_shape(specs[tensor.name], tensor.shape, f"{field}.shape")
        size = _binary_size(tensor, field)
        arrays[tensor.name] = (
            datatypes.from_json(tensor.data, tensor.datatype, tensor.shape, f"{field}.data")
            if size is None
            else binary_data.take(tensor.name, size, tensor.datatype, tensor.shape, field)
        )
    binary_data.check_all_taken()
    results = await dataplane(request).infer_tensors(call_of(request), loaded, arrays, fields)
    return _answer(request, loaded, body, results)


def _binary_size(tensor: RequestInput, field: str) -> int | None:
    """The input's binary_data_size, where its data is binary; None for JSON data."""
    size = binary_size(tensor.parameters, field)
    if size is None and tensor.data is None:
        raise BadInputError(
            "Field required (or parameters.binary_data_size, for binary data)", f"{field}.data"
        )
    if size is not None and tensor.data is not None:
        raise BadInputError(
            "binary_data_size says the data is binary, but the input has JSON data too",
            f"{field}.parameters",
        )
    return size


def _answer(request: Request, loaded, body: InferenceRequest, results: dict) -> Response:
    """The outputs asked for (none: all), each in JSON or binary as the request says."""
    asked = [o.name for o in body.outputs] if body.outputs else []
    in_binary = _binary_outputs(body) if body.outputs or body.parameters else {None: False}
    outputs, blobs = [], []
    for spec in inference.answered(loaded, asked):
        result = results[spec.name]
        answer = {"name": spec.name, "shape": list(result.shape), "datatype": spec.datatype}
        if in_binary.get(spec.name, in_binary[None]):
            blobs.append(datatypes.to_bytes(result, spec.datatype))
            answer["parameters"] = {"binary_data_size": len(blobs[-1])}
        else:
            answer["data"] = datatypes.to_json(result, spec.datatype)
        outputs.append(answer)
    content = {"model_name": loaded.name, "model_version": str(loaded.version), "id": body.id}
    return wire.answer(request, {**content, "outputs": outputs}, blobs)


def _binary_outputs(body: InferenceRequest) -> dict[str | None, bool]:
    """Whether each output goes in binary: as it asks, else (key None) as the request asks for
    all."""
    everything = bool((body.parameters or {}).get("binary_data_output", False))
    chosen: dict[str | None, bool] = {None: everything}
    for output in body.outputs or []:
        asked = (output.parameters or {}).get("binary_data")
        if asked is not None:
            chosen[output.name] = bool(asked)
    return chosen


@router.get("", response_model=ServerMetadata)
async def server_metadata():
    return inference.server_metadata()


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


@routes(router.get, "/models/{model}", "/models/{model}/versions/{version:int}",
        response_model=ModelMetadata, responses=ERRORS)  # fmt: skip
async def model_metadata(request: Request, model: str, version: VersionPath = None):
    return inference.model_metadata(dataplane(request), served(request, model, version))


@routes(router.get, "/models/{model}/config", "/models/{model}/versions/{version:int}/config",
        response_model=ModelConfig, response_model_exclude_none=True, responses=ERRORS)  # fmt: skip
async def model_config(request: Request, model: str, version: VersionPath = None):
    """The version's config, as the service completed it from the graph where the folder's
    config.json is missing or partial (Triton's model configuration extension)."""
    return served(request, model, version).config


@routes(router.get, "/models/{model}/ready", "/models/{model}/versions/{version:int}/ready",
        responses=ERRORS)  # fmt: skip
async def model_ready(request: Request, model: str, version: VersionPath = None):
    loaded = served(request, model, version)
    return {"name": loaded.name, "version": str(loaded.version), "ready": True}
