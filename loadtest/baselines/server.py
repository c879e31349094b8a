"""What the benchmark's HTTP baselines share with the service: uvicorn and its options, a readiness
route, and the command line (`--host`, `--port`)."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Callable

import uvicorn
from fastapi import FastAPI


def arguments(description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    return parser


def new_app(title: str, lifespan=None) -> FastAPI:
    """A FastAPI app with the service's readiness route, which `loadtest/harness/servers.py` waits for; built
    once the models (if any) are loaded, so that it answers only when they are (and once its
    `lifespan` has started)."""
    app = FastAPI(title=title, lifespan=lifespan)

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    return app


def serve_models(description: str, create_app: Callable[[list[str]], FastAPI]) -> None:
    """The command line of a baseline that loads models: `--host`, `--port`, `--models`."""
    parser = arguments(description)
    parser.add_argument("--models", nargs="+", required=True)
    args = parser.parse_args()
    serve(create_app(args.models), args.host, args.port)


def serve(app: FastAPI, host: str, port: int) -> None:
    """uvicorn as `service/__main__.py` runs it: one worker, its default loop and HTTP parser
    ("auto": uvloop and httptools where installed), no access log, no server header, and a clean
    exit on SIGTERM."""
    signal.signal(signal.SIGTERM, lambda signum, frame: None)  # see service/__main__.py
    uvicorn.run(
        app,
        host=host,
        port=port,
        workers=1,
        log_level="warning",
        access_log=False,
        server_header=False,
    )
