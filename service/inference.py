"""The Open Inference Protocol (V2) itself, written once for every transport: what a server and a
model say about themselves, which tensors a request may send and ask for, its timeout parameter,
tensor data as bytes, and the key of the repository API. REST (`service.api.rest`) and gRPC
(`service.api.grpc`) translate their wire formats to and from these; neither imports the other.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pydantic import SecretStr

from contract.config import TensorSpec
from service import __version__
from service.errors import BadInputError, Kind, ServiceError
from service.registry import LoadedModel

if TYPE_CHECKING:
    from service.dataplane import Call, DataPlane

SERVER_NAME = "dlwp-serving"
EXTENSIONS = ["model_repository", "model_configuration"]


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
    """A request's inputs (name, datatype) are the model's inputs, each once and in its datatype,
    and the outputs it asks for (none: all) are the model's."""
    specs = model.input_specs
    names = [name for name, _ in inputs]
    if names != model.input_names and sorted(names) != sorted(specs):
        (first, *others) = specs
        wanted = f"the inputs {list(specs)}" if others else f"one input named '{first}'"
        raise BadInputError(f"the model takes {wanted}, got {names}", "inputs")
    for i, (name, datatype) in enumerate(inputs):
        if datatype != specs[name].datatype:
            raise BadInputError(
                f"datatype {datatype} does not match the model input's {specs[name].datatype}",
                f"inputs[{i}].datatype",
            )
    known = model.output_names
    unknown = [name for name in outputs if name not in known]
    if unknown:
        has = f"'{known[0]}'" if len(known) == 1 else str(known)
        raise BadInputError(f"unknown outputs {unknown}; the model has {has}", "outputs")


def check_shape(spec: TensorSpec, shape: Sequence[int], field: str) -> None:
    """A tensor's shape fits its spec: as many dimensions, each as the spec says (-1: any)."""
    if len(shape) != len(spec.shape) or any(
        d < 0 or (w != -1 and d != w) for d, w in zip(shape, spec.shape, strict=False)
    ):
        raise BadInputError(
            f"shape {list(shape)} does not fit input '{spec.name}' of shape {spec.shape} "
            "(-1: any size)",
            field,
        )


def answered(model: LoadedModel, asked: list[str]) -> list[TensorSpec]:
    """The outputs a request is answered with: those it asks for, in its order; none: all."""
    if not asked:
        return model.config.outputs
    specs = {spec.name: spec for spec in model.config.outputs}
    return [specs[name] for name in asked]


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
