"""Open Inference Protocol (KServe V2) over REST: JSON tensors and Triton's binary tensor data
extension (`service/api/rest/binary.py`).

https://kserve.github.io/website/latest/modelserving/data_plane/v2_protocol/
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from contract.numbers import read_count
from service import inference
from service.admission import BodyKind
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
    data: list[float] | None = Field(None, description="absent for an output in binary")


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
    body_bytes = await wire.read_bytes(request, BodyKind.NUMBERS, binary_from)
    header, binary = split(body_bytes, header_length)
    body = await wire.parse(request, InferenceRequest, header)
    call = call_of(request)
    inference.apply_timeout(call, (body.parameters or {}).get("timeout"))
    output = loaded.config.outputs[0]
    inference.check_tensors(
        loaded, [(i.name, i.datatype) for i in body.inputs], [o.name for o in body.outputs or []]
    )
    tensor = body.inputs[0]
    size = binary_size(tensor.parameters, "inputs[0]")
    if size is None and tensor.data is None:
        raise BadInputError(
            "Field required (or parameters.binary_data_size, for binary data)", "inputs[0].data"
        )
    if size is not None and tensor.data is not None:
        raise BadInputError(
            "binary_data_size says the data is binary, but the input has JSON data too",
            "inputs[0].parameters",
        )
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
    binary_output = _binary_output(body)
    result = await dataplane(request).infer(call, loaded, rows, "inputs[0]")
    answer = {"name": output.name, "shape": list(result.shape), "datatype": output.datatype}
    blobs = []
    if binary_output:
        blobs.append(inference.to_bytes(result, output.datatype))
        answer["parameters"] = {"binary_data_size": len(blobs[0])}
    else:
        answer["data"] = result.ravel().tolist()
    content = {"model_name": loaded.name, "model_version": str(loaded.version), "id": body.id}
    return wire.answer(request, {**content, "outputs": [answer]}, blobs)


def _binary_output(body: InferenceRequest) -> bool:
    """Whether the output goes in binary: as it asks, else as the request asks for all."""
    everything = bool((body.parameters or {}).get("binary_data_output", False))
    if body.outputs is None:
        return everything
    asked = [o.parameters.get("binary_data") for o in body.outputs if o.parameters]
    return bool(asked[-1]) if asked and asked[-1] is not None else everything


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


@routes(router.get, "/models/{model}/ready", "/models/{model}/versions/{version:int}/ready",
        responses=ERRORS)  # fmt: skip
async def model_ready(request: Request, model: str, version: VersionPath = None):
    loaded = served(request, model, version)
    return {"name": loaded.name, "version": str(loaded.version), "ready": True}
