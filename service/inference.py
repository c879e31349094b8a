"""The Open Inference Protocol (V2) itself, written once for every transport: what a server and a
model say about themselves, which tensors a request may send and ask for, its timeout parameter,
tensor data as bytes, and the key of the repository API. REST (`service.api.rest`) and gRPC
(`service.api.grpc`) translate their wire formats to and from these; neither imports the other.
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from pydantic import SecretStr

from service import __version__
from service.errors import BadInputError, Kind, ServiceError
from service.registry import LoadedModel

if TYPE_CHECKING:
    from service.dataplane import Call, DataPlane

SERVER_NAME = "dlwp-serving"
EXTENSIONS = ["model_repository"]
# The V2 datatypes of fixed size, as NumPy's little-endian dtypes (BYTES has no fixed size).
DATATYPES: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
        "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
        "FP16": "<f2", "FP32": "<f4", "FP64": "<f8",
    }.items()
}  # fmt: skip


def server_metadata() -> dict:
    return {"name": SERVER_NAME, "version": __version__, "extensions": EXTENSIONS}


def model_metadata(dataplane: DataPlane, model: LoadedModel) -> dict:
    """A model version's metadata: its versions loaded, platform and tensors, and the
    onnxruntime providers that run it (an extension)."""
    config = model.config
    return {
        "name": config.name,
        "versions": [str(v) for v in sorted(dataplane.registry.models.get(config.name, {}))],
        "platform": config.platform,
        "inputs": [s.model_dump() for s in config.inputs],
        "outputs": [s.model_dump() for s in config.outputs],
        "execution_providers": model.runtime.providers,
    }


def apply_timeout(call: Call, timeout: object) -> None:
    """A request's `timeout` parameter (microseconds, as Triton's; 0 or absent: the server's)
    shortens its deadline."""
    if timeout is None:
        return
    if isinstance(timeout, bool) or not isinstance(timeout, int) or timeout < 0:
        raise BadInputError(
            "a timeout is a whole number of microseconds (0: the server's)", "parameters.timeout"
        )
    if timeout:
        call.shorten(timeout / 1e6)


def check_tensors(model: LoadedModel, inputs: list[tuple[str, str]], outputs: list[str]) -> None:
    """A request's inputs (name, datatype) are the model's one input, and the outputs it asks
    for (none: all) are the model's."""
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


def from_bytes(
    data: bytes | memoryview,
    name: str,
    datatype: str,
    shape: Sequence[int],
    field: str,
    what: str = "holds",
) -> np.ndarray:
    """Raw data of input `name` (little-endian, row-major) as an array of `shape`, or a 400
    naming the field and the input when its size disagrees with shape × datatype."""
    dtype = DATATYPES.get(datatype)
    if dtype is None:
        raise BadInputError(f"{datatype} has no fixed size; send it as JSON", field)
    needed = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    if len(data) != needed:
        raise BadInputError(
            f"{what} {len(data)} bytes; input '{name}' of shape {list(shape)} and datatype "
            f"{datatype} needs {needed}",
            field,
        )
    return np.frombuffer(data, dtype).reshape(shape)


def to_bytes(array: np.ndarray, datatype: str) -> bytes:
    return array.astype(DATATYPES[datatype], copy=False).tobytes()


def check_admin_key(key: SecretStr | None, authorization: str) -> None:
    """`authorization` (`Bearer <key>`, an HTTP header or gRPC metadata) opens the repository
    API, which is off where no key is set."""
    if key is None:
        raise ServiceError(
            "the repository API is off; set SERVICE_ADMIN_API_KEY to enable it",
            kind=Kind.FORBIDDEN,
        )
    scheme, _, given = authorization.partition(" ")
    # Bytes: compare_digest refuses str with characters beyond ASCII (a header may carry any).
    expected = key.get_secret_value().encode()
    if scheme.lower() != "bearer" or not secrets.compare_digest(given.encode("latin-1"), expected):
        raise ServiceError("missing or wrong API key", "authorization", Kind.UNAUTHENTICATED)
