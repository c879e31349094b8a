"""The HTTP server: uvicorn, with connections that cannot be held forever and a shutdown that
answers every request it admitted.

uvicorn's own HTTP/1.1 protocol (httptools) is extended, not replaced:

- a connection must send its first request within `SERVICE_IDLE_TIMEOUT_S` and each request's
  headers within `SERVICE_HEADER_TIMEOUT_S` of its first byte; else it is answered 408 and closed
  (uvicorn closes a connection only when it is idle after a response);
- when a client leaves, the data plane hears of it and drops its queued work;
- on shutdown (SIGTERM), the connections tell the data plane (readiness turns false, the drain
  clock starts); a connection whose request is under way, headers or body, finishes it and then
  closes; an idle one is closed after the bytes already received are read (a request sent just
  before the signal is served, not reset); headers still incomplete when the drain time is over
  get 503.
"""

from __future__ import annotations

import asyncio
import json

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.logs import log_config
from service.settings import Settings

# How long an idle connection stays open once the shutdown began, for bytes already on their way
# (a request sent just before the signal) to arrive: they are read within an event-loop pass.
SHUTDOWN_READ_S = 0.05


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, with what the protocol below needs beside it."""

    def __init__(self, *args, header_timeout: float, drain_timeout: float, **options):
        super().__init__(*args, **options)
        self.header_timeout = header_timeout
        self.drain_timeout = drain_timeout


class HttpProtocol(HttpToolsProtocol):
    def __init__(self, config: ServerConfig, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.header_timeout = config.header_timeout
        self.drain_timeout = config.drain_timeout
        self.timer: asyncio.TimerHandle | None = None
        self.reading_headers = False
        self.draining = False

    def _arm(self, seconds: float, action) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, action)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _refuse(self, status: int, reason: str) -> None:
        """Answers a request whose headers never completed, then closes."""
        if self.transport.is_closing():
            return
        body = json.dumps({"error": reason, "details": [{"field": None, "reason": reason}]})
        phrase = {408: "Request Timeout", 503: "Service Unavailable"}[status]
        self.transport.write(
            f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n{body}".encode()
        )
        self.transport.close()

    def _dataplane(self):
        return self.app_state.get("dataplane")

    # -- uvicorn's protocol

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm(self.timeout_keep_alive, self._close_idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            call = self.cycle.scope.get("state", {}).get("call")
            if call is not None:
                call.cancel("disconnected")
        super().connection_lost(exc)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.reading_headers = True
        self._arm(self.header_timeout, self._headers_too_slow)

    def on_headers_complete(self) -> None:
        self.reading_headers = False
        self._disarm()
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def shutdown(self) -> None:
        self.draining = True
        dataplane = self._dataplane()
        if dataplane is not None:
            dataplane.drain()
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # uvicorn closes it after the response
        elif self.reading_headers:
            self._arm(self.drain_timeout, self._drain_over)
        else:
            self._arm(SHUTDOWN_READ_S, self._close_if_idle)

    # -- timers

    def _close_idle(self) -> None:
        if not self.reading_headers and (self.cycle is None or self.cycle.response_complete):
            self.transport.close()

    def _close_if_idle(self) -> None:
        if self.reading_headers:
            self._arm(self.drain_timeout, self._drain_over)
        else:
            self._close_idle()

    def _headers_too_slow(self) -> None:
        self._refuse(408, f"the request's headers took longer than {self.header_timeout} s")

    def _drain_over(self) -> None:
        self._refuse(503, "the service is shutting down; send the request again")


def config(settings: Settings, app) -> ServerConfig:
    return ServerConfig(
        app,
        factory=isinstance(app, str),
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        http=HttpProtocol,
        log_config=log_config(settings.log_level, settings.log_format),
        timeout_keep_alive=settings.idle_timeout_s,
        header_timeout=settings.header_timeout_s,
        drain_timeout=settings.drain_timeout_s,
        # The data plane answers what is left when the drain time is over (503); uvicorn's own
        # deadline, which cancels without an answer, comes later.
        timeout_graceful_shutdown=settings.drain_timeout_s + 5,
        access_log=False,  # the service's middleware logs each request, with its id
        server_header=False,
    )


def serve(settings: Settings) -> None:
    """Runs the service until SIGTERM or SIGINT; with `workers` > 1 in as many processes."""
    server_config = config(settings, "service.app:create_app")
    if settings.workers > 1:
        from uvicorn.supervisors import Multiprocess

        Multiprocess(server_config, sockets=[server_config.bind_socket()]).run()
    else:
        uvicorn.Server(server_config).run()
