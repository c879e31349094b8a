"""Benchmarks the service beside an HTTP floor, a naive Keras server and the compute limit, with one
load generator (wrk) and the same payloads, in one command.

    python loadtest/benchmark.py [--duration 10] [--warmup 2] [--concurrency 1 8 64]
                                 [--models boston imdb] [--no-naive] [--no-soak] [--out reports]

HTTP targets, on each model's typed and V2 endpoints at every concurrency:
- the service (`python -m service`, the committed models, default settings), started twice: with
  batching off and on;
- the HTTP floor (`loadtest/baselines/floor.py`): FastAPI under uvicorn answering each path with the
  service's own answer, a constant;
- the naive baseline (`loadtest/baselines/naive_keras.py`): Keras `model.predict` per request, V2
  paths only.
Each point is a warm-up wrk run (discarded), then `wrk -t1 -c<C> -d<duration>s -s loadtest/wrk.lua
URL -- BODIES` over the bodies of `loadtest/payloads.py`, with the server's CPU and memory, wrk's
own CPU and the machine's. Then the compute limit (`loadtest/baselines/compute_limit.py`:
onnxruntime in a process of its own, batch 1, no HTTP) and the soak: the mixed locust scenario
(`loadtest/run.py`), 128 users for 60 s, every model reloaded half-way through.

Writes <out>/benchmark.md and, in <out>/benchmark/, results.json (every number), throughput.png,
latency.png, the servers' logs and wrk's body files; the soak's reports go to <out>/soak. Exit
status 1 when a point had an error (a non-2xx answer or a socket error) or the soak failed; the
targets are reported, PASS or FAIL, not enforced.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import resource
import secrets
import shlex
import shutil
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import matplotlib
import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtest.payloads import (  # noqa: E402
    MODELS,
    TYPED_PATHS,
    model_config,
    typed_bodies,
    v2_bodies,
    v2_path,
)
from loadtest.run import (  # noqa: E402
    service_environment,
    start_server,
    start_service,
    with_repo_on_path,
)
from loadtest.servers import free_port, stop_server  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

WRK_SCRIPT = REPO / "loadtest" / "wrk.lua"
# The naive server takes seconds per answer at c=64; with wrk's default timeout (2 s) those answers
# would be counted as errors instead of measured.
WRK_TIMEOUT_S = 30
WRK_ERRORS = ("connect_errors", "read_errors", "write_errors", "status_errors", "timeouts")
ENDPOINTS = ("typed", "v2")
NO_BATCHING = {"SERVICE_DEFAULT_BATCHING": '{"enabled": false}'}
SOAK_USERS = 128
# What the ratios compare: a series is a target and its batching; "compute" is the compute limit.
SERIES = {"off": ("service", "off"), "on": ("service", "on"), "floor": ("floor", None),
          "naive": ("naive", None)}  # fmt: skip
RATIOS = (("off", "floor"), ("on", "floor"), ("off", "naive"), ("on", "naive"), ("on", "off"),
          ("off", "compute"), ("on", "compute"))  # fmt: skip
# The targets: (a) the service near the floor, (b) far above the naive server, (c) batching pays.
FLOOR_SHARE, NAIVE_FACTOR, BATCHING_FACTOR = 0.8, 20, 2
TARGET_CONCURRENCY, BATCHING_CONCURRENCY = 8, 64
# A run during which other processes used this much of the machine is measured again (this is a
# shared machine), up to MEASURE_ATTEMPTS runs in all, and the cleanest is kept.
SUSPECT_OTHERS_PCT, MEASURE_ATTEMPTS = 10, 3


@dataclass(frozen=True)
class Workload:
    """One benchmarked path and its request bodies, one per sample, in a file for wrk.lua."""

    model: str
    endpoint: str  # "typed" or "v2"
    path: str
    bodies: Path  # lines of PATH<TAB>BODY
    first_body: str


def write_workloads(models: list[str], folder: Path) -> list[Workload]:
    folder.mkdir(parents=True, exist_ok=True)
    workloads = []
    for model in models:
        for endpoint, path, bodies in (
            ("typed", TYPED_PATHS[model], typed_bodies(model)),
            ("v2", v2_path(model), v2_bodies(model)),
        ):
            lines = [json.dumps(body, separators=(",", ":")) for body in bodies]
            file = folder / f"{model}-{endpoint}.txt"
            file.write_text("".join(f"{path}\t{line}\n" for line in lines), "utf-8")
            workloads.append(Workload(model, endpoint, path, file, lines[0]))
    return workloads


# One HTTP point: wrk's run, and the CPU and memory around it.


def parse_wrk(output: str) -> dict:
    """The JSON line that wrk.lua's `done` prints after wrk's own summary."""
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    raise ValueError(f"wrk printed no result line:\n{output[-2000:]}")


def summarize_wrk(wrk: dict) -> dict:
    """Requests per second, latency in ms and errors by kind, from wrk.lua's line."""
    seconds = wrk["duration_us"] / 1e6
    errors = {key: wrk[key] for key in WRK_ERRORS}
    return {
        "requests": wrk["requests"],
        "seconds": seconds,
        "rps": wrk["requests"] / seconds if seconds else 0.0,
        **{f"{q}_ms": wrk[f"{q}_us"] / 1000 for q in ("p50", "p95", "p99", "max", "mean")},
        "errors": errors,
        "error_total": sum(errors.values()),
    }


def run_wrk(
    url: str, bodies: Path | list[str], concurrency: int, seconds: int, script: Path = WRK_SCRIPT
) -> tuple[dict, float, float]:
    """The wrk script's result, wrk's CPU seconds (its rusage, reaped with wait4) and its wall
    seconds. `bodies`: wrk.lua's file, or the arguments of another `script`."""
    arguments = [str(bodies)] if isinstance(bodies, Path) else bodies
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", f"--timeout={WRK_TIMEOUT_S}s",
               "-s", str(script), url, "--", *arguments]  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    with process.stdout:
        output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    if process.returncode != 0:
        raise SystemExit(f"`{shlex.join(command)}` exited with {process.returncode}:\n{output}")
    return parse_wrk(output), usage.ru_utime + usage.ru_stime, wall


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


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


def measure_point(
    server: psutil.Process, url: str, workload: Workload, concurrency: int, args
) -> dict:
    if args.warmup:
        run_wrk(url, workload.bodies, concurrency, args.warmup)
    wait_until_idle(server)
    server_before, machine_before = cpu_seconds(server), psutil.cpu_times()
    wrk, client_cpu, client_wall = run_wrk(url, workload.bodies, concurrency, args.duration)
    server_cpu = cpu_seconds(server) - server_before
    busy = busy_percent(machine_before, psutil.cpu_times())
    result = summarize_wrk(wrk)
    requests, cores = result["requests"], os.cpu_count()
    client_core = 100 * client_cpu / client_wall
    # Whatever else ran (another benchmark, a test run) shows here and makes the point suspect.
    others = busy - 100 * (server_cpu + client_cpu) / (client_wall * cores)
    return {
        "model": workload.model,
        "endpoint": workload.endpoint,
        "concurrency": concurrency,
        **result,
        "server_cpu_s": server_cpu,
        "server_cpu_s_per_1k": 1000 * server_cpu / requests if requests else None,
        "client_cpu_s": client_cpu,
        "client_core_pct": client_core,
        "client_machine_pct": client_core / cores,
        "rss_mib": server.memory_info().rss / 2**20,
        "machine_busy_pct": busy,
        "others_pct": others,
        "wrk": wrk,
    }


def measure_cleanly(
    server: psutil.Process, url: str, workload: Workload, concurrency: int, args
) -> dict:
    """The point, measured again while other processes used the CPUs during its run; the cleanest
    run is kept, the others' figures are kept in "discarded"."""
    runs = []
    while len(runs) < MEASURE_ATTEMPTS:
        runs.append(measure_point(server, url, workload, concurrency, args))
        if runs[-1]["others_pct"] < SUSPECT_OTHERS_PCT:
            break
    kept = min(runs, key=lambda run: run["others_pct"])
    discarded = [{key: run[key] for key in ("rps", "others_pct", "error_total")}
                 for run in runs if run is not kept]  # fmt: skip
    return {**kept, "discarded": discarded}


def error_count(point: dict) -> int:
    """Errors of the point's kept and discarded runs: an error is one wherever it happened."""
    return point["error_total"] + sum(run["error_total"] for run in point["discarded"])


# The HTTP targets.


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


def start_baseline(module: str, options: list[str], log_path: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    command = [sys.executable, "-m", f"loadtest.baselines.{module}", "--port", str(port), *options]
    env = with_repo_on_path({**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})  # for the naive server
    return start_server(command, env, port, log_path, timeout=180)


def label(target: str, batching: str | None) -> str:
    names = {"service": f"service, batching {batching}", "floor": "HTTP floor",
             "naive": "naive Keras"}  # fmt: skip
    return names[target]


def answer_problem(workload: Workload, answer: dict) -> str | None:
    """Why an answer to one request is not a sensible one, or None."""
    try:
        if workload.endpoint == "v2":
            width = model_config(workload.model)["outputs"][0]["shape"][-1]
            shape = answer["outputs"][0]["shape"]
            return None if shape == [1, width] else f"outputs[0].shape is {shape}, not [1, {width}]"
        count = len(answer["predictions"])
        return None if count == 1 else f"it has {count} predictions for 1 input"
    except (KeyError, IndexError, TypeError) as error:
        return f"it has no {error}"


def probe(name: str, url: str, workload: Workload) -> str:
    """POSTs the workload's first body once and returns the answer; exits saying what is wrong
    when the target does not answer it sensibly (before measuring a broken target)."""
    request = urllib.request.Request(
        url + workload.path, workload.first_body.encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as error:
        answer = error.read().decode()[:500]
        raise SystemExit(f"{name}: POST {workload.path} answered {error.code}: {answer}") from None
    problem = answer_problem(workload, json.loads(text))
    if problem:
        raise SystemExit(f"{name}: POST {workload.path} answered 200, but {problem}: {text[:500]}")
    return text


def measure_target(
    target: str, batching: str | None, server, workloads: list[Workload], args
) -> tuple[list[dict], dict[str, str]]:
    """Every point of one running server, a line printed per point, and the server's answers to
    the first body of each path."""
    process, url = server
    name = label(target, batching)
    answers = {w.path: probe(name, url, w) for w in workloads}
    server_process = psutil.Process(process.pid)
    points = []
    for workload in workloads:
        for c in args.concurrency:
            point = {"target": target, "batching": batching,
                     **measure_cleanly(server_process, url, workload, c, args)}  # fmt: skip
            points.append(point)
            print(f"{name:<22} {workload.model:<7} {workload.endpoint:<5} c={c:<3} "
                  f"{point['rps']:9.1f} rps  p50 {point['p50_ms']:8.2f} ms  "
                  f"p99 {point['p99_ms']:8.2f} ms  wrk {point['client_core_pct']:4.1f}% of a core  "
                  f"others {max(0.0, point['others_pct']):3.0f}%  "
                  f"runs {1 + len(point['discarded'])}  "
                  f"errors {error_count(point)}", flush=True)  # fmt: skip
    return points, answers


def http_points(args, workloads: list[Workload], folder: Path) -> list[dict]:
    checkout = args.service_checkout or REPO
    off_log, on_log = folder / "service-batching-off.log", folder / "service-batching-on.log"
    with running(start_service(off_log, NO_BATCHING, checkout=checkout)) as server:
        points, answers = measure_target("service", "off", server, workloads, args)
    with running(start_service(on_log, checkout=checkout)) as server:
        points += measure_target("service", "on", server, workloads, args)[0]
    # The floor answers each path with the service's answer to its first body.
    answers_file = folder / "floor-answers.json"
    answers_file.write_text(json.dumps(answers, indent=1), "utf-8")
    with running(
        start_baseline("floor", ["--answers", str(answers_file)], folder / "floor.log")
    ) as server:
        points += measure_target("floor", None, server, workloads, args)[0]
    if not args.no_naive:
        v2 = [w for w in workloads if w.endpoint == "v2"]
        with running(
            start_baseline("naive_keras", ["--models", *args.models], folder / "naive.log")
        ) as server:
            points += measure_target("naive", None, server, v2, args)[0]
    return points


def compute_limit(args, folder: Path) -> list[dict]:
    """The compute-limit worker's results; it runs as the service does: without SERVICE_*
    variables, in a folder without a .env file."""
    command = [sys.executable, "-m", "loadtest.baselines.compute_limit", "--models", *args.models,
               "--duration", str(args.duration), "--warmup", str(args.warmup)]  # fmt: skip
    result = subprocess.run(
        command, cwd=folder, env=service_environment(), capture_output=True, text=True
    )
    if result.returncode != 0:
        raise SystemExit(f"the compute-limit worker failed:\n{result.stdout}{result.stderr}")
    limits = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    for row in limits:
        print(f"{'compute limit':<22} {row['model']:<7} {row['kind']:<12} {row['rps']:9.1f} "
              f"calls/s  p50 {row['p50_ms']:8.3f} ms", flush=True)  # fmt: skip
    return limits


# The soak: the mixed locust scenario, with reloads.


def reload_model(url: str, name: str, key: str) -> dict:
    request = urllib.request.Request(
        f"{url}/v2/repository/models/{name}/load",
        b"",
        {"Authorization": f"Bearer {key}"},
        method="POST",
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:  # no answer at all
        status = f"no answer: {error}"
    return {"model": name, "status": status, "seconds": time.perf_counter() - started}


def soak(seconds: int, folder: Path) -> dict:
    """`loadtest/run.py` (locust, every user class) against the service with batching on, every
    model of the repository reloaded through the repository API half-way through."""
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    names = sorted(p.name for p in MODELS.iterdir() if p.is_dir())
    service = start_service(folder / "service.log", {"SERVICE_ADMIN_API_KEY": key})
    with running(service) as (_, url), (folder / "run.log").open("wb") as log:
        command = [sys.executable, str(REPO / "loadtest" / "run.py"), "--host", url,
                   "--users", str(SOAK_USERS), "--spawn-rate", str(SOAK_USERS),
                   "--run-time", f"{seconds}s", "--reports", str(folder)]  # fmt: skip
        print(f"soak: {shlex.join(command[1:])}", flush=True)
        before = children_cpu_seconds()
        locust = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            locust.wait(timeout=seconds / 2)  # returns early only when locust fails
        reloads = [reload_model(url, name, key) for name in names]
        code = locust.wait(timeout=seconds + 120)
        locust_cpu = children_cpu_seconds() - before  # run.py and locust, the only ones reaped
    summary_file = folder / "summary.json"
    stats = json.loads(summary_file.read_text("utf-8")) if summary_file.exists() else []
    total = next((row for row in stats if row["name"] == "Aggregated"), None)
    passed = (
        code == 0
        and total is not None
        and total["requests"] > 0
        and total["failures"] == 0
        and all(r["status"] == 200 for r in reloads)
    )
    result = {"users": SOAK_USERS, "seconds": seconds, "exit_code": code, "total": total,
              "by_name": stats, "reloads": reloads, "passed": passed,
              "locust_cpu_s": locust_cpu}  # fmt: skip
    print(f"soak: {'PASS' if passed else 'FAIL'}: {soak_summary(result)}", flush=True)
    return result


def children_cpu_seconds() -> float:
    """CPU seconds of this process's reaped children and of the children they reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def soak_summary(result: dict) -> str:
    total = result["total"] or {"requests": 0, "failures": "unknown"}
    reloads = ", ".join(f"{r['model']} {r['status']}" for r in result["reloads"])
    return f"{total['requests']:,} requests, {total['failures']} failures; reloads: {reloads}"


# Ratios and targets, from the numbers alone.


def compute_rps(limits: list[dict], model: str, endpoint: str) -> float | None:
    """The compute limit of an endpoint: "encode + run" for a text model's typed endpoint (raw
    text in), "run" otherwise."""
    kinds = {row["kind"]: row["rps"] for row in limits if row["model"] == model}
    if endpoint == "typed" and "encode + run" in kinds:
        return kinds["encode + run"]
    return kinds.get("run")


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def ratios(points: list[dict], limits: list[dict]) -> list[dict]:
    """Per model, endpoint and concurrency of the service: the RATIOS of requests per second, e.g.
    "on/floor" for the service with batching on over the floor."""
    rps = {(p["target"], p["batching"], p["model"], p["endpoint"], p["concurrency"]): p["rps"]
           for p in points}  # fmt: skip
    keys = {(p["model"], ENDPOINTS.index(p["endpoint"]), p["concurrency"])
            for p in points if p["target"] == "service"}  # fmt: skip
    rows = []
    for model, index, c in sorted(keys):
        endpoint = ENDPOINTS[index]
        value = {name: rps.get((*series, model, endpoint, c)) for name, series in SERIES.items()}
        value["compute"] = compute_rps(limits, model, endpoint)
        rows.append({"model": model, "endpoint": endpoint, "concurrency": c,
                     **{f"{a}/{b}": ratio(value[a], value[b]) for a, b in RATIOS}})  # fmt: skip
    return rows


def ratio_row(rows: list[dict], model: str, endpoint: str, concurrency: int) -> dict:
    wanted = (model, endpoint, concurrency)
    return next((r for r in rows if (r["model"], r["endpoint"], r["concurrency"]) == wanted), {})


def service_over(rows: list[dict], model: str, endpoint: str, c: int, other: str):
    """The better of the service's batching off and on over `other`, and a text naming both."""
    row = ratio_row(rows, model, endpoint, c)
    off, on = row.get(f"off/{other}"), row.get(f"on/{other}")
    known = [v for v in (off, on) if v is not None]
    if not known:
        return None, "not measured"
    best = max(known)
    return best, f"{fmt_ratio(best)} × {other} (off {fmt_ratio(off)}, on {fmt_ratio(on)})"


def target_row(target: str, requirement: str, passed: bool | None, measured: str,
               counts: bool = True) -> dict:  # fmt: skip
    """One row of the targets table; rows that do not count are shown only."""
    status = "not measured" if passed is None else "PASS" if passed else "FAIL"
    return {"target": target, "requirement": requirement, "measured": measured, "status": status,
            "counts": counts}  # fmt: skip


def at_least(value: float | None, bound: float) -> bool | None:
    return None if value is None else value >= bound


def targets(rows: list[dict], concurrency: list[int], soak_result: dict | None) -> list[dict]:
    results = []
    c = TARGET_CONCURRENCY
    for endpoint, name in (("v2", "V2"), ("typed", "typed")):
        value, text = service_over(rows, "boston", endpoint, c, "floor")
        requirement = f"Boston {name}, c={c}: service ≥ {FLOOR_SHARE} × floor rps"
        results.append(target_row("a", requirement, at_least(value, FLOOR_SHARE), text))
    for model, name in (("boston", "Boston"), ("imdb", "IMDB")):
        for shown in sorted({*concurrency, c}):
            value, text = service_over(rows, model, "v2", shown, "naive")
            requirement = f"{name} V2, c={shown}: service ≥ {NAIVE_FACTOR} × naive rps"
            if shown != c:
                requirement += " (shown only)"
            passed = at_least(value, NAIVE_FACTOR)
            results.append(target_row("b", requirement, passed, text, counts=shown == c))
    c = BATCHING_CONCURRENCY
    value = ratio_row(rows, "imdb", "typed", c).get("on/off")
    requirement = f"IMDB typed (raw text), c={c}: batching on ≥ {BATCHING_FACTOR} × off"
    measured = "not measured" if value is None else f"{fmt_ratio(value)} × off"
    results.append(target_row("c", requirement, at_least(value, BATCHING_FACTOR), measured))
    results.append(target_row(
        "d", "soak: 0 failures, every reload answered 200",
        None if soak_result is None else soak_result["passed"],
        "not run (--no-soak)" if soak_result is None else soak_summary(soak_result)))  # fmt: skip
    return results


def verdicts(rows: list[dict]) -> dict[str, str]:
    """Each target's verdict from its rows that count: FAIL if one fails, PASS if all pass."""
    statuses: dict[str, set[str]] = {}
    for row in rows:
        if row["counts"]:
            statuses.setdefault(row["target"], set()).add(row["status"])
    return {
        target: next(s for s in ("FAIL", "not measured", "PASS") if s in found)
        for target, found in statuses.items()
    }


# The report.


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_rps(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_errors(point: dict) -> str:
    total = error_count(point)
    if not total:
        return "0"
    kinds = [f"{k.removesuffix('_errors')} {v}" for k, v in point["errors"].items() if v]
    if total > point["error_total"]:
        kinds.append(f"{total - point['error_total']} in discarded runs")
    return f"**{total}** ({', '.join(kinds)})"


def table(header: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "|".join("---" for _ in header) + "|",
        *("| " + " | ".join(str(cell) for cell in row) + " |" for row in rows),
    ]


def version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def machine() -> dict:
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")),
               platform.processor() or "unknown")  # fmt: skip
    try:
        os_name = platform.freedesktop_os_release()["PRETTY_NAME"]
    except (OSError, KeyError):
        os_name = platform.system()
    distributions = {"onnxruntime": ["onnxruntime", "onnxruntime-gpu"], "fastapi": ["fastapi"],
                     "uvicorn": ["uvicorn"], "pydantic": ["pydantic"],
                     "tensorflow": ["tensorflow", "tensorflow-cpu"], "keras": ["keras"],
                     "locust": ["locust"]}  # fmt: skip
    versions = {
        name: next(filter(None, map(version, names)), "not installed")
        for name, names in distributions.items()
    }
    wrk = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout
    versions["wrk"] = wrk.split(" Copyright")[0].removeprefix("wrk ").strip()  # "4.1.0 [epoll]"
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "affinity": sorted(os.sched_getaffinity(0)),
        "memory_gib": psutil.virtual_memory().total / 2**30,
        "os": f"{os_name}, {platform.system()} {platform.release()} {platform.machine()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def command_line(args) -> str:
    """The command that regenerates the report, every option spelled out."""
    parts = ["python", "loadtest/benchmark.py", "--duration", str(args.duration),
             "--warmup", str(args.warmup), "--concurrency", *map(str, args.concurrency),
             "--models", *args.models]  # fmt: skip
    if args.no_naive:
        parts.append("--no-naive")
    if args.no_soak:
        parts.append("--no-soak")
    elif args.soak_time != argument_parser().get_default("soak_time"):
        parts += ["--soak-time", str(args.soak_time)]
    out = args.out.resolve()
    parts += ["--out", str(out.relative_to(REPO) if out.is_relative_to(REPO) else out)]
    if args.service_checkout:
        parts += ["--service-checkout", str(args.service_checkout)]
    return shlex.join(parts)


def service_code(checkout: Path) -> str:
    """The commit the service ran from, marked when its checkout has uncommitted changes."""
    git = ["git", "-C", str(checkout)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "service"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return f"{checkout} (not a git checkout)"
    return f"commit {commit}" + (" with uncommitted changes to service/" if dirty else "")


def report(results: dict) -> str:
    settings = results["settings"]
    return "\n".join([
        "# Benchmark: the service beside an HTTP floor, a naive Keras server and the compute limit",
        "",
        f"Regenerate (took {results['wall_s'] / 60:.0f} min): `{results['command']}`  ",
        f"Date: {results['date']}; service code: {results['service_code']}",
        "",
        *machine_lines(results["machine"]),
        "",
        "## What is measured",
        "",
        "Every HTTP target gets the same requests from the same client: the bodies of "
        "`loadtest/payloads.py` (which the locust scenarios send too), built from "
        "`loadtest/samples.json` (102 Boston houses, 50 IMDB reviews) and sent in turn. A typed "
        "request carries one house or one raw review, a V2 request one row (IMDB: the review's "
        "50,000-wide multi-hot row, made with the model's own encoder).",
        "",
        "- **service**: `python -m service` on the committed models (newest version: 2) with its "
        "default settings, started twice: batching off "
        "(`SERVICE_DEFAULT_BATCHING='{\"enabled\": false}'`) and on (the default: up to 64 rows, "
        "merging what queued while the last batch ran).",
        "- **HTTP floor** (`loadtest/baselines/floor.py`): FastAPI under uvicorn with the "
        "service's uvicorn options; one POST route per path that reads the body and returns the "
        "service's answer to the path's first body, a constant. HTTP and FastAPI, nothing else.",
        "- **naive Keras** (`loadtest/baselines/naive_keras.py`): the server people write first, "
        "a plain `def` endpoint calling Keras `model.predict` on the SavedModel per request; V2 "
        "paths only.",
        "- **compute limit** (`loadtest/baselines/compute_limit.py`): the service's own "
        "`OnnxRuntime` in a process of its own, no HTTP, batch 1, one call after another over "
        "the same rows; for IMDB also `TextEncoder.encode` of one raw review plus the run, the "
        "limit of the typed endpoint.",
        "",
        f"Each point: a {settings['warmup']} s warm-up run (discarded), then `wrk -t1 -c<c> "
        f"-d{settings['duration']}s --timeout={WRK_TIMEOUT_S}s -s loadtest/wrk.lua URL -- BODIES`: "
        "c connections, each sending its next request as soon as its last was answered. Latency "
        "is wrk's, from sending a request to receiving the whole answer. Server CPU is the "
        "server process's user + system time during the run, RSS its resident memory after it, "
        "machine busy the share of both CPUs in use, others the part of it that neither server "
        "nor wrk used: near 0 unless something else ran. A run with others at "
        f"{SUSPECT_OTHERS_PCT}% or more is measured again, up to {MEASURE_ATTEMPTS} runs, and the "
        "cleanest kept (results.json has the others' figures). wrk's timeout is 30 s, not 2 s, "
        "because the naive server takes seconds per answer at c=64.",
        "",
        *wrk_lines(results["points"], results["soak"], results["machine"]["cpu_count"]),
        "",
        "## HTTP points",
        "",
        *points_table(results["points"]),
        *suspect_lines(results["points"]),
        "",
        "## Compute limit",
        "",
        "onnxruntime without HTTP, one row per call, one call after another, with the service's "
        "session options and threads (`cores busy`: CPU seconds per second).",
        "",
        *compute_table(results["compute_limit"]),
        "",
        "## Ratios",
        "",
        "Requests per second of the service, batching off and on, over those of the floor, the "
        "naive server (V2 only) and the compute limit of the endpoint (typed IMDB: encode + "
        "run); and batching on over off. Above 1 × compute: batching merged requests.",
        "",
        *ratios_table(results["ratios"]),
        "",
        "## Targets",
        "",
        "The service's value is the better of batching off and on; both are named.",
        "",
        *table(
            ["target", "requirement", "measured", "status"],
            [[t["target"], t["requirement"], t["measured"], f"**{t['status']}**"]
             for t in results["targets"]],
        ),
        "",
        "## Soak",
        "",
        *soak_lines(results["soak"]),
        "",
        "## Charts",
        "",
        "![Requests per second against concurrency](benchmark/throughput.png)",
        "",
        "![p99 latency against concurrency](benchmark/latency.png)",
        "",
        "Every number: [`benchmark/results.json`](benchmark/results.json).",
        "",
    ])  # fmt: skip


def machine_lines(m: dict) -> list[str]:
    return [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}; `os.cpu_count()` = {m['cpu_count']}, affinity: CPUs "
        f"{', '.join(map(str, m['affinity']))}; memory {m['memory_gib']:.1f} GiB",
        f"- OS: {m['os']}; Python {m['python']}",
        "- " + ", ".join(f"{name} {v}" for name, v in m["versions"].items()),
    ]


def wrk_lines(points: list[dict], soak_result: dict | None, cores: int) -> list[str]:
    """Why wrk, with what it and (in the soak) locust cost per request here."""
    text = (
        f"Server and load generator share the machine's {cores} CPUs: a generator that needs a "
        "core of its own takes one of the server's and measures itself. wrk is C, one epoll "
        "event loop per thread, sending requests built once."
    )
    if not points:
        return ["## The load generator: wrk", "", text]
    client = [p["client_core_pct"] for p in points]
    wrk_ms = statistics.median(1000 * p["client_cpu_s"] / p["requests"] for p in points)
    text += (
        f" Over the {len(points)} points here it used at most {max(client):.1f}% of one core "
        f"(median {statistics.median(client):.1f}%), at most {max(client) / cores:.1f}% of the "
        f"{cores} cores: {wrk_ms:.3f} ms of CPU per request (median; its rusage over its whole "
        "run, reading the body file included)."
    )
    total = soak_result and soak_result["total"]
    if total and total["requests"]:
        locust_ms = 1000 * soak_result["locust_cpu_s"] / total["requests"]
        busiest = max(p["rps"] for p in points if p["target"] == "service")
        text += (
            " Locust (Python and gevent), which the soak uses because it checks every answer, "
            f"took {locust_ms:.2f} ms of CPU per request there (start-up included; "
            f"{locust_ms / wrk_ms:.0f} × wrk): "
            f"{locust_ms * busiest / 1000:.1f} cores to drive the service's best rate here "
            f"({busiest:,.0f} rps)."
        )
    return ["## The load generator: wrk", "", text]


def points_table(points: list[dict]) -> list[str]:
    header = ["target", "model", "endpoint", "batching", "c", "rps", "p50 ms", "p95 ms",
              "p99 ms", "server CPU s / 1k req", "wrk % of a core", "RSS MiB", "machine busy %",
              "others %", "errors"]  # fmt: skip
    rows = [
        [p["target"], p["model"], p["endpoint"], p["batching"] or "–", p["concurrency"],
         fmt_rps(p["rps"]), fmt_ms(p["p50_ms"]), fmt_ms(p["p95_ms"]), fmt_ms(p["p99_ms"]),
         "–" if p["server_cpu_s_per_1k"] is None else f"{p['server_cpu_s_per_1k']:.2f}",
         f"{p['client_core_pct']:.1f}", f"{p['rss_mib']:.0f}", f"{p['machine_busy_pct']:.0f}",
         f"{max(0.0, p['others_pct']):.0f}", fmt_errors(p)]
        for p in points
    ]  # fmt: skip
    return table(header, rows)


def point_name(point: dict) -> str:
    return (f"{label(point['target'], point['batching'])}: {point['model']} {point['endpoint']}, "
            f"c={point['concurrency']}")  # fmt: skip


def suspect_lines(points: list[dict]) -> list[str]:
    names = [point_name(p) for p in points if p["others_pct"] >= SUSPECT_OTHERS_PCT]
    if not names:
        return []
    return ["", f"**Suspect** (others ≥ {SUSPECT_OTHERS_PCT}% in each of {MEASURE_ATTEMPTS} "
            f"runs: something else kept using the CPUs): {'; '.join(names)}."]  # fmt: skip


def compute_table(limits: list[dict]) -> list[str]:
    header = ["model", "call", "calls/s", "p50 ms", "p99 ms", "CPU s / 1k calls", "cores busy",
              "RSS MiB", "intra-op threads"]  # fmt: skip
    rows = [
        [r["model"], r["kind"], fmt_rps(r["rps"]), f"{r['p50_ms']:.3f}", f"{r['p99_ms']:.3f}",
         f"{r['cpu_s_per_1k']:.3f}", f"{r['cpu_cores']:.2f}", f"{r['rss_mib']:.0f}", r["threads"]]
        for r in limits
    ]  # fmt: skip
    return table(header, rows)


def ratios_table(rows: list[dict]) -> list[str]:
    header = ["model", "endpoint", "c", *(f"{a} ÷ {b}" for a, b in RATIOS)]
    cells = [
        [r["model"], r["endpoint"], r["concurrency"],
         *(fmt_ratio(r[f"{a}/{b}"]) for a, b in RATIOS)]
        for r in rows
    ]  # fmt: skip
    return table(header, cells)


def soak_lines(result: dict | None) -> list[str]:
    if result is None:
        return ["Not run (`--no-soak`)."]
    total = result["total"]
    return [
        f"`loadtest/run.py --users {result['users']} --spawn-rate {result['users']} --run-time "
        f"{result['seconds']}s`: the mixed locust scenario (every user class, every answer "
        "checked) against the service with batching on and `SERVICE_ADMIN_API_KEY` set; "
        "half-way through, each model of the repository reloaded once with "
        "`POST /v2/repository/models/<name>/load`. The users wait 0.1–0.5 s between requests "
        "and locust shares the CPUs, so this is a stability run, not a maximum. "
        f"**{'PASS' if result['passed'] else 'FAIL'}** (locust's exit status "
        f"{result['exit_code']}); locust's reports are in `soak/`.",
        "",
        *table(
            ["requests", "rps", "p50 ms", "p95 ms", "max ms", "failures"],
            [[f"{total['requests']:,}", fmt_rps(total["rps"]), fmt_ms(total["p50_ms"]),
              fmt_ms(total["p95_ms"]), fmt_ms(total["max_ms"]), total["failures"]]]
            if total else [],
        ),
        "",
        *table(
            ["reloaded model", "status", "seconds"],
            [[r["model"], r["status"], f"{r['seconds']:.2f}"] for r in result["reloads"]],
        ),
    ]  # fmt: skip


# The charts.

COLOURS = {("service", "off"): "tab:blue", ("service", "on"): "tab:orange",
           ("floor", None): "tab:gray", ("naive", None): "tab:red"}  # fmt: skip
LINES = {"typed": "-", "v2": "--"}
LIMIT_LINES = {"run": ":", "encode + run": "-."}


def chart(results: dict, metric: str, title: str, path: Path) -> None:
    """One panel per model: `metric` against concurrency, a line per target (colour) and endpoint
    (line style); the throughput chart also draws the compute limits."""
    settings, points = results["settings"], results["points"]
    models, concurrency = settings["models"], settings["concurrency"]
    figure, axes = plt.subplots(
        1, len(models), figsize=(max(7, 6 * len(models)), 6), squeeze=False, sharey=True,
        layout="constrained",
    )  # fmt: skip
    for axis, model in zip(axes[0], models, strict=True):
        for (target, batching), colour in COLOURS.items():
            for endpoint, line in LINES.items():
                series = sorted(
                    (p["concurrency"], p[metric]) for p in points
                    if (p["target"], p["batching"], p["model"], p["endpoint"])
                    == (target, batching, model, endpoint)
                )  # fmt: skip
                if series:
                    axis.plot(*zip(*series, strict=True), line, color=colour, marker="o",
                              label=f"{label(target, batching)}, {endpoint}")  # fmt: skip
        if metric == "rps":
            for row in results["compute_limit"]:
                if row["model"] == model:
                    axis.axhline(row["rps"], color="black", linewidth=1,
                                 linestyle=LIMIT_LINES[row["kind"]],
                                 label=f"compute limit, {row['kind']}")  # fmt: skip
        axis.set_xscale("log", base=2)
        axis.set_xticks(concurrency, [str(c) for c in concurrency])
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.set_title(model)
        axis.set_xlabel("concurrent connections (c)")
    axes[0][0].set_ylabel(f"{title}, log scale")
    legend = {}
    for axis in axes[0]:
        legend.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
    figure.legend(legend.values(), legend.keys(), loc="outside lower center",
                  ncol=2 * len(models), fontsize=9)  # fmt: skip
    figure.suptitle(f"{title} against concurrency (wrk, {settings['duration']} s per point)")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up (0: none)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--models", nargs="+", default=["boston", "imdb"], choices=[*TYPED_PATHS])
    parser.add_argument("--no-naive", action="store_true", help="leave out the naive Keras server")
    parser.add_argument("--no-soak", action="store_true", help="leave out the soak")
    parser.add_argument("--soak-time", type=int, default=60, help="seconds of soak (default 60)")
    parser.add_argument("--out", type=Path, default=REPO / "reports", help="default: reports/")
    parser.add_argument(
        "--service-checkout",
        type=Path,
        help="run the service's code from another checkout, e.g. one made by `git worktree add "
        "/tmp/before <commit>`, for a before/after comparison (the models stay this checkout's)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = argument_parser().parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if args.duration < 1 or args.warmup < 0:
        raise SystemExit("wrk counts whole seconds: --duration 1 or more, --warmup 0 or more")
    started = time.monotonic()
    out = args.out.resolve()
    folder = out / "benchmark"
    folder.mkdir(parents=True, exist_ok=True)
    workloads = write_workloads(args.models, folder / "bodies")
    points = http_points(args, workloads, folder)
    limits = compute_limit(args, folder)
    soak_result = None if args.no_soak else soak(args.soak_time, out / "soak")
    rows = ratios(points, limits)
    results = {
        "command": command_line(args),
        "service_code": service_code(args.service_checkout or REPO),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "wall_s": time.monotonic() - started,
        "settings": {
            **{k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "wrk_timeout_s": WRK_TIMEOUT_S,
        },
        "machine": machine(),
        "points": points,
        "compute_limit": limits,
        "ratios": rows,
        "targets": targets(rows, args.concurrency, soak_result),
        "soak": soak_result,
    }
    (folder / "results.json").write_text(json.dumps(results, indent=1) + "\n", "utf-8")
    chart(results, "rps", "requests per second", folder / "throughput.png")
    chart(results, "p99_ms", "p99 latency (ms)", folder / "latency.png")
    (out / "benchmark.md").write_text(report(results), "utf-8")
    print(f"report: {out / 'benchmark.md'}")
    for target, verdict in verdicts(results["targets"]).items():
        rows_counted = [t for t in results["targets"] if t["target"] == target and t["counts"]]
        print(f"target ({target}) {verdict}: " + "; ".join(
            f"{t['requirement']}: {t['measured']}" for t in rows_counted))  # fmt: skip
    for line in suspect_lines(points)[1:]:
        print(line.replace("**", ""), file=sys.stderr)
    failed = [p for p in points if error_count(p)]
    for p in failed:
        print(f"errors: {point_name(p)}: {fmt_errors(p).replace('**', '')}", file=sys.stderr)
    soak_failed = soak_result is not None and not soak_result["passed"]
    if soak_failed:
        print(f"the soak failed; see {out / 'soak'}", file=sys.stderr)
    return 1 if failed or soak_failed else 0


if __name__ == "__main__":
    sys.exit(main())
