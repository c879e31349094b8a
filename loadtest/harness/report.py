"""The benchmark's report: what a run measured (`Results`, also written as results.json) and its
Markdown, with the machine, the date, the commit, the command and where the load generator ran;
plus the table and machine helpers the other benchmarks' reports share."""

from __future__ import annotations

import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import psutil

from loadtest.harness.measure import MEASURE_ATTEMPTS, SUSPECT_OTHERS_PCT, ComputeLimit, Point
from loadtest.harness.servers import REPO
from loadtest.harness.soak import SoakResult
from loadtest.harness.targets import ENDPOINTS, RATIOS, SERIES, RatioRow, Target, fmt_ratio
from loadtest.harness.wrk import ROWS_PER_BATCH_BODY, WRK_TIMEOUT_S


@dataclass(frozen=True)
class Results:
    """Everything one benchmark run measured, and how it was run."""

    command: str  # the command that regenerates the report, every option spelled out
    service_code: str  # the commit the service ran from
    service_checkout: str | None  # another checkout's service (before/after), or None: this one
    date: str
    wall_s: float
    settings: dict  # the command's options
    machine: dict
    generator_cpus: str | None  # the CPUs the load generator was pinned to, or None
    points: list[Point]
    compute_limit: list[ComputeLimit]
    ratios: list[RatioRow]
    targets: list[Target]
    soak: SoakResult | None
    metrics_status: int | str | None  # GET /metrics on the 2-worker service, after its load

    def to_json(self) -> dict:
        plain = asdict(self)
        plain["points"] = [p.to_json() for p in self.points]
        if self.soak:
            plain["soak"]["passed"] = self.soak.passed
        return plain


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_rps(value: float) -> str:
    return f"{value:.1f}" if value < 100 else f"{value:,.0f}"


def fmt_errors(point: Point) -> str:
    total = point.error_count
    if not total:
        return "0"
    kinds = [f"{k.removesuffix('_errors')} {v}" for k, v in point.run.errors.items()]
    if total > point.run.error_total:
        kinds.append(f"{total - point.run.error_total} in discarded runs")
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
                     "locust": ["locust"], "grpcio": ["grpcio"]}  # fmt: skip
    versions = {
        name: next(filter(None, map(version, names)), "not installed")
        for name, names in distributions.items()
    }
    # The benchmarks that do not drive wrk (threads, gRPC) report the machine without it.
    versions["wrk"] = "not installed"
    if shutil.which("wrk"):
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


def machine_lines(m: dict) -> list[str]:
    return [
        "## Machine",
        "",
        f"- CPU: {m['cpu']}; `os.cpu_count()` = {m['cpu_count']}, affinity: CPUs "
        f"{', '.join(map(str, m['affinity']))}; memory {m['memory_gib']:.1f} GiB",
        f"- OS: {m['os']}; Python {m['python']}",
        "- " + ", ".join(f"{name} {v}" for name, v in m["versions"].items()),
    ]


def service_code(checkout: Path) -> str:
    """The commit the service ran from, marked when its checkout has uncommitted changes."""
    git = ["git", "-C", str(checkout)]
    try:
        commit = subprocess.run([*git, "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True).stdout.strip()  # fmt: skip
        dirty = subprocess.run([*git, "status", "--porcelain", "--", "service", "contract"],
                               capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return f"{checkout} (not a git checkout)"
    return f"commit {commit}" + (
        " with uncommitted changes to service/ or contract/" if dirty else ""
    )


def provenance(benchmark: str, argv: list[str] | None) -> dict:
    """What a focused benchmark's report names: the command that regenerates it (`python -m
    loadtest BENCHMARK ...`), the date, the service's commit and the machine."""
    return {
        "command": shlex.join(
            ["python", "-m", "loadtest", benchmark, *(argv if argv is not None else sys.argv[1:])]
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code": service_code(REPO),
        "machine": machine(),
    }


def label(point: Point) -> str:
    return (f"{SERIES[point.series]}: {point.model} {ENDPOINTS[point.endpoint]}, "
            f"c={point.concurrency}")  # fmt: skip


def suspect_lines(points: list[Point]) -> list[str]:
    names = [label(p) for p in points if p.others_pct >= SUSPECT_OTHERS_PCT]
    if not names:
        return []
    return ["", f"**Suspect** (others ≥ {SUSPECT_OTHERS_PCT}% in each of {MEASURE_ATTEMPTS} "
            f"runs: something else kept using the CPUs): {'; '.join(names)}."]  # fmt: skip


def generator_lines(results: Results) -> list[str]:
    """Where the load generator ran and what it cost per request."""
    cores = results.machine["cpu_count"]
    where = (f"pinned with `taskset -c {results.generator_cpus}`" if results.generator_cpus
             else "not pinned: the scheduler puts it on any CPU, beside the server")  # fmt: skip
    text = (
        f"Server and load generator share the machine's {cores} CPUs; the generator is {where}. "
        "A generator that needs a core of its own takes one of the server's and measures "
        "itself. wrk is C, one epoll event loop per thread (`-t1`), sending requests built once."
    )
    wrk = [p for p in results.points if p.endpoint not in ("grpc", "v2-py")]
    if not wrk:
        return ["## The load generator", "", text]
    client = [p.client_core_pct for p in wrk]
    wrk_ms = statistics.median(1000 * p.client_cpu_s / p.run.requests for p in wrk
                               if p.run.requests)  # fmt: skip
    text += (
        f" Over the {len(wrk)} wrk points here it used at most {max(client):.1f}% of one core "
        f"(median {statistics.median(client):.1f}%): {wrk_ms:.3f} ms of CPU per request (median; "
        "its rusage over its whole run, reading the body files included). The gRPC point and the "
        "REST point beside it use the asyncio generator of `loadtest/harness/generator.py` instead (wrk "
        "speaks no HTTP/2), a Python process per run, start-up included in its CPU."
    )
    soak = results.soak
    if soak and soak.total and soak.total["requests"]:
        locust_ms = 1000 * soak.locust_cpu_s / soak.total["requests"]
        busiest = max(p.rps for p in results.points if p.series in ("off", "on"))
        text += (
            " Locust (Python and gevent), which the soak uses because it checks every answer, "
            f"took {locust_ms:.2f} ms of CPU per request there (start-up included; "
            f"{locust_ms / wrk_ms:.0f} × wrk): {locust_ms * busiest / 1000:.1f} cores to drive "
            f"the service's best rate here ({busiest:,.0f} rps)."
        )
    return ["## The load generator", "", text]


def points_table(points: list[Point]) -> list[str]:
    header = ["series", "model", "endpoint", "c", "rps", "p50 ms", "p95 ms", "p99 ms",
              "server CPU ms / req", "generator % of a core", "RSS MiB", "machine busy %",
              "others %", "errors"]  # fmt: skip
    rows = [
        [SERIES[p.series], p.model, ENDPOINTS[p.endpoint], p.concurrency, fmt_rps(p.rps),
         fmt_ms(p.run.p50_ms), fmt_ms(p.run.p95_ms), fmt_ms(p.run.p99_ms),
         "–" if p.server_cpu_ms_per_request is None else f"{p.server_cpu_ms_per_request:.3f}",
         f"{p.client_core_pct:.1f}", f"{p.rss_mib:.0f}", f"{p.machine_busy_pct:.0f}",
         f"{max(0.0, p.others_pct):.0f}", fmt_errors(p)]
        for p in points
    ]  # fmt: skip
    return table(header, rows)


def compute_table(limits: list[ComputeLimit]) -> list[str]:
    header = ["model", "call", "calls/s", "p50 ms", "p99 ms", "CPU s / 1k calls", "cores busy",
              "RSS MiB", "intra-op threads"]  # fmt: skip
    rows = [
        [r.model, r.kind, fmt_rps(r.rps), f"{r.p50_ms:.3f}", f"{r.p99_ms:.3f}",
         f"{r.cpu_s_per_1k:.3f}", f"{r.cpu_cores:.2f}", f"{r.rss_mib:.0f}", r.threads]
        for r in limits
    ]  # fmt: skip
    return table(header, rows)


def ratios_table(rows: list[RatioRow]) -> list[str]:
    header = ["model", "endpoint", "c", *(f"{a} ÷ {b}" for a, b in RATIOS)]
    cells = [[r.model, ENDPOINTS[r.endpoint], r.concurrency,
              *(fmt_ratio(r.values[f"{a}/{b}"]) for a, b in RATIOS)] for r in rows]  # fmt: skip
    return table(header, cells)


def soak_lines(result: SoakResult | None) -> list[str]:
    if result is None:
        return ["Not run (`--no-soak`)."]
    total = result.total
    return [
        f"`python -m loadtest locust --users {result.users} --spawn-rate {result.users} --run-time "
        f"{result.seconds}s`: the mixed locust scenario (every user class, every answer "
        "checked) against the service with batching on and `SERVICE_ADMIN_API_KEY` set; "
        "half-way through, each model of the repository reloaded once with "
        "`POST /v2/repository/models/<name>/load`. The users wait 0.1–0.5 s between requests "
        "and locust shares the CPUs, so this is a stability run, not a maximum. "
        f"**{'PASS' if result.passed else 'FAIL'}** (locust's exit status "
        f"{result.exit_code}); locust's reports are in `soak/`.",
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
            [[r.model, r.status, f"{r.seconds:.2f}"] for r in result.reloads],
        ),
    ]  # fmt: skip


SERIES_PROSE = [
    "- **service, batching off / on**: `python -m service` on the committed models (or "
    "$LOADTEST_MODELS) with its default settings, started twice: batching off "
    "(`SERVICE_DEFAULT_BATCHING='{\"enabled\": false}'`) and on (the default: up to 64 rows, "
    "merging what queued while the last batch ran). With batching on also: V2 binary tensors "
    "(the binary tensor data extension, binary outputs, `loadtest/wrk_binary.lua`) and Boston "
    "over gRPC beside REST V2 JSON, both from the asyncio generator of `loadtest/harness/generator.py` "
    "in its own process (the same kind of client for both).",
    "- **service, 2 workers**: the same with `SERVICE_WORKERS=2` (batching on) on Boston V2 JSON; "
    "then `GET /metrics` must still answer 200.",
    "- **HTTP floor** (`loadtest/baselines/floor.py`): FastAPI under uvicorn with the service's "
    "uvicorn options; one POST route per path that reads the body and returns the service's "
    "answer to the path's first body, a constant. HTTP and FastAPI, nothing else. It also takes "
    "the binary bodies and the asyncio generator's REST point; its gRPC point is a bare "
    "grpc.aio `ModelInfer` in the same process, answering a Boston answer built once, bytes in "
    "and out: grpcio, nothing else.",
    "- **plain FastAPI** (`loadtest/baselines/plain_fastapi.py`): what people write first with "
    "onnxruntime: a route per model and endpoint on the service's typed and V2 paths, a pydantic "
    "body model, the model's onnxruntime session run per request; no batching, no metrics.",
    "- **naive Keras** (`loadtest/baselines/naive_keras.py`): a plain `def` endpoint calling "
    "Keras `model.predict` on the SavedModel per request; V2 paths only.",
    "- **compute limit** (`loadtest/baselines/compute_limit.py`): the service's own `OnnxRuntime` "
    "in a process of its own, no HTTP, batch 1, one call after another over the same rows; for "
    "IMDB also `TextEncoder.encode` of one raw review plus the run, the limit of the typed "
    "endpoint.",
]


def report(results: Results) -> str:
    settings = results.settings
    mode = (f"**before/after**: the service's code from `{results.service_checkout}` "
            "(`--service-checkout`), the models, baselines and load generator this checkout's"
            if results.service_checkout else "the service's code from this checkout")  # fmt: skip
    return "\n".join([
        "# Benchmark: the service beside an HTTP floor, a plain FastAPI app, a naive Keras "
        "server and the compute limit",
        "",
        f"Regenerate (took {results.wall_s / 60:.0f} min): `{results.command}`  ",
        f"Date: {results.date}; service code: {results.service_code}; {mode}.",
        "",
        *machine_lines(results.machine),
        "",
        "## What is measured",
        "",
        "Every HTTP server gets the same requests from the same client: the bodies of "
        "`loadtest/harness/payloads.py` (which the locust scenarios send too), built from "
        "`loadtest/samples.json` (102 Boston houses, 50 IMDB reviews) and sent in turn. A typed "
        "request carries one house or one raw review, a V2 request one row as the model's newest "
        "version takes it, made with the model's own encoder (IMDB: the review's multi-hot row, "
        "as wide as the vocabulary; for a version of the sparse form, the ids of the review's "
        f"n-grams); \"V2 JSON, 32 rows\" carries {ROWS_PER_BATCH_BODY} Boston rows on the "
        "unversioned V2 path.",
        "",
        *SERIES_PROSE,
        "",
        f"Each point: a {settings['warmup']} s warm-up run (discarded), then `wrk -t1 -c<c> "
        f"-d{settings['duration']}s --timeout={WRK_TIMEOUT_S}s -s loadtest/wrk.lua URL -- BODIES`: "
        "c connections, each sending its next request as soon as its last was answered. Latency "
        "is the generator's, from sending a request to receiving the whole answer. Server CPU is "
        "the server's processes' user + system time during the run (workers included), RSS their "
        "resident memory after it, machine busy the share of all CPUs in use, others the part of "
        "it that neither server nor generator used: near 0 unless something else ran. A run with "
        f"others at {SUSPECT_OTHERS_PCT}% or more is measured again, up to {MEASURE_ATTEMPTS} "
        "runs, and the cleanest kept (results.json has the others' figures). wrk's timeout is "
        "30 s, not 2 s, because the naive server takes seconds per answer at c=64.",
        "",
        *generator_lines(results),
        "",
        "## Points",
        "",
        *points_table(results.points),
        *suspect_lines(results.points),
        "",
        "## Compute limit",
        "",
        "onnxruntime without HTTP, one row per call, one call after another, with the service's "
        "session options and threads (`cores busy`: CPU seconds per second).",
        "",
        *compute_table(results.compute_limit),
        "",
        "## Ratios",
        "",
        "Requests per second of the service, batching off and on, over those of the floor, the "
        "plain FastAPI app, the naive server (V2 only) and the compute limit of the endpoint "
        "(typed IMDB: encode + run); batching on over off; two workers over one. Above "
        "1 × compute: batching merged requests.",
        "",
        *ratios_table(results.ratios),
        "",
        "## Targets",
        "",
        "Where the service's value is the better of batching off and on, both are named.",
        "",
        *table(
            ["group", "target", "measured", "status"],
            [[t.group, t.requirement, t.measured, f"**{t.status}**" if t.counts else "shown only"]
             for t in results.targets],
        ),
        "",
        "## Soak",
        "",
        *soak_lines(results.soak),
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
