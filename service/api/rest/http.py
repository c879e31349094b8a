"""The REST transport's HTTP server: uvicorn, with connections that cannot be held forever and a shutdown that
answers every request it admitted.

uvicorn's own HTTP/1.1 protocol (httptools) is extended, not replaced:

- a connection must send its first request within `SERVICE_IDLE_TIMEOUT_S` and each request's
  headers within `SERVICE_HEADER_TIMEOUT_S` of its first byte; else it is answered 408 and closed
  (uvicorn closes a connection only when it is idle after a response);
- when a client leaves, the data plane hears of it and drops its queued work;
- on shutdown (SIGTERM), the connections tell the data plane (readiness turns false, the drain
  clock starts); a connection whose request is under way, headers or body, or whose request
  has arrived but not been read yet, is served and then closed; an idle one is closed at once;
  headers still incomplete when the drain time is over get 503;
- a request's head (request line and headers) is bounded where its bytes arrive: at most
  `SERVICE_MAX_HEADER_BYTES` and `SERVICE_MAX_HEADERS`, else 431 and the connection closes (the
  parser itself has no limit: it would hold a header that never ends);
- what the parser refuses (a bad Content-Length, a NUL in a header…) is answered 400 in the
  service's error shape with a request id, as everything else;
- a response's head and body go out in one send (`CorkedTransport`).
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import socket
import struct
import termios

import httptools
import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import RETRY_AFTER_S
from service.logs import log_config
from service.settings import Settings


class ServerConfig(uvicorn.Config):
    """uvicorn's configuration, with what the protocol below needs beside it: its timeouts, and
    a second handle on the listening socket, so that the connections still queued on it when
    uvicorn closes it at shutdown are not reset (`take_backlog`)."""

    def __init__(
        self,
        *args,
        header_timeout: float,
        drain_timeout: float,
        max_header_bytes: int,
        max_headers: int,
        **options,
    ):
        super().__init__(*args, **options)
        self.header_timeout = header_timeout
        self.drain_timeout = drain_timeout
        self.max_header_bytes = max_header_bytes
        self.max_headers = max_headers
        self.listener: socket.socket | None = None

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        self.listener = sock.dup()  # each worker process gets a copy of it, with the config
        return sock

    def take_backlog(self) -> list[socket.socket]:
        """The connections that completed before the shutdown began but were not accepted yet;
        then the listening socket is closed for good (later ones are refused)."""
        listener, self.listener = self.listener, None
        if listener is None:
            return []
        accepted = []
        with listener:
            listener.setblocking(False)
            while True:
                try:
                    connection, _ = listener.accept()
                except OSError:  # BlockingIOError: none left
                    return accepted
                accepted.append(connection)


class CorkedTransport:
    """A connection's transport that sends a response's head with what follows it: uvicorn
    writes a response's status line and headers, then its body, each a send of its own, and a
    send costs the sender the receiver's TCP work too on loopback (~20 µs a response here). A
    head (a final status line, not `100 Continue`) waits for the next write, the response's end
    (the protocol's `flush`) or `close`; every other write goes out at once, without waiting for
    the event loop's next turn. Every other call is the transport's own."""

    __slots__ = ("_head", "_transport")

    def __init__(self, transport: asyncio.Transport):
        self._transport = transport
        self._head: bytes | None = None

    def write(self, data: bytes) -> None:
        if self._head is not None:
            data, self._head = self._head + data, None
        elif data.startswith(b"HTTP/1.1 ") and not data.startswith(b"HTTP/1.1 1"):
            self._head = data
            return
        if not self._transport.is_closing():
            self._transport.write(data)

    def flush(self) -> None:
        head, self._head = self._head, None
        if head and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str):
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    def __init__(self, config: ServerConfig, *args, **kwargs):
        super().__init__(config, *args, **kwargs)
        self.header_timeout = config.header_timeout
        self.drain_timeout = config.drain_timeout
        self.timer: asyncio.TimerHandle | None = None
        # Since when this connection has been waiting: for a request (its first, or the next after
        # an answer), or for the rest of its headers. The watchdog (below) looks at these rather than
        # each request arming a timer of its own: two timer operations cost more than a glance.
        self.idle_since: float | None = None
        self.headers_since: float | None = None
        self.draining = False
        self.lingering = False  # refused: what arrives is dropped until the connection closes
        self.head_bytes = 0  # of the request whose head is being read
        self.head_refusal: tuple[int, str] | None = None  # why the parser was stopped

    @property
    def reading_headers(self) -> bool:
        return self.headers_since is not None

    def _arm(self, seconds: float, action) -> None:
        self._disarm()
        self.timer = self.loop.call_later(seconds, action)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _refuse(self, status: int, reason: str, field: str | None = None) -> None:
        """Answers a request whose head never completed or could not be read, in the service's
        error shape with a request id of its own, then closes."""
        if self.transport.is_closing() or self.lingering:
            return
        message = f"{field}: {reason}" if field else reason
        body = json.dumps({"error": message, "details": [{"field": field, "reason": reason}]})
        retry = f"retry-after: {RETRY_AFTER_S}\r\n" if status == 503 else ""
        self.transport.write(
            f"HTTP/1.1 {status} {REFUSALS[status]}\r\ncontent-type: application/json\r\n"
            f"x-request-id: {os.urandom(16).hex()}\r\n{retry}content-length: {len(body)}\r\n"
            f"connection: close\r\n\r\n{body}".encode()
        )
        self._linger()

    def _linger(self) -> None:
        """Ends a connection after a refusal without resetting it: closing a socket with bytes
        still unread makes the kernel send a reset, which can destroy the answer before the
        client reads it (a client still sending its 10 MiB header would never see the 431).
        The answer and the end of the stream go out at once; what the client still sends is
        dropped, unparsed and unkept, for up to `LINGER_S`; then the connection closes."""
        self.lingering = True
        self.headers_since = self.idle_since = None
        self.transport.flush()
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self._arm(LINGER_S, self.transport.close)

    def _dataplane(self):
        return self.app_state.get("dataplane")

    # -- uvicorn's protocol

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self.transport = CorkedTransport(transport)
        dataplane = self._dataplane()
        if self.draining or (dataplane is not None and dataplane.drain_deadline is not None):
            self._finish()  # accepted after the signal, before uvicorn closed the listener
        else:
            self.idle_since = self.loop.time()
            _watch(self)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.cycle is not None and not self.cycle.response_complete:
            call = self.cycle.scope.get("state", {}).get("call")
            if call is not None:
                call.cancel("disconnected")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self.lingering:
            return
        if self.cycle is None or self.cycle.response_complete or self.reading_headers:
            self.head_bytes += len(data)  # a head begins or goes on (bytes of a body: no)
        super().data_received(data)
        if self.reading_headers and self.head_bytes > self.config.max_header_bytes:
            self._head_too_large(f"exceed {self.config.max_header_bytes} bytes")

    def _stop_parser(self, reason: str) -> None:
        # uvicorn answers what the parser callbacks raise with send_400_response (below).
        self.head_refusal = (431, reason)
        raise HeadTooLargeError

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to what the parser refused, in the service's error shape."""
        if self.head_refusal is not None:
            self._refuse(*self.head_refusal, field="headers")
        else:
            self._refuse(400, "the request is not valid HTTP/1.1 (" + msg.rstrip(".") + ")")

    def _head_too_large(self, why: str) -> None:
        self.headers_since = None
        self._refuse(431, f"the request line and headers {why}", "headers")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.idle_since = None
        self.headers_since = self.loop.time()

    def on_headers_complete(self) -> None:
        self.headers_since = None
        # Counted once whole: the byte limit already bounds what the parser kept meanwhile.
        if len(self.headers) > self.config.max_headers:
            self._stop_parser(f"more than {self.config.max_headers} headers")
        if self.head_bytes > self.config.max_header_bytes:
            # It arrived whole, in reads that also held more (a body): measured itself.
            size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
            if size > self.config.max_header_bytes:
                self._stop_parser(
                    f"the request line and headers exceed {self.config.max_header_bytes} bytes"
                )
        self.head_bytes = 0
        super().on_headers_complete()
        if self.draining and self.cycle is not None:
            self.cycle.keep_alive = False

    def on_response_complete(self) -> None:
        """uvicorn's, but for the wait for the next request: the watchdog watches it
        (`idle_since`) instead of a timer armed and cancelled for every request."""
        self.transport.flush()  # a response without a body: its head alone
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self.idle_since = self.loop.time()

    def shutdown(self) -> None:
        """uvicorn calls this on each connection once the shutdown began."""
        dataplane = self._dataplane()
        if dataplane is not None:
            dataplane.drain()
        for connection in self.config.take_backlog():
            self.loop.create_task(self.loop.connect_accepted_socket(self._sibling, connection))
        self._finish()

    def _sibling(self) -> HttpProtocol:
        """The protocol of a connection taken from the backlog after the shutdown began."""
        protocol = type(self)(self.config, self.server_state, self.app_state, self.loop)
        protocol.draining = True
        return protocol

    def _finish(self) -> None:
        """This connection serves the request it has under way, if any, then closes."""
        self.draining = True
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # uvicorn closes it after the response
        elif self.reading_headers or self._unread_bytes():
            # A request under way, or sent before the signal and not read yet (closing a socket
            # with unread bytes would reset it): it is served, then the connection closes.
            self._arm(self.drain_timeout, self._drain_over)
        else:
            self.transport.close()

    # -- timers

    def check_timeouts(self, now: float) -> None:
        """The watchdog's look at this connection."""
        if self.headers_since is not None and now - self.headers_since > self.header_timeout:
            self._headers_too_slow()
        elif self.idle_since is not None and now - self.idle_since > self.timeout_keep_alive:
            self.transport.close()  # no request since the connection opened, or since the last answer

    def _unread_bytes(self) -> int:
        sock = self.transport.get_extra_info("socket")
        if sock is None:
            return 0
        try:
            return struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.FIONREAD, b"\0" * 4))[0]
        except OSError:
            return 0

    def _headers_too_slow(self) -> None:
        self._refuse(408, f"the request's headers took longer than {self.header_timeout} s")

    def _drain_over(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self._refuse(503, "the service is shutting down; send the request again")


LINGER_S = 2.0
REFUSALS = {
    400: "Bad Request",
    408: "Request Timeout",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


class HeadTooLargeError(httptools.HttpParserError):
    """Raised in a parser callback to stop reading a request whose head is over a limit."""


_WATCHED: dict[asyncio.AbstractEventLoop, asyncio.Task] = {}


def _watch(protocol: HttpProtocol) -> None:
    """Makes sure this event loop's watchdog runs: it looks at every connection a few times per
    timeout and closes those waiting too long for headers or for a first request."""
    loop = protocol.loop
    if loop not in _WATCHED or _WATCHED[loop].done():
        period = min(protocol.header_timeout, protocol.timeout_keep_alive) / 4
        _WATCHED[loop] = loop.create_task(_watchdog(protocol.connections, min(period, 1.0)))


async def _watchdog(connections: set, period: float) -> None:
    while True:
        await asyncio.sleep(period)
        now = asyncio.get_running_loop().time()
        for connection in list(connections):
            if isinstance(connection, HttpProtocol):
                connection.check_timeouts(now)


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
        max_header_bytes=settings.max_header_bytes,
        max_headers=settings.max_headers,
        # The data plane answers what is left when the drain time is over (503); uvicorn's own
        # deadline, which cancels without an answer, comes later.
        timeout_graceful_shutdown=settings.drain_timeout_s + 2,
        access_log=False,  # the service's middleware logs each request, with its id
        server_header=False,
    )
