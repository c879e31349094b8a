"""The measurements: one point (a load generator run against a running server, with the server's
CPU and memory, the generator's CPU and the machine's), measured again while other processes
disturbed it; a server's points after a probe of each path; and the compute limit.

A point's load is wrk (`loadtest/harness/wrk.py`) or, for gRPC and the REST run beside it, the Python
generator of `loadtest/harness/generator.py` in a process of its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path

import psutil

from loadtest.harness.generator import run_generator
from loadtest.harness.payloads import model_config
from loadtest.harness.servers import service_environment
from loadtest.harness.wrk import Run, Workload, run_wrk

# A run during which other processes used this much of the machine is measured again (this is a
# shared machine), up to MEASURE_ATTEMPTS runs in all, and the cleanest is kept.
SUSPECT_OTHERS_PCT, MEASURE_ATTEMPTS = 10, 2

# A load: runs for the given seconds; what it measured, its CPU seconds and its wall seconds.
Load = Callable[[int], tuple[Run, float, float]]


@dataclass(frozen=True)
class PointSettings:
    """How each point is measured: seconds of warm-up (discarded) and of the measured run, and the
    CPUs the load generator is pinned to (None: not pinned, wherever the scheduler puts it)."""

    duration: int = 5
    warmup: int = 1
    generator_cpus: str | None = None


@dataclass(frozen=True)
class GeneratorWorkload:
    """Boston through the asyncio generator (`loadtest/harness/generator.py`): gRPC ("grpc") or REST V2
    JSON by aiohttp ("v2-py"), the same kind of client for both protocols."""

    model: str
    endpoint: str  # "grpc" or "v2-py"
    target: str  # host:port for gRPC, the base URL for REST

    def load(self, concurrency: int, cpus: str | None) -> Load:
        protocol = "grpc" if self.endpoint == "grpc" else "rest"
        return partial(run_generator, protocol, self.target, concurrency, cpus=cpus)


@dataclass(frozen=True)
class Discarded:
    """A run measured again because other processes disturbed it."""

    rps: float
    others_pct: float
    error_total: int


@dataclass(frozen=True)
class Point:
    """One measured point: a series (a server and its settings, see `loadtest/scenarios/benchmark.py`), a
    model, an endpoint and a concurrency; the kept run and what it cost."""

    series: str
    model: str
    endpoint: str
    concurrency: int
    run: Run
    server_cpu_s: float  # the server's processes (workers included), user + system
    client_cpu_s: float  # the load generator's
    client_wall_s: float
    rss_mib: float  # the server's processes, after the run
    machine_busy_pct: float  # of all CPUs
    others_pct: float  # the part of machine_busy_pct that neither server nor generator used
    cores: int
    discarded: tuple[Discarded, ...] = ()

    @property
    def rps(self) -> float:
        return self.run.rps

    @property
    def p50_ms(self) -> float:
        return self.run.p50_ms

    @property
    def p99_ms(self) -> float:
        return self.run.p99_ms

    @property
    def server_cpu_ms_per_request(self) -> float | None:
        return 1000 * self.server_cpu_s / self.run.requests if self.run.requests else None

    @property
    def client_core_pct(self) -> float:
        return 100 * self.client_cpu_s / self.client_wall_s if self.client_wall_s else 0.0

    @property
    def error_count(self) -> int:
        """Errors of the kept and discarded runs: an error is one wherever it happened."""
        return self.run.error_total + sum(d.error_total for d in self.discarded)

    def to_json(self) -> dict:
        derived = ("rps", "server_cpu_ms_per_request", "client_core_pct", "error_count")
        return {**asdict(self), **{name: getattr(self, name) for name in derived}}


def cpu_seconds(process: psutil.Process) -> float:
    """User + system seconds of a process and its live children (the service's workers)."""
    total = 0.0
    for each in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = each.cpu_times()
            total += times.user + times.system
    return total


def rss_mib(process: psutil.Process) -> float:
    total = 0
    for each in (process, *process.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            total += each.memory_info().rss
    return total / 2**20


def wait_until_idle(server: psutil.Process, timeout: float = 60) -> None:
    """Lets the server finish what a previous run left in flight (the naive server works for
    seconds through a c=64 backlog), so that each run starts on an idle server."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(server)
        time.sleep(0.2)
        if cpu_seconds(server) - before < 0.02:  # under a tenth of a core
            return


def busy_percent(before, after) -> float:
    """Per cent of the machine's CPU time spent busy between two `psutil.cpu_times()`."""
    total = sum(after) - sum(before)
    idle = after.idle + after.iowait - before.idle - before.iowait
    return 100 * (total - idle) / total if total else 0.0


def measure_point(server: psutil.Process, load: Load, settings: PointSettings, **key) -> Point:
    """One point: a warm-up run, then the measured run on an idle server. `key`: the point's
    series, model, endpoint and concurrency."""
    if settings.warmup:
        load(settings.warmup)
    wait_until_idle(server)
    server_before, machine_before = cpu_seconds(server), psutil.cpu_times()
    run, client_cpu, client_wall = load(settings.duration)
    server_cpu = cpu_seconds(server) - server_before
    busy = busy_percent(machine_before, psutil.cpu_times())
    cores = os.cpu_count() or 1
    # Whatever else ran (another benchmark, a test run) shows here and makes the point suspect.
    others = busy - 100 * (server_cpu + client_cpu) / (client_wall * cores)
    return Point(run=run, server_cpu_s=server_cpu, client_cpu_s=client_cpu,
                 client_wall_s=client_wall, rss_mib=rss_mib(server), machine_busy_pct=busy,
                 others_pct=others, cores=cores, **key)  # fmt: skip


def median_round(rounds: list[dict]) -> dict:
    """Of several rounds of one measurement, the one with the median requests per second, kept
    whole (its latencies and CPU go with it)."""
    return sorted(rounds, key=lambda r: r["rps"])[len(rounds) // 2]


def measure_cleanly(server: psutil.Process, load: Load, settings: PointSettings, **key) -> Point:
    """The point, measured again while other processes used the CPUs during its run; the cleanest
    run is kept, the others' figures are kept in `discarded`."""
    runs: list[Point] = []
    while len(runs) < MEASURE_ATTEMPTS:
        runs.append(measure_point(server, load, settings, **key))
        if runs[-1].others_pct < SUSPECT_OTHERS_PCT:
            break
    kept = min(runs, key=lambda run: run.others_pct)
    discarded = tuple(Discarded(run.rps, run.others_pct, run.run.error_total)
                      for run in runs if run is not kept)  # fmt: skip
    return replace(kept, discarded=discarded)


def answer_problem(workload: Workload, answer: dict) -> str | None:
    """Why an answer to one request is not a sensible one, or None."""
    try:
        if workload.endpoint == "typed":
            count = len(answer["predictions"])
            return None if count == 1 else f"it has {count} predictions for 1 input"
        width = model_config(workload.model)["outputs"][0]["shape"][-1]
        shape, wanted = answer["outputs"][0]["shape"], [workload.rows, width]
        return None if shape == wanted else f"outputs[0].shape is {shape}, not {wanted}"
    except (KeyError, IndexError, TypeError) as error:
        return f"it has no {error}"


def probe(name: str, url: str, workload: Workload) -> str:
    """POSTs the workload's first body once and returns the answer's JSON (a binary answer's JSON
    header); exits saying what is wrong when the server does not answer it sensibly (before
    measuring a broken server)."""
    request = urllib.request.Request(url + workload.path, workload.first_body, workload.headers)
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            raw = response.read()
            header_length = response.headers.get("Inference-Header-Content-Length")
    except urllib.error.HTTPError as error:
        answer = error.read().decode()[:500]
        raise SystemExit(f"{name}: POST {workload.path} answered {error.code}: {answer}") from None
    text = (raw[: int(header_length)] if header_length else raw).decode()
    problem = answer_problem(workload, json.loads(text))
    if problem:
        raise SystemExit(f"{name}: POST {workload.path} answered 200, but {problem}: {text[:500]}")
    return text


def point_line(label: str, point: Point) -> str:
    return (f"{label:<22} {point.model:<7} {point.endpoint:<6} c={point.concurrency:<3} "
            f"{point.rps:9.1f} rps  p50 {point.p50_ms:8.2f} ms  p99 {point.p99_ms:8.2f} ms  "
            f"generator {point.client_core_pct:4.1f}% of a core  "
            f"others {max(0.0, point.others_pct):3.0f}%  runs {1 + len(point.discarded)}  "
            f"errors {point.error_count}")  # fmt: skip


def measure_server(
    series: str,
    label: str,
    server: tuple[subprocess.Popen, str],
    plan: Sequence[tuple[Workload | GeneratorWorkload, int]],
    settings: PointSettings,
) -> tuple[list[Point], dict[str, str]]:
    """Every point of one running server, in the plan's order, a line printed per point; and the
    server's answers to the first body of each wrk path (probed first)."""
    process, url = server
    answers = {w.path: probe(label, url, w) for w, _ in plan if isinstance(w, Workload)}
    server_process = psutil.Process(process.pid)
    points = []
    for workload, c in plan:
        if isinstance(workload, Workload):
            load = partial(run_wrk, url, workload, c, cpus=settings.generator_cpus)
        else:
            load = workload.load(c, settings.generator_cpus)
        point = measure_cleanly(server_process, load, settings, series=series,
                                model=workload.model, endpoint=workload.endpoint,
                                concurrency=c)  # fmt: skip
        points.append(point)
        print(point_line(label, point), flush=True)
    return points, answers


@dataclass(frozen=True)
class ComputeLimit:
    """onnxruntime without HTTP, one row per call: `loadtest/baselines/compute_limit.py`'s line."""

    model: str
    kind: str  # "run", or "encode + run" (a raw text encoded, then run)
    calls: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_s_per_1k: float
    cpu_cores: float
    rss_mib: float
    threads: int


def compute_limit(models: list[str], settings: PointSettings, folder: Path) -> list[ComputeLimit]:
    """The compute-limit worker's results; it runs as the service does: without SERVICE_*
    variables, in a folder without a .env file."""
    command = [sys.executable, "-m", "loadtest.baselines.compute_limit", "--models", *models,
               "--duration", str(settings.duration), "--warmup", str(settings.warmup)]  # fmt: skip
    result = subprocess.run(
        command, cwd=folder, env=service_environment(), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"the compute-limit worker failed:\n{result.stdout}{result.stderr}")
    limits = [ComputeLimit(**json.loads(line)) for line in result.stdout.splitlines()
              if line.startswith("{")]  # fmt: skip
    for row in limits:
        print(f"{'compute limit':<22} {row.model:<7} {row.kind:<12} {row.rps:9.1f} "
              f"calls/s  p50 {row.p50_ms:8.3f} ms", flush=True)  # fmt: skip
    return limits
