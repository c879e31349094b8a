"""Each RPC of `inference.GRPCInferenceService` translated to the data plane and back: the model
leased, the tensors checked (`service.inference`, as REST checks them), the input converted,
`DataPlane.infer`, the answer built. The request lifecycle around each call (admission, reading,
deadline, errors → status, metrics, span) is the server's (`service.api.grpc.server`).

RPCs the service cannot honour (streaming, shared memory, statistics, trace, logging) are not
registered, so gRPC answers them UNIMPLEMENTED.
"""

from __future__ import annotations

import math

import numpy as np

import grpc
from service import datatypes, inference
from service.api.grpc.messages import messages
from service.dataplane import Call, DataPlane
from service.errors import BadInputError, Kind, NotFoundError, ServiceError

STATUS: dict[Kind, grpc.StatusCode] = {
    Kind.BAD_INPUT: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.UNAUTHENTICATED: grpc.StatusCode.UNAUTHENTICATED,
    Kind.FORBIDDEN: grpc.StatusCode.PERMISSION_DENIED,
    Kind.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    Kind.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Kind.UNSUPPORTED_MEDIA_TYPE: grpc.StatusCode.INVALID_ARGUMENT,
    Kind.LOAD_FAILED: grpc.StatusCode.INVALID_ARGUMENT,  # as Triton answers a failed load
    Kind.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    Kind.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    Kind.INTERNAL: grpc.StatusCode.INTERNAL,
}
# The typed-contents field that holds each datatype (FP16 has none: raw contents only).
CONTENTS_FIELDS = {
    "BOOL": "bool_contents",
    "INT8": "int_contents", "INT16": "int_contents", "INT32": "int_contents",
    "INT64": "int64_contents",
    "UINT8": "uint_contents", "UINT16": "uint_contents", "UINT32": "uint_contents",
    "UINT64": "uint64_contents",
    "FP32": "fp32_contents", "FP64": "fp64_contents",
    "BYTES": "bytes_contents",
}  # fmt: skip


def status_of(error: ServiceError) -> tuple[grpc.StatusCode, str]:
    """The gRPC status and message of an error: "<field>: <reason>", as the REST answers'."""
    message = f"{error.field}: {error.reason}" if error.field else error.reason
    return STATUS[error.kind], message


class InferenceServicer:
    """`inference.GRPCInferenceService`: each method the RPC of the same name, called with the
    request's `Call`, its parsed message and its gRPC context."""

    def __init__(self, dataplane: DataPlane):
        self.dataplane = dataplane
        self.settings = dataplane.settings

    # -- health and metadata

    async def ServerLive(self, call: Call, request, context):
        return messages.ServerLiveResponse(live=True)

    async def ServerReady(self, call: Call, request, context):
        return messages.ServerReadyResponse(ready=self.dataplane.ready)

    async def ModelReady(self, call: Call, request, context):
        try:
            self.dataplane.lease(call, request.name, request.version)
        except NotFoundError:
            return messages.ModelReadyResponse(ready=False)
        return messages.ModelReadyResponse(ready=True)

    async def ServerMetadata(self, call: Call, request, context):
        return messages.ServerMetadataResponse(**inference.server_metadata())

    async def ModelMetadata(self, call: Call, request, context):
        model = self.dataplane.lease(call, request.name, request.version)
        metadata = inference.model_metadata(self.dataplane, model)
        del metadata["execution_providers"]  # not in the proto
        return messages.ModelMetadataResponse(**metadata)

    # -- inference

    async def ModelInfer(self, call: Call, request, context):
        plane = self.dataplane
        model = plane.lease(call, request.model_name, request.model_version)
        if "timeout" in request.parameters:
            parameter = request.parameters["timeout"]
            choice = parameter.WhichOneof("parameter_choice")
            if choice is None:
                raise BadInputError("the timeout parameter holds no value", "parameters.timeout")
            inference.apply_timeout(call, getattr(parameter, choice))
        inference.check_tensors(
            model,
            [(i.name, i.datatype) for i in request.inputs],
            [o.name for o in request.outputs],
        )
        if not model.takes_rows:
            return await self._infer_tensors(call, model, request)
        tensor = request.inputs[0]
        shape = list(tensor.shape)
        plane.check_shape(model, shape, "inputs[0].shape", "inputs[0]")
        raw = bool(request.raw_input_contents)
        rows = _raw(request, 0, shape) if raw else _typed(tensor, 0, shape)
        result = await plane.infer(call, model, rows, "inputs[0]")
        return _answer(model, request, {model.config.outputs[0].name: result}, raw)

    async def _infer_tensors(self, call: Call, model, request):
        """A model of named tensors: each input in its own datatype and shape, every output (or
        those asked for) answered."""
        specs = model.input_specs
        raw = bool(request.raw_input_contents)
        arrays = {}
        fields = {tensor.name: f"inputs[{i}]" for i, tensor in enumerate(request.inputs)}
        for i, tensor in enumerate(request.inputs):
            shape = list(tensor.shape)
            inference.check_shape(specs[tensor.name], shape, f"inputs[{i}].shape")
            arrays[tensor.name] = _raw(request, i, shape) if raw else _typed(tensor, i, shape)
        results = await self.dataplane.infer_tensors(call, model, arrays, fields)
        return _answer(model, request, results, raw)

    # -- the model repository (Triton's extension), behind SERVICE_ADMIN_API_KEY

    def _require_admin(self, context: grpc.aio.ServicerContext) -> None:
        metadata = dict(context.invocation_metadata() or ())
        inference.check_admin_key(self.settings.admin_api_key, metadata.get("authorization", ""))

    async def RepositoryIndex(self, call: Call, request, context):
        self._require_admin(context)
        entries = self.dataplane.registry.index()
        if request.ready:
            entries = [e for e in entries if e["state"] == "READY"]
        return messages.RepositoryIndexResponse(
            models=[messages.RepositoryIndexResponse.ModelIndex(**entry) for entry in entries]
        )

    async def RepositoryModelLoad(self, call: Call, request, context):
        self._require_admin(context)
        await self.dataplane.registry.load(request.model_name)
        return messages.RepositoryModelLoadResponse()

    async def RepositoryModelUnload(self, call: Call, request, context):
        self._require_admin(context)
        await self.dataplane.registry.unload(request.model_name)
        return messages.RepositoryModelUnloadResponse()


def _answer(model, request, results: dict, raw: bool):
    """The outputs asked for (none: all), in the form the inputs came in: raw contents (as
    tritonclient sends) or typed ones; raw for all where one has no typed field (FP16), as the
    proto allows no mix."""
    answer = messages.ModelInferResponse(
        model_name=model.name, model_version=str(model.version), id=request.id
    )
    specs = inference.answered(model, [o.name for o in request.outputs])
    raw = raw or any(spec.datatype not in CONTENTS_FIELDS for spec in specs)
    for spec in specs:
        result = results[spec.name]
        tensor = answer.outputs.add(name=spec.name, datatype=spec.datatype, shape=result.shape)
        if raw:
            answer.raw_output_contents.append(datatypes.to_bytes(result, spec.datatype))
        elif spec.datatype == "BYTES":
            tensor.contents.bytes_contents.extend(
                e.encode() if isinstance(e, str) else e for e in result.ravel().tolist()
            )
        else:
            getattr(tensor.contents, CONTENTS_FIELDS[spec.datatype]).extend(result.ravel().tolist())
    return answer


def _raw(request, index: int, shape: list[int]) -> np.ndarray:
    """Input `index` from `raw_input_contents`: little-endian bytes, row-major."""
    tensor = request.inputs[index]
    if len(request.raw_input_contents) != len(request.inputs) or tensor.HasField("contents"):
        raise BadInputError(
            "send the inputs' data either in raw_input_contents (one entry per input) or in "
            "each input's contents, not both",
            "raw_input_contents",
        )
    return datatypes.from_bytes(
        request.raw_input_contents[index],
        tensor.name,
        tensor.datatype,
        shape,
        f"raw_input_contents[{index}]",
    )


def _typed(tensor, index: int, shape: list[int]) -> np.ndarray:
    """Input `index` from its contents, in the field of its datatype, converted value by value
    (`np.fromiter`: no Python list of the values on the way)."""
    where = f"inputs[{index}].contents"
    field = CONTENTS_FIELDS.get(tensor.datatype)
    if field is None:
        raise BadInputError(f"{tensor.datatype} data goes in raw_input_contents", where)
    others = [f.name for f, _ in tensor.contents.ListFields() if f.name != field]
    if others:
        raise BadInputError(f"{tensor.datatype} data goes in {field}, got {others}", where)
    values = getattr(tensor.contents, field)
    if len(values) != math.prod(shape):
        raise BadInputError(
            f"{field} holds {len(values)} values, shape {shape} needs {math.prod(shape)}", where
        )
    if tensor.datatype == "BYTES":
        return datatypes.from_json(datatypes.texts(values, where), "BYTES", shape, where)
    dtype = datatypes.DATATYPES[tensor.datatype]
    wide = np.fromiter(values, _WIDE.get(dtype.kind, dtype), len(values))
    if dtype.kind in "iu" and wide.size:
        datatypes.check_integers(wide.min(), wide.max(), tensor.datatype, where)
    return wide.astype(dtype, copy=False).reshape(shape)


_WIDE = {"i": np.dtype(np.int64), "u": np.dtype(np.uint64)}  # the proto's widest, then narrowed
