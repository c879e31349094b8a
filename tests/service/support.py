"""Helpers shared by the service tests: the committed models read through `contract.config`,
sample inputs, direct onnxruntime answers, request builders, and a real server process."""

from __future__ import annotations

import concurrent.futures
import functools
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import uvicorn
from prometheus_client.parser import text_string_to_metric_families

from contract.config import ONNX_FILE, ModelConfig, list_versions, read_config
from contract.sparse import SparseRows
from contract.text import TextEncoder, TextEncoding
from loadtest.harness.servers import (
    ServerNotReadyError,
    free_port,
    service_environment,
    stop_server,
    wait_ready,
)
from service.api.rest.http import config as server_config
from service.api.rest.typed import EXAMPLE_HOUSE
from service.server import create_app
from service.settings import Settings

with warnings.catch_warnings():  # starlette's TestClient prefers httpx2; httpx works the same
    warnings.filterwarnings("ignore", "Using `httpx` with `starlette.testclient`")
    from fastapi.testclient import TestClient  # noqa: F401  (for the tests)

REPO = Path(__file__).resolve().parents[2]
MODELS = REPO / "models"
MODEL_NAMES = sorted(list_versions(MODELS))

REVIEWS = [
    "One of the best films I have ever seen: brilliant acting, a wonderful script, a moving and "
    "beautiful story. A masterpiece, I loved every minute and will watch it again.",
    "The worst movie I have ever seen. Boring, stupid, badly acted and a complete waste of time; "
    "the plot makes no sense and the dialogue is awful. Avoid it.",
    "It was ok, nothing special.",
]
NEWSWIRES = [
    "the company said net profit rose to 12 mln dlrs or 85 cts a share in the first quarter "
    "from 9 mln dlrs or 64 cts a year ago on revenues of 410 mln dlrs",
    "crude oil prices fell sharply as opec ministers failed to agree on production quotas and "
    "output ceilings for the coming months",
    "the central bank said it would intervene in the foreign exchange market to support the "
    "dollar against the yen and the mark",
]
HOUSES = [
    EXAMPLE_HOUSE,
    {**EXAMPLE_HOUSE, "crim": 3.5, "rm": 4.9, "age": 97.0, "lstat": 28.0, "ptratio": 21.0},
    {**EXAMPLE_HOUSE, "crim": 0.02, "rm": 8.2, "age": 20.0, "lstat": 2.5, "chas": 1.0},
]


def versions(name: str) -> list[int]:
    return list_versions(MODELS)[name]


def newest(name: str) -> int:
    return max(versions(name))


def folder(name: str, version: int | None = None, root: Path = MODELS) -> Path:
    return Path(root) / name / str(version or newest(name))


def config(name: str, version: int | None = None) -> ModelConfig:
    return read_config(folder(name, version))


@functools.cache
def encoder(name: str, version: int) -> TextEncoder:
    cfg = config(name, version)
    assert isinstance(cfg.encoding, TextEncoding), f"{name} is not a text model"
    return TextEncoder.load(cfg.encoding, folder(name, version))


@functools.cache
def session(name: str, version: int) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(folder(name, version) / ONNX_FILE), providers=["CPUExecutionProvider"]
    )


def is_sparse(name: str, version: int | None = None) -> bool:
    cfg = config(name, version)
    return isinstance(cfg.encoding, TextEncoding) and cfg.encoding.form == "sparse"


def feeds(name: str, version: int | None, rows: np.ndarray) -> dict[str, np.ndarray]:
    """The version's input tensors for input `rows` (dense, as the encoder's `vectorize` makes
    them): the rows themselves, or a sparse text version's ids (and weights)."""
    cfg = config(name, version)
    if not is_sparse(name, version):
        # FP32, but whole numbers sent as integers stay so (JSON writes them shorter)
        return {cfg.inputs[0].name: rows if rows.dtype.kind in "iu" else rows.astype(np.float32)}
    rows_of, columns = np.nonzero(rows)
    entries = SparseRows(rows_of, columns, rows[rows_of, columns].astype(np.float32), rows.shape)
    padded = dict(zip(("ids", "weights"), entries.padded(), strict=True))
    return {spec.name: padded[spec.name] for spec in cfg.inputs}


def ort_predict(name: str, version: int, rows: np.ndarray) -> np.ndarray:
    """The answer of onnxruntime itself on the version's model file."""
    cfg = config(name, version)
    tensors = feeds(name, version, rows)
    if not is_sparse(name, version):
        tensors = {k: v.astype(np.float32) for k, v in tensors.items()}
    return session(name, version).run([cfg.outputs[0].name], tensors)[0]


def house_rows(houses: list[dict], version: int | None = None) -> np.ndarray:
    order = [f.name for f in config("boston", version).encoding.features]
    return np.array([[house[n] for n in order] for house in houses], dtype=np.float32)


def sample_rows(name: str, version: int | None = None) -> np.ndarray:
    """Three realistic input rows of the version's shape, each different."""
    version = version or newest(name)
    if name == "boston":
        return house_rows(HOUSES, version)
    texts = REVIEWS if name == "imdb" else NEWSWIRES
    return encoder(name, version).encode(texts)


def v2_body(name: str, rows: np.ndarray, version: int | None = None, nested: bool = False):
    """A V2 request of input `rows` (dense) in the version's form."""
    specs = {spec.name: spec for spec in config(name, version).inputs}
    return {
        "inputs": [
            {
                "name": input_name,
                "shape": list(tensor.shape),
                "datatype": specs[input_name].datatype,
                "data": tensor.tolist() if nested else tensor.ravel().tolist(),
            }
            for input_name, tensor in feeds(name, version, rows).items()
        ]
    }


def v1_body(name: str, rows: np.ndarray, form: str, version: int | None = None) -> dict:
    """A V1 request of input `rows` (dense) in the version's form, in one of TF Serving's forms:
    "instances" (each a row; an object of inputs for a model of several), "instances_objects",
    "inputs_list" (one input's whole tensor) or "inputs_dict"; a sparse version's instances have
    each its own entries, unpadded."""
    tensors = feeds(name, version, rows)
    if form.startswith("inputs"):
        columns = {k: v.tolist() for k, v in tensors.items()}
        single = form == "inputs_list" and len(columns) == 1
        return {"inputs": next(iter(columns.values())) if single else columns}
    width = rows.shape[1]
    keep = (
        [tensors["ids"][i] != width for i in range(len(rows))]
        if is_sparse(name, version)
        else [slice(None)] * len(rows)
    )
    instances = [{k: v[i][keep[i]].tolist() for k, v in tensors.items()} for i in range(len(rows))]
    if form == "instances" and len(tensors) == 1:
        instances = [next(iter(instance.values())) for instance in instances]
    return {"instances": instances}


def v2_outputs(answer: dict) -> np.ndarray:
    (output,) = answer["outputs"]
    return np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])


def settings(**overrides) -> Settings:
    """Settings for a test app: the committed models, no `.env` file, no gRPC listener (a test
    that wants one names a port), overrides on top."""
    overrides.setdefault("model_repository", MODELS)
    overrides.setdefault("grpc_port", 0)
    return Settings(_env_file=None, **overrides)


def copy_repository(target: Path, names: list[str] | None = None) -> Path:
    """A copy of the model repository with what the service reads (no SavedModels, no plots)."""
    for name in names or MODEL_NAMES:
        for version in versions(name):
            source, dest = folder(name, version), Path(target) / name / str(version)
            dest.mkdir(parents=True)
            for item in source.iterdir():
                if item.is_file() and item.suffix in (".onnx", ".json"):
                    shutil.copy2(item, dest / item.name)
    return Path(target)


def add_version(root: Path, name: str, source_version: int, new_version: int) -> Path:
    """Copies a version folder of `root` into a new version number, its config updated."""
    source, dest = Path(root) / name / str(source_version), Path(root) / name / str(new_version)
    shutil.copytree(source, dest)
    cfg = read_config(source).model_copy(update={"version": new_version})
    (dest / "config.json").write_text(cfg.model_dump_json(indent=2), "utf-8")
    return dest


def derive_model(root: Path, source: str, version: int, name: str, **changes) -> Path:
    """Model `name` version 1 in the repository `root`: a copy of `source`'s `version` there, its
    config renamed and changed (`changes`: config fields)."""
    source_folder, dest = Path(root) / source / str(version), Path(root) / name / "1"
    shutil.copytree(source_folder, dest)
    cfg = read_config(source_folder)
    cfg = cfg.model_validate({**cfg.model_dump(), "name": name, "version": 1, **changes})
    (dest / "config.json").write_text(cfg.model_dump_json(indent=2), "utf-8")
    return dest


def service_env(repository: Path | None, port: int, **extra: str) -> dict[str, str]:
    """The environment of a `python -m service` process: this one without SERVICE_* variables
    (repository None: the default, `models` in the working directory), gRPC off unless `extra`
    names a port."""
    settings = {
        "SERVICE_HOST": "127.0.0.1",
        "SERVICE_PORT": str(port),
        "SERVICE_LOG_LEVEL": "info",
        "SERVICE_GRPC_PORT": "0",
    }
    if repository is not None:
        settings["SERVICE_MODEL_REPOSITORY"] = str(repository)
    return service_environment({**settings, **extra})


class ServerProcess:
    """`python -m service` on a free loopback port, its output in a file."""

    def __init__(self, log_dir: Path, repository: Path = MODELS, **env: str):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"service-{self.port}.log"
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "service"],
            cwd=log_dir,  # no stray .env file
            env=service_env(repository, self.port, **env),
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        return self.log.read_text("utf-8", errors="replace")

    def wait_ready(self, timeout: float = 60) -> ServerProcess:
        try:
            wait_ready(self.process, self.url, timeout)
        except ServerNotReadyError as error:
            self.kill()
            raise AssertionError(f"the service {error}:\n{self.output()}") from None
        return self

    def terminate(self, timeout: float = 30) -> int:
        """SIGTERM, then the exit code (-9 if it had to be killed after `timeout` seconds)."""
        try:
            return stop_server(self.process, timeout)
        finally:
            self._log_file.close()

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._log_file.close()


def run_service(
    repository: Path | None, timeout: float = 60, cwd: Path | None = None, **env: str
) -> tuple[int, str]:
    """Runs `python -m service` until it exits (start-up failures): exit code and output. It runs
    in `cwd`, by default the repository's parent folder."""
    port = free_port()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "service"],
            cwd=cwd or Path(repository).parent,
            env=service_env(repository, port, **env),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as error:
        raise AssertionError(f"the service did not exit within {timeout} s") from error
    return result.returncode, result.stdout + result.stderr


# --- raw HTTP over sockets: requests sent in parts, responses read as they come -----------------


def raw_request(method: str, path: str, body: bytes = b"", **headers: str) -> tuple[bytes, bytes]:
    """An HTTP/1.1 request as (head, body) bytes, with Content-Length unless `headers` says
    otherwise."""
    fields = {"host": "127.0.0.1", "content-type": "application/json"}
    if body or method == "POST":
        fields["content-length"] = str(len(body))
    fields.update({k.replace("_", "-"): v for k, v in headers.items()})
    head = f"{method} {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    return (head + "\r\n").encode("latin-1"), body


def connect(url: str, timeout: float = 30) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=timeout)


@dataclass
class RawResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def read_response(sock: socket.socket) -> RawResponse:
    """One response from `sock` (Content-Length framed, as the service answers); raises
    ConnectionError if the server closed or reset the connection instead."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response; got {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    length = int(headers.get("content-length", 0))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-response")
        body += chunk
    return RawResponse(int(lines[0].split()[1]), headers, body[:length])


def wait_until(condition, what: str, timeout: float = 10) -> None:
    """Polls `condition` until it holds; fails, naming `what`, after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


class InProcessServer:
    """The service's own server (`service.server`) on a loopback port, in a thread of this
    process, so that a test can hold a model's inference (`hold`) and see what ran (`ran`)."""

    def __init__(self, tracer_provider=None, **overrides):
        overrides.setdefault("default_batching", {"inline_below_ms": 0})  # runs in threads
        self.settings = settings(host="127.0.0.1", port=free_port(), **overrides)
        self.app = create_app(self.settings, tracer_provider)
        self.server = uvicorn.Server(server_config(self.settings, self.app))
        self.url = f"http://127.0.0.1:{self.settings.port}"
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()  # set when a batch has reached the model (held or not)
        self.ran: list[tuple[str, int]] = []  # (model, rows) of each inference call
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> InProcessServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            assert self.thread.is_alive(), "the server died"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        for name, loaded in self.dataplane.registry.models.items():
            for model in loaded.values():
                model.batcher._run = self._gated(name, model.batcher._run)
        return self

    def __exit__(self, *exc) -> None:
        self.gate.set()
        self.stop()

    @property
    def dataplane(self):
        return self.app.state.dataplane

    def _gated(self, name: str, run):
        def gated(batch):
            self.entered.set()
            assert self.gate.wait(30), "the test never opened the gate"
            self.ran.append((name, len(batch)))
            return run(batch)

        return gated

    def in_loop(self, function):
        """`function()` run on the server's event loop (the data plane is not thread-safe)."""
        loop = self.dataplane._reaper.get_loop()
        done = concurrent.futures.Future()
        loop.call_soon_threadsafe(lambda: done.set_result(function()))
        return done.result(10)

    def hold(self) -> None:
        self.gate.clear()

    def release(self) -> None:
        self.gate.set()

    def begin_shutdown(self) -> None:
        """What SIGTERM does (signals reach only the main thread)."""
        self.server.should_exit = True

    def stop(self, timeout: float = 30) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the server did not stop"

    def metric(self, name: str, **labels: str) -> float:
        text = httpx.get(f"{self.url}/metrics").text
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
