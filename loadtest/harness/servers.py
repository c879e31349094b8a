"""The servers the load tests start, each in its own process on a loopback port: the service (this
checkout's or another's) and the baselines of `loadtest/baselines/`; a free port, start-up until
`/v2/health/ready` answers 200, and a SIGTERM stop. The service serves the model repository that
the payloads are built for (`MODELS`). Only the standard library, so it runs wherever the load
tests run."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The model repository of the load tests: the service's, and the one whose newest versions the
# payloads are built for (`loadtest.harness.payloads`).
MODELS = Path(os.environ.get("LOADTEST_MODELS", REPO / "models"))
READY_PATH = "/v2/health/ready"
NO_BATCHING = {"SERVICE_DEFAULT_BATCHING": '{"enabled": false}'}


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


def with_repo_on_path(env: dict[str, str], checkout: Path = REPO) -> dict[str, str]:
    """`env` with a checkout (this one) first on PYTHONPATH, so `service` and `loadtest` import
    from it in a process started anywhere."""
    path = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path}


def service_environment(
    settings: dict[str, str] | None = None, checkout: Path = REPO
) -> dict[str, str]:
    """This process's environment without its SERVICE_* variables, plus `settings`: the service's
    defaults but for what is named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    return with_repo_on_path({**env, **(settings or {})}, checkout)


def start_server(
    command: list[str], env: dict[str, str], port: int, log_path: Path, timeout: float = 60
) -> tuple[subprocess.Popen, str]:
    """Starts a server listening on loopback `port`, in the log's folder (so no stray .env file is
    read), and waits until its `/v2/health/ready` answers 200."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=log_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, timeout)
    except ServerNotReadyError as error:
        stop_server(process)
        raise SystemExit(f"`{shlex.join(command)}` {error}; see {log_path}") from None
    return process, url


def start_service(
    log_path: Path,
    settings: dict[str, str] | None = None,
    timeout: float = 60,
    checkout: Path = REPO,
    repository: Path | None = None,
) -> tuple[subprocess.Popen, str]:
    """`python -m service` on `repository`, else the load tests' models (`MODELS`: the committed
    ones unless $LOADTEST_MODELS names others), and a free loopback port (gRPC on another, unless `settings`
    names SERVICE_GRPC_PORT), with its default settings but for `settings` (SERVICE_* variables);
    its code from `checkout` (another revision, for a before/after comparison), with that
    checkout's models where it has them (the same graphs, their configs as that revision reads
    them), else `MODELS`."""
    port = free_port()
    env = service_environment(
        {
            "SERVICE_GRPC_PORT": str(free_port()),
            **(settings or {}),
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(port),
            "SERVICE_MODEL_REPOSITORY": str(
                repository.resolve()
                if repository is not None
                else checkout / "models"
                if checkout != REPO and (checkout / "models").is_dir()
                else MODELS
            ),
        },
        checkout,
    )
    return start_server([sys.executable, "-m", "service"], env, port, log_path, timeout)


def start_baseline(module: str, options: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    """`python -m loadtest.baselines.<module> --port PORT OPTIONS` on a free loopback port."""
    port = free_port()
    command = [sys.executable, "-m", f"loadtest.baselines.{module}", "--port", str(port), *options]
    env = with_repo_on_path({**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # for the naive server
    return start_server(command, env, port, log_path, timeout=180)


@contextmanager
def running(server: tuple[subprocess.Popen, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    """Stops the server (SIGTERM) however the block ends."""
    process, url = server
    try:
        yield process, url
    finally:
        code = stop_server(process)
        if code != 0:
            print(f"{shlex.join(process.args)} exited with {code} after SIGTERM", file=sys.stderr)
