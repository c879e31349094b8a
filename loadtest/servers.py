"""A server in its own process on a loopback port: a free port, start-up until `/v2/health/ready`
answers 200, and a SIGTERM stop. Shared by the load tests, the benchmarks and the test suite; only
the standard library, so it runs wherever the load tests run."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

READY_PATH = "/v2/health/ready"


class ServerNotReadyError(RuntimeError):
    """The server exited, or did not answer ready in time."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(
    process: subprocess.Popen, url: str, timeout: float = 60, poll_s: float = 0.1
) -> None:
    """Returns once `url` + /v2/health/ready answers 200; raises ServerNotReadyError when the process exits
    first or `timeout` seconds pass (the process is then left running: the caller stops it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise ServerNotReadyError(f"exited with {process.returncode} before it was ready")
        try:
            with urllib.request.urlopen(url + READY_PATH, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(poll_s)
    raise ServerNotReadyError(f"was not ready within {timeout} s")


def stop_server(process: subprocess.Popen, timeout: float = 30) -> int:
    """SIGTERM (a graceful drain), then the exit code; killed if it does not exit in time."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        return process.wait()
