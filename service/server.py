"""The composition root: the one place that builds the service and starts and stops it.

Per worker process (`create_app`, uvicorn's factory): the data plane, the REST application and,
where `SERVICE_GRPC_PORT` names a port, the gRPC server, all on the same data plane; the models
are loaded and checked before any transport says ready, the transports start side by side, and
on SIGTERM they drain and stop together (`lifespan`). `serve` runs the worker processes.

A transport is a package of `service/api/` (REST, gRPC); adding one is a package and a line in
`transports`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import tempfile
import threading
import time
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI
from opentelemetry.trace import TracerProvider
from uvicorn.supervisors import Multiprocess

from service import heap, tracing
from service.api.grpc.server import GrpcServer
from service.api.rest import app as rest
from service.api.rest.http import ServerConfig, config
from service.dataplane import DataPlane
from service.metrics import MULTIPROCESS_DIR, Metrics
from service.settings import Settings

log = logging.getLogger("service")


def transports(dataplane: DataPlane) -> list:
    """The transports beside REST (whose server is uvicorn's): each starts once the models are
    loaded and stops once the drain is over."""
    settings = dataplane.settings
    return [GrpcServer(dataplane)] if settings.grpc_port else []


def create_app(
    settings: Settings | None = None, tracer_provider: TracerProvider | None = None
) -> FastAPI:
    """One worker's service. `tracer_provider`: where the spans go; by default where the
    `OTEL_*` variables say (`service.tracing`), and none are made when they say nothing."""
    heap.configure()
    settings = settings or Settings()
    own_provider = tracer_provider is None
    if own_provider:
        tracer_provider = tracing.provider_from_environment()
    dataplane = DataPlane(settings, Metrics(), tracing.tracer_of(tracer_provider))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        started = time.perf_counter()
        try:
            dataplane.load()
        except Exception as error:
            log.critical("cannot start: %s", error)
            raise
        dataplane.start()
        others = transports(dataplane)
        for transport in others:
            await transport.start()
        _drain_at_the_signal(dataplane)
        log.info(
            "ready in %.2f s: %s, %d intra-op threads per model",
            time.perf_counter() - started,
            ", ".join(f"{n} v{sorted(v)}" for n, v in dataplane.registry.models.items()),
            settings.intra_op_threads,
        )
        yield {"dataplane": dataplane}  # also seen by the HTTP connections (api/rest/http.py)
        dataplane.drain()
        for transport in others:
            await transport.stop()
        await dataplane.close()
        if own_provider and tracer_provider is not None:
            # Exports the spans still buffered: the SDK's own atexit hook does not run in
            # worker processes (SERVICE_WORKERS > 1).
            tracer_provider.shutdown()
        log.info("stopped")

    return rest.build(dataplane, lifespan)


def _drain_at_the_signal(dataplane: DataPlane) -> None:
    """The first SIGTERM or SIGINT begins the drain at once: readiness turns false, gRPC refuses
    new calls, and connections HTTP still accepts are served as draining. uvicorn, whose handler
    runs too, acts on the signal only at its next tick (0.1 s later), when it closes the listener."""
    if threading.current_thread() is not threading.main_thread():
        return  # a server run in a thread (the tests' in-process one) receives no signals
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        uvicorns = signal.getsignal(sig)

        def handler(signum: int, frame, uvicorns=uvicorns) -> None:
            loop.call_soon_threadsafe(dataplane.drain)
            if callable(uvicorns):
                uvicorns(signum, frame)

        signal.signal(sig, handler)


def serve(settings: Settings) -> None:
    """Runs the service until SIGTERM or SIGINT; with `workers` > 1 in as many processes, whose
    metrics are added up (prometheus-client's multiprocess mode, in a folder of their own)."""
    server_config = config(settings, "service.server:create_app")
    sockets = [server_config.bind_socket()]
    if settings.workers == 1:
        uvicorn.Server(server_config).run(sockets=sockets)
        return
    with tempfile.TemporaryDirectory(prefix="service-metrics-") as folder:
        os.environ.setdefault(MULTIPROCESS_DIR, folder)  # the workers inherit it
        Supervisor(server_config, sockets=sockets).run()


class Supervisor(Multiprocess):
    """uvicorn's supervisor of worker processes, but the first SIGTERM or SIGINT reaches the
    workers at once (uvicorn's looks at its signals every half second: meanwhile the workers
    accepted connections and said they were ready), and the supervisor's own copy of the
    listening socket is closed then, so that the workers' closing theirs closes it for good."""

    def __init__(self, config: ServerConfig, sockets: list[socket.socket]):
        super().__init__(config, sockets=sockets)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_now)

    def _stop_now(self, sig: int, frame) -> None:
        if self.should_exit.is_set():
            return
        self.should_exit.set()
        self.terminate_all()
        # The supervisor's handles only: the connections queued on the socket are the workers'
        # to take and answer as they drain (`HttpProtocol.shutdown`).
        for sock in [*self.sockets, self.config.listener]:
            if sock is not None:
                sock.close()
