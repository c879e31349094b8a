"""The HTTP floor of the benchmark: the least a FastAPI app under uvicorn does per request.

    python -m loadtest.baselines.floor --port 8001 --answers answers.json

`answers.json` maps each benchmarked path to the service's answer to one request on it. The floor
has one POST route per path that reads the request body and returns that answer unchanged: the same
bytes on the wire as the service, with no parsing, validation, model or batching, so the service's
throughput over the floor's is the share that HTTP and FastAPI leave to its own work.
"""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import FastAPI, Request, Response

from loadtest.baselines.server import arguments, new_app, serve


def constant(answer: bytes):
    async def endpoint(request: Request) -> Response:
        await request.body()
        return Response(answer, media_type="application/json")

    return endpoint


def create_app(answers: dict[str, str]) -> FastAPI:
    app = new_app("HTTP floor")
    for path, answer in answers.items():
        app.add_api_route(path, constant(answer.encode()), methods=["POST"])
    return app


def main() -> None:
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--answers", type=Path, required=True, help="JSON: path → answer text")
    args = parser.parse_args()
    serve(create_app(json.loads(args.answers.read_text("utf-8"))), args.host, args.port)


if __name__ == "__main__":
    main()
