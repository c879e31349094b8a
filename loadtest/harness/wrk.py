"""The load generator of the benchmarks: wrk (C, one epoll loop per thread, requests built once),
driven by `loadtest/wrk.lua` (JSON bodies from a file) or `loadtest/wrk_binary.lua` (V2 binary
tensors), and the request bodies it sends: the workloads, written to files it reads.

    wrk -t1 -c8 -d5s --timeout=30s -s loadtest/wrk.lua URL -- bodies.txt
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from contract.config import NUMPY_OF_DATATYPE
from loadtest.harness.payloads import (
    TYPED_PATHS,
    datatypes,
    rows,
    tensors,
    typed_bodies,
    v2_batch_body,
    v2_bodies,
    v2_path,
)

HERE = Path(__file__).resolve().parents[1]  # loadtest/, where the wrk scripts live
WRK_SCRIPT = HERE / "wrk.lua"
WRK_BINARY = HERE / "wrk_binary.lua"
# The naive server takes seconds per answer at c=64; with wrk's default timeout (2 s) those answers
# would be counted as errors instead of measured.
WRK_TIMEOUT_S = 30
WRK_ERRORS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
ROWS_PER_BATCH_BODY = 32


@dataclass(frozen=True)
class Run:
    """What one load generator run measured: wrk's, or the gRPC benchmark's generator's, in the
    same shape. Latencies in ms, from sending a request to receiving its whole answer."""

    requests: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    mean_ms: float
    errors: dict[str, int] = field(default_factory=dict)  # by kind; only kinds that happened

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def error_total(self) -> int:
        return sum(self.errors.values())


@dataclass(frozen=True)
class Workload:
    """One benchmarked path and how wrk sends it: its script and the script's arguments (wrk.lua:
    a file of PATH<TAB>BODY lines, one per sample; wrk_binary.lua: the path, then a file per body).
    `first_body` and `headers` make the one request that probes a server before it is measured."""

    model: str
    endpoint: str  # "typed", "v2", "v2-32" (32 rows per request) or "binary" (V2 binary tensors)
    path: str
    script: Path
    arguments: tuple[str, ...]
    first_body: bytes
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    rows: int = 1  # rows (inputs) per request


def json_workload(model: str, endpoint: str, path: str, bodies: list[dict], folder: Path,
                  rows_per_request: int = 1) -> Workload:  # fmt: skip
    lines = [json.dumps(body, separators=(",", ":")) for body in bodies]
    file = folder / f"{model}-{endpoint}.txt"
    file.write_text("".join(f"{path}\t{line}\n" for line in lines), "utf-8")
    return Workload(model, endpoint, path, WRK_SCRIPT, (str(file),), lines[0].encode(),
                    rows=rows_per_request)  # fmt: skip


def batch_bodies(name: str, size: int = ROWS_PER_BATCH_BODY) -> list[dict]:
    """V2 bodies of `size` rows each, one starting at each sample (wrapping round)."""
    samples = rows(name)
    return [
        v2_batch_body(name, [samples[(i + j) % len(samples)] for j in range(size)])
        for i in range(len(samples))
    ]


def binary_workload(name: str, folder: Path) -> Workload:
    """V2 requests in the binary tensor data extension with binary outputs: a file per sample row,
    the JSON header then the bytes of the row's tensors (`tensors`: a dense row in its input's
    datatype; a sparse row's INT64 ids and FP32 weights); the header's length ends the file name,
    where wrk_binary.lua reads it."""
    datatype_of = datatypes(name)
    files = []
    for i, row in enumerate(rows(name)):
        arrays = {key: array.astype(NUMPY_OF_DATATYPE[datatype_of[key]])
                  for key, array in tensors(name, [row]).items()}  # fmt: skip
        header = json.dumps({
            "inputs": [{"name": key, "shape": list(array.shape), "datatype": datatype_of[key],
                        "parameters": {"binary_data_size": array.nbytes}}
                       for key, array in arrays.items()],
            "parameters": {"binary_data_output": True},
        }).encode()  # fmt: skip
        path = folder / f"{name}-{i}-{len(header)}.bin"
        path.write_bytes(header + b"".join(array.tobytes() for array in arrays.values()))
        files.append(path)
    header_length = files[0].name.rsplit("-", 1)[1].removesuffix(".bin")
    headers = {"Content-Type": "application/octet-stream",
               "Inference-Header-Content-Length": header_length}  # fmt: skip
    path = v2_path(name)
    return Workload(name, "binary", path, WRK_BINARY, (path, *map(str, files)),
                    files[0].read_bytes(), headers)  # fmt: skip


def write_workloads(
    models: list[str], folder: Path, endpoints: tuple[str, ...] = ("typed", "v2")
) -> list[Workload]:
    """Each model's workload of each endpoint, its bodies written to `folder`. "v2-32" goes to
    the unversioned V2 path, so that a server answering per path (the floor) tells it from "v2";
    it is Boston's alone (32 IMDB rows are megabytes of JSON)."""
    folder.mkdir(parents=True, exist_ok=True)
    workloads = []
    for model in models:
        for endpoint in endpoints:
            if endpoint == "typed":
                workloads.append(json_workload(model, endpoint, TYPED_PATHS[model],
                                               typed_bodies(model), folder))  # fmt: skip
            elif endpoint == "v2":
                workloads.append(json_workload(model, endpoint, v2_path(model),
                                               v2_bodies(model), folder))  # fmt: skip
            elif endpoint == "v2-32" and model == "boston":
                workloads.append(json_workload(model, endpoint, f"/v2/models/{model}/infer",
                                               batch_bodies(model), folder,
                                               ROWS_PER_BATCH_BODY))  # fmt: skip
            elif endpoint == "binary":
                workloads.append(binary_workload(model, folder))
    return workloads


def parse_wrk(output: str) -> dict:
    """The JSON line that wrk_common.lua's `done` prints after wrk's own summary."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"wrk printed no result line:\n{output[-2000:]}")


def summarize_wrk(wrk: dict) -> Run:
    """The run in milliseconds, its errors by kind, from wrk.lua's line."""
    return Run(
        requests=wrk["requests"],
        seconds=wrk["duration_us"] / 1e6,
        **{f"{q}_ms": wrk[f"{q}_us"] / 1000 for q in ("p50", "p95", "p99", "max", "mean")},
        errors={key: wrk[key] for key in WRK_ERRORS if wrk[key]},
    )


def pinned(command: list[str], cpus: str | None) -> list[str]:
    """`command` under `taskset -c CPUS` when the load generator is pinned."""
    return ["taskset", "-c", cpus, *command] if cpus else command


def run_wrk(
    url: str, workload: Workload, concurrency: int, seconds: int, cpus: str | None = None
) -> tuple[Run, float, float]:
    """wrk's run, its CPU seconds (its rusage, reaped with wait4) and its wall seconds."""
    command = pinned(["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s",
                      f"--timeout={WRK_TIMEOUT_S}s", "-s", str(workload.script), url, "--",
                      *workload.arguments], cpus)  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with process.stdout:
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if process.returncode != 0:
        raise SystemExit(f"`{shlex.join(command)}` exited with {process.returncode}:\n{output}")
    return summarize_wrk(parse_wrk(output)), usage.ru_utime + usage.ru_stime, wall


def warm_run(url: str, workload: Workload, concurrency: int, seconds: int, warmup: int = 2) -> Run:
    """A warm-up run (discarded), then the measured one."""
    run_wrk(url, workload, concurrency, warmup)
    return run_wrk(url, workload, concurrency, seconds)[0]


def median_of(runs: list[Run]) -> dict:
    """Rounds of one point: the median rps and latencies, each round's rps, every error."""
    return {
        "rps": statistics.median(r.rps for r in runs),
        "runs_rps": [r.rps for r in runs],
        "p50_ms": statistics.median(r.p50_ms for r in runs),
        "p99_ms": statistics.median(r.p99_ms for r in runs),
        "errors": sum(r.error_total for r in runs),
    }
