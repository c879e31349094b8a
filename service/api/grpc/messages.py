"""The V2 gRPC service's messages, built from the descriptor set compiled from
`proto/grpc_predict_v2.proto` (see that file for the command) into a descriptor pool of their own:
tritonclient and other KServe servers register the same `inference.*` names in protobuf's default
pool, and two sets of them cannot live in one process there.

The service is `inference.GRPCInferenceService`, the name KServe's proto and Triton's share, so
`tritonclient.grpc` works unmodified.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

DESCRIPTORS = Path(__file__).parent / "proto" / "grpc_predict_v2.binpb"
SERVICE_NAME = "inference.GRPCInferenceService"


def _service_descriptor():
    files = descriptor_pb2.FileDescriptorSet.FromString(DESCRIPTORS.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    for file in files.file:
        pool.Add(file)
    return pool.FindServiceByName(SERVICE_NAME)


SERVICE = _service_descriptor()
# The proto's messages by name, e.g. `messages.ModelInferRequest`.
messages = SimpleNamespace(
    **{
        name: message_factory.GetMessageClass(message)
        for name, message in SERVICE.file.message_types_by_name.items()
    }
)
# Each RPC's request and response classes, by method name.
METHODS = {
    method.name: (
        message_factory.GetMessageClass(method.input_type),
        message_factory.GetMessageClass(method.output_type),
    )
    for method in SERVICE.methods
}
