"""What tracing costs: the service with tracing off, on (exporting every span over OTLP/HTTP to a
local receiver), and optionally the code of a commit before tracing, side by side.

    python -m loadtest tracing [--rounds 3] [--duration 10] [--warmup 2]
                                         [--concurrency 8] [--before REV] [--out reports/tracing]

wrk sends Boston V2 JSON requests (`loadtest/wrk.lua`, the real test samples) to each service in
turns, `--rounds` times; the median is kept of requests per second and of the server's CPU time per
request (its process's user + system time over the requests answered). `--before REV`: the
service/ folder of that commit (`git archive`), for "off costs nothing" against the code without
tracing. Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from functools import partial
from pathlib import Path

import psutil

from loadtest.harness.measure import PointSettings, measure_point
from loadtest.harness.otlp_receiver import OtlpReceiver
from loadtest.harness.report import machine_lines, provenance, table
from loadtest.harness.servers import REPO, start_service, stop_server
from loadtest.harness.wrk import run_wrk, write_workloads

MODEL = "boston"
# Large enough that no span is dropped at thousands of requests a second (the SDK's default queue
# holds 2048 spans), exported often: the whole cost of tracing every request.
TRACING_ON = {"OTEL_BSP_MAX_QUEUE_SIZE": "65536", "OTEL_BSP_SCHEDULE_DELAY": "500"}


def checkout_of(revision: str, folder: Path) -> Path:
    """service/ as it was at `revision`, with contract/ where that revision has one (what the
    service imported then) and models/ (their configs as it read them), in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = subprocess.run(["git", "-C", str(REPO), "ls-tree", "--name-only", revision],
                            capture_output=True, check=True, text=True).stdout.split()  # fmt: skip
    packages = [name for name in ("service", "contract", "models") if name in listed]
    archive = subprocess.run(["git", "-C", str(REPO), "archive", revision, *packages],
                             capture_output=True, check=True).stdout  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def measure(args, folder: Path, receiver: OtlpReceiver) -> dict[str, list[dict]]:
    (workload,) = [w for w in write_workloads([MODEL], folder) if w.endpoint == "v2"]
    services = {
        "off": ({}, REPO),
        "on": ({**TRACING_ON, "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint}, REPO),
    }
    if args.before:
        services[f"before ({args.before})"] = ({}, checkout_of(args.before, folder / "before"))
    runs: dict[str, list[dict]] = {name: [] for name in services}
    settings = PointSettings(args.duration, args.warmup)
    for _ in range(args.rounds):
        for name, (environment, checkout) in services.items():
            process, url = start_service(
                folder / "service.log", environment or None, checkout=checkout
            )
            try:
                point = measure_point(
                    psutil.Process(process.pid),
                    partial(run_wrk, url, workload, args.concurrency),
                    settings,
                    series=name,
                    model=MODEL,
                    endpoint="v2",
                    concurrency=args.concurrency,
                )
            finally:
                stop_server(process)  # exports the spans still buffered
            spans = len(receiver.spans())
            receiver.exports.clear()
            runs[name].append({**point.to_json(), "spans": spans})
    return runs


def summary(runs: list[dict]) -> dict:
    return {
        "rps": statistics.median(r["rps"] for r in runs),
        "runs_rps": [r["rps"] for r in runs],
        "server_cpu_ms": statistics.median(r["server_cpu_ms_per_request"] for r in runs),
        "runs_server_cpu_ms": [r["server_cpu_ms_per_request"] for r in runs],
        "p50_ms": statistics.median(r["run"]["p50_ms"] for r in runs),
        "p99_ms": statistics.median(r["run"]["p99_ms"] for r in runs),
        "others_pct": max(r["others_pct"] for r in runs),
        "errors": sum(r["error_count"] for r in runs),
        "requests": sum(r["run"]["requests"] for r in runs),
        "spans": sum(r["spans"] for r in runs),  # warm-ups' included
    }


def report(results: dict) -> str:
    lines = [
        "# Tracing off, on, and before tracing: Boston V2, side by side",
        "",
        f"Regenerate: `{results['command']}`  ",
        f"Measured {results['date']}; {results['code']}; wrk -t1 -c{results['concurrency']}, "
        f"{results['rounds']} runs of {results['duration']} s per service, median kept. "
        "Server CPU: the service process's user + system time per request.",
        "",
        *machine_lines(results["machine"]),
        "",
    ]
    rows = []
    for name, p in results["points"].items():
        rows.append([name, f"{p['rps']:,.0f}", " / ".join(f"{r:,.0f}" for r in p["runs_rps"]),
                     f"{p['server_cpu_ms']:.3f}",
                     " / ".join(f"{c:.3f}" for c in p["runs_server_cpu_ms"]),
                     f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}", f"{p['spans']:,}",
                     f"{p['others_pct']:.0f} %", p["errors"]])  # fmt: skip
    lines += table(["tracing", "rps", "each run", "server CPU ms/request", "each run", "p50 ms",
                    "p99 ms", "spans exported", "others' CPU (max)", "errors"], rows)  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=2, help="seconds before each run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--before", help="a commit whose service/ runs as a third service")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "tracing")
    args = parser.parse_args(argv)
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        del os.environ[name]  # "off" means no OTEL_* variable at all
    folder = args.out.parent / f"{args.out.name}-work"
    folder.mkdir(parents=True, exist_ok=True)
    with OtlpReceiver() as receiver:
        runs = measure(args, folder, receiver)
    results = {
        "points": {name: summary(r) for name, r in runs.items()},
        **provenance("tracing", argv),
        "rounds": args.rounds,
        "duration": args.duration,
        "concurrency": args.concurrency,
        "runs": runs,
    }
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2), "utf-8")
    text = report(results)
    args.out.with_suffix(".md").write_text(text, "utf-8")
    print(text)
    return 1 if any(p["errors"] for p in results["points"].values()) else 0


if __name__ == "__main__":
    sys.exit(main())
