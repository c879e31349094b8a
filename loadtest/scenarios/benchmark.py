"""Benchmarks the service beside an HTTP floor, a plain FastAPI app, a naive Keras server and the
compute limit, with one load generator (wrk) and the same payloads, in one command.

    python -m loadtest benchmark [--duration 5] [--warmup 1] [--concurrency 1 8 64]
                                 [--models boston imdb] [--no-naive] [--no-soak] [--soak-time 30]
                                 [--generator-cpus 1] [--service-checkout DIR] [--quick]
                                 [--out reports]

The series (servers), each started in turn and measured at every point of its plan:
- off, on: the service (`python -m service`, the committed models or $LOADTEST_MODELS, default
  settings) with batching off and on: typed and V2 JSON at every concurrency, V2 JSON with 32 rows
  per request at c ≥ 8; with batching on also, at c=8, V2 binary tensors and Boston over gRPC beside
  REST V2 JSON (both by the asyncio generator of `loadtest/harness/generator.py`);
- workers2: the service with SERVICE_WORKERS=2, Boston V2 JSON at c ≥ 8, then GET /metrics;
- floor (`loadtest/baselines/floor.py`: the points of both services above but the workers', its
  gRPC method for the gRPC point), plain (`loadtest/baselines/plain_fastapi.py`) and naive
  (`loadtest/baselines/naive_keras.py`, V2 only): the baselines.
Then the compute limit (`loadtest/baselines/compute_limit.py`) and the soak (`loadtest/harness/soak.py`).
Where the parts live: `loadtest/harness/wrk.py` (the load generator and the bodies it sends),
`loadtest/harness/servers.py` (starting and stopping servers), `loadtest/harness/measure.py` (a point),
`loadtest/harness/targets.py` (ratios and targets), `loadtest/harness/report.py` and `loadtest/harness/charts.py`.

Writes <out>/benchmark.md and, in <out>/benchmark/, results.json (every number), throughput.png,
latency.png, the servers' logs and wrk's body files; the soak's reports go to <out>/soak. Exit
status 1 when a point had an error (a non-2xx answer or a socket error) or the soak failed; the
targets are reported, PASS or FAIL, not enforced. `--service-checkout DIR` runs the service's
code from another checkout (before/after); the rest stays this checkout's.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import sys
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path

from loadtest.harness.charts import charts
from loadtest.harness.measure import (
    GeneratorWorkload,
    Point,
    PointSettings,
    compute_limit,
    measure_server,
)
from loadtest.harness.report import (
    Results,
    fmt_errors,
    label,
    machine,
    report,
    service_code,
    suspect_lines,
)
from loadtest.harness.servers import (
    NO_BATCHING,
    REPO,
    free_port,
    running,
    start_baseline,
    start_service,
)
from loadtest.harness.soak import soak
from loadtest.harness.targets import SERIES, ratios, targets, verdicts
from loadtest.harness.wrk import Workload, write_workloads

TWO_WORKERS = {"SERVICE_WORKERS": "2"}
PROTOCOL_C = 8  # the concurrency of the binary and gRPC points
QUICK = {"models": ["boston"], "concurrency": [1, 8], "duration": 1, "warmup": 0}

Plan = list[tuple[Workload | GeneratorWorkload, int]]


def plan(workloads: list[Workload], endpoints: tuple[str, ...], concurrency: list[int]) -> Plan:
    return [(w, c) for w in workloads if w.endpoint in endpoints for c in concurrency]


def metrics_status(url: str) -> int | str:
    try:
        with urllib.request.urlopen(f"{url}/metrics", timeout=30) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError as error:
        return f"no answer: {error}"


def measure_series(
    args: argparse.Namespace, workloads: list[Workload], folder: Path, settings: PointSettings
) -> tuple[list[Point], int | str | None]:
    """Every series' points, a server at a time; and the 2-worker service's /metrics status."""
    checkout = args.service_checkout or REPO
    grid = plan(workloads, ("typed", "v2"), args.concurrency)
    rows32 = plan(workloads, ("v2-32",), [c for c in args.concurrency if c >= 8])
    protocol_c = [PROTOCOL_C] if PROTOCOL_C in args.concurrency else []

    def service(series: str, extra: dict[str, str]):
        return start_service(folder / f"service-{series}.log", extra, checkout=checkout)

    with running(service("off", NO_BATCHING)) as server:
        points, answers = measure_server("off", SERIES["off"], server, grid + rows32, settings)
    binary = plan(workloads, ("binary",), protocol_c)

    def python_clients(grpc_port: int, url: str) -> Plan:
        """Boston over gRPC and REST V2 JSON by the asyncio generator, at the protocol points."""
        if "boston" not in args.models:
            return []
        return [(GeneratorWorkload("boston", endpoint, target), c)
                for endpoint, target in (("grpc", f"127.0.0.1:{grpc_port}"), ("v2-py", url))
                for c in protocol_c]  # fmt: skip

    grpc_port = free_port()
    with running(service("on", {"SERVICE_GRPC_PORT": str(grpc_port)})) as server:
        on_plan = grid + rows32 + binary + python_clients(grpc_port, server[1])
        points += measure_server("on", SERIES["on"], server, on_plan, settings)[0]
    workers_plan = plan([w for w in workloads if w.model == "boston"], ("v2",),
                        [c for c in args.concurrency if c >= 8])  # fmt: skip
    status = None
    if workers_plan:
        with running(service("workers2", TWO_WORKERS)) as server:
            points += measure_server("workers2", SERIES["workers2"], server, workers_plan,
                                     settings)[0]  # fmt: skip
            status = metrics_status(server[1])
    # The floor answers each path with the service's answer to its first body.
    answers_file = folder / "floor-answers.json"
    answers_file.write_text(json.dumps(answers, indent=1), "utf-8")
    # The floor also takes the binary bodies and, on a gRPC port of its own, the asyncio clients.
    grpc_port = free_port()
    floor = start_baseline("floor", ["--answers", str(answers_file), "--grpc-port", str(grpc_port)],
                           folder / "floor.log")  # fmt: skip
    with running(floor) as server:
        floor_plan = grid + rows32 + binary + python_clients(grpc_port, server[1])
        points += measure_server("floor", SERIES["floor"], server, floor_plan, settings)[0]
    baselines = [("plain_fastapi", ["--models", *args.models], grid)]
    if not args.no_naive:
        baselines.append(("naive_keras", ["--models", *args.models], plan(workloads, ("v2",),
                                                                          args.concurrency)))  # fmt: skip
    for module, options, baseline_plan in baselines:
        series = module.split("_")[0]
        with running(start_baseline(module, options, folder / f"{series}.log")) as server:
            points += measure_server(series, SERIES[series], server, baseline_plan, settings)[0]
    return points, status


def command_line(args: argparse.Namespace) -> str:
    """The command that regenerates the report, every option spelled out."""
    parts = ["python", "-m", "loadtest", "benchmark", "--duration", str(args.duration),
             "--warmup", str(args.warmup), "--concurrency", *map(str, args.concurrency),
             "--models", *args.models]  # fmt: skip
    if args.no_naive:
        parts.append("--no-naive")
    if args.no_soak:
        parts.append("--no-soak")
    else:
        parts += ["--soak-time", str(args.soak_time)]
    if args.generator_cpus:
        parts += ["--generator-cpus", args.generator_cpus]
    out = args.out.resolve()
    parts += ["--out", str(out.relative_to(REPO) if out.is_relative_to(REPO) else out)]
    if args.service_checkout:
        parts += ["--service-checkout", str(args.service_checkout)]
    return shlex.join(parts)


def argument_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=5, help="seconds per measured run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds of warm-up (0: none)")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--models", nargs="+", default=["boston", "imdb"],
                        choices=["boston", "imdb"])  # fmt: skip
    parser.add_argument("--no-naive", action="store_true", help="leave out the naive Keras server")
    parser.add_argument("--no-soak", action="store_true", help="leave out the soak")
    parser.add_argument("--soak-time", type=int, default=30, help="seconds of soak (default 30)")
    parser.add_argument("--generator-cpus", help="pin the load generator: taskset -c LIST")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a smoke run (the tests'): by default Boston only, c=1 and 8, 1 s points, no warm-up",
    )
    parser.add_argument("--out", type=Path, default=REPO / "reports", help="default: reports/")
    parser.add_argument(
        "--service-checkout",
        type=Path,
        help="run the service's code from another checkout, e.g. one made by `git worktree add "
        "/tmp/before <commit>`, for a before/after comparison (the models stay this checkout's)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser()
    if parser.parse_known_args(argv)[0].quick:
        parser.set_defaults(**QUICK)  # options given on the command line still win
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install wrk)")
    if args.duration < 1 or args.warmup < 0:
        raise SystemExit("wrk counts whole seconds: --duration 1 or more, --warmup 0 or more")
    started = time.monotonic()
    out = args.out.resolve()
    folder = out / "benchmark"
    folder.mkdir(parents=True, exist_ok=True)
    settings = PointSettings(args.duration, args.warmup, args.generator_cpus)
    workloads = write_workloads(args.models, folder / "bodies",
                                ("typed", "v2", "v2-32", "binary"))  # fmt: skip
    points, status = measure_series(args, workloads, folder, settings)
    limits = compute_limit(args.models, settings, folder)
    checkout = args.service_checkout or REPO
    soak_result = None if args.no_soak else soak(args.soak_time, out / "soak", checkout)
    results = Results(
        command=command_line(args),
        service_code=service_code(checkout),
        service_checkout=str(args.service_checkout) if args.service_checkout else None,
        date=datetime.now(UTC).isoformat(timespec="seconds"),
        wall_s=time.monotonic() - started,
        settings={k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        machine=machine(),
        generator_cpus=args.generator_cpus,
        points=points,
        compute_limit=limits,
        ratios=ratios(points, limits),
        targets=targets(points, status, soak_result and soak_result.passed,
                        "not run (--no-soak)" if soak_result is None else soak_result.summary()),
        soak=soak_result,
        metrics_status=status,
    )  # fmt: skip
    (folder / "results.json").write_text(json.dumps(results.to_json(), indent=1) + "\n", "utf-8")
    charts(results, folder)
    (out / "benchmark.md").write_text(report(results), "utf-8")
    print(f"report: {out / 'benchmark.md'}")
    for group, verdict in verdicts(results.targets).items():
        rows = [t for t in results.targets if t.group == group and t.counts]
        print(f"target ({group}) {verdict}: "
              + "; ".join(f"{t.requirement}: {t.measured}" for t in rows))  # fmt: skip
    for line in suspect_lines(points)[1:]:
        print(line.replace("**", ""), file=sys.stderr)
    failed = [p for p in points if p.error_count]
    for p in failed:
        print(f"errors: {label(p)}: {fmt_errors(p).replace('**', '')}", file=sys.stderr)
    soak_failed = soak_result is not None and not soak_result.passed
    if soak_failed:
        print(f"the soak failed; see {out / 'soak'}", file=sys.stderr)
    return 1 if failed or soak_failed else 0


if __name__ == "__main__":
    sys.exit(main())
