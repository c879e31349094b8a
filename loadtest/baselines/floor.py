"""The floor of the benchmark: the least a FastAPI app under uvicorn does per request and, with
`--grpc-port`, the least a grpc.aio server in the same process does per call.

    python -m loadtest.baselines.floor --port 8001 --answers answers.json [--grpc-port 8002]

`answers.json` maps each benchmarked path to the service's answer to one request on it. The floor
has one POST route per path that reads the request body and returns that answer unchanged: the same
bytes on the wire as the service, with no parsing, validation, model or batching, so the service's
throughput over the floor's is the share that HTTP and FastAPI leave to its own work. Its gRPC
method is the service's `ModelInfer`, answering every call with a Boston answer built once, the
request and the answer passed as bytes (no protobuf work in Python): what grpcio itself costs.
"""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import numpy as np
from fastapi import FastAPI, Request, Response

from loadtest.baselines.server import arguments, new_app, serve
from service.api.grpc.messages import SERVICE_NAME, messages


def constant(answer: bytes):
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    return endpoint


def boston_answer() -> bytes:
    """A ModelInfer answer as the service gives it for one house (raw output contents)."""
    answer = messages.ModelInferResponse(model_name="boston", model_version="2")
    answer.outputs.add(name="price", datatype="FP32", shape=[1, 1])
    answer.raw_output_contents.append(np.zeros((1, 1), "<f4").tobytes())
    return answer.SerializeToString()


def grpc_floor(port: int) -> grpc.aio.Server:
    answer = boston_answer()

    async def model_infer(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return answer

    server = grpc.aio.server()
    method = grpc.unary_unary_rpc_method_handler(model_infer)  # bytes in, bytes out
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(SERVICE_NAME, {"ModelInfer": method}),)
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    return server


def create_app(answers: dict[str, str], grpc_port: int | None = None) -> FastAPI:
    app = new_app("HTTP floor", lifespan=serving_grpc(grpc_port) if grpc_port else None)
    for path, answer in answers.items():
        app.add_api_route(path, constant(answer.encode()), methods=["POST"])
    return app


def serving_grpc(port: int):
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        server = grpc_floor(port)
        await server.start()  # before uvicorn answers the readiness route
        yield
        await server.stop(grace=1)

    return lifespan


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--answers", type=Path, required=True, help="JSON: path → answer text")
    parser.add_argument("--grpc-port", type=int, help="also serve gRPC ModelInfer on this port")
    args = parser.parse_args()
    answers = json.loads(args.answers.read_text("utf-8"))
    serve(create_app(answers, args.grpc_port), args.host, args.port)


if __name__ == "__main__":
    main()
