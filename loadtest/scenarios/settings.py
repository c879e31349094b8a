"""Two settings of the service side by side: the same wrk load on each, in turns, in one run.

    python -m loadtest settings --a 'SERVICE_DEFAULT_BATCHING={"inline_below_ms": 0.2}'
        [--b NAME=VALUE ...] [--points boston:v2:8 boston:v2-32:8 ...] [--rounds 3]
        [--duration 5] [--out reports/settings]

Two services run at once on the committed models (or $LOADTEST_MODELS), A with the settings of `--a`
and B with those of `--b` (none: the defaults); only one is under load at a time. For each point
(model, endpoint, concurrency; endpoints as `loadtest/harness/wrk.py` names them) wrk drives A, then
B, `--rounds` times, each run after a warm-up, on an idle server
(`loadtest.harness.measure.measure_point`); the median round is kept, with each server's CPU per
request. This is how a default is chosen: B over A, measured side by side on the same machine.
Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from functools import partial
from pathlib import Path

import psutil

from loadtest.harness.measure import PointSettings, measure_point, median_round
from loadtest.harness.report import machine_lines, provenance, table
from loadtest.harness.servers import REPO, running, start_service
from loadtest.harness.wrk import run_wrk, write_workloads

DEFAULT_POINTS = ("boston:v2:1", "boston:v2:8", "boston:v2:64", "boston:v2-32:8", "imdb:typed:64")


def setting(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name.startswith("SERVICE_"):
        raise argparse.ArgumentTypeError(f"expected SERVICE_NAME=VALUE, got {text!r}")
    return name, value


def point(text: str) -> tuple[str, str, int]:
    model, endpoint, concurrency = text.split(":")
    return model, endpoint, int(concurrency)


def measure(args: argparse.Namespace, folder: Path) -> list[dict]:
    points = [point(p) for p in args.points]
    endpoints = tuple(dict.fromkeys(endpoint for _, endpoint, _ in points))
    models = list(dict.fromkeys(model for model, _, _ in points))
    workloads = {(w.model, w.endpoint): w for w in write_workloads(models, folder, endpoints)}
    timing = PointSettings(duration=args.duration, warmup=args.warmup)
    results = []
    with (
        running(start_service(folder / "a.log", dict(args.a))) as a,
        running(start_service(folder / "b.log", dict(args.b))) as b,
    ):
        servers = {"a": (a[1], psutil.Process(a[0].pid)), "b": (b[1], psutil.Process(b[0].pid))}
        for model, endpoint, concurrency in points:
            workload = workloads[model, endpoint]
            runs: dict[str, list[dict]] = {"a": [], "b": []}
            for _ in range(args.rounds):
                for name, (url, process) in servers.items():
                    taken = measure_point(process, partial(run_wrk, url, workload, concurrency),
                                          timing, series=name, model=model, endpoint=endpoint,
                                          concurrency=concurrency)  # fmt: skip
                    runs[name].append({"rps": taken.rps, "p50_ms": taken.p50_ms,
                                       "p99_ms": taken.p99_ms,
                                       "cpu_ms": taken.server_cpu_ms_per_request or 0.0,
                                       "errors": taken.error_count})  # fmt: skip
            result = {"model": model, "endpoint": endpoint, "concurrency": concurrency}
            for name, measured in runs.items():
                kept = median_round(measured)
                result[name] = {**kept, "runs_rps": [r["rps"] for r in measured],
                                "errors": sum(r["errors"] for r in measured)}  # fmt: skip
            results.append(result)
            print(json.dumps(result), flush=True)
    return results


def spelled(settings: list[tuple[str, str]]) -> str:
    return ", ".join(f"`{name}={value}`" for name, value in settings) or "the defaults"


def report(results: list[dict], info: dict, args: argparse.Namespace) -> list[str]:
    rows = []
    for r in results:
        a, b = r["a"], r["b"]
        rows.append([f"{r['model']} {r['endpoint']}", r["concurrency"],
                     " / ".join(f"{v:,.0f}" for v in a["runs_rps"]),
                     " / ".join(f"{v:,.0f}" for v in b["runs_rps"]),
                     f"{b['rps'] / a['rps']:.2f}", f"{a['cpu_ms']:.3f}", f"{b['cpu_ms']:.3f}",
                     f"{a['p99_ms']:.2f} / {b['p99_ms']:.2f}", a["errors"] + b["errors"]])  # fmt: skip
    return [
        "# Two settings of the service, side by side",
        "",
        f"`{info['command']}`, {info['date']}, service code: {info['code']}. A: "
        f"{spelled(args.a)}; B: {spelled(args.b)}. Both services run at once, one under load "
        f"at a time; wrk -t1, A then B, {args.rounds} rounds of {args.duration} s after "
        f"{args.warmup} s of warm-up each; the median round is kept.",
        "",
        *table(
            [
                "point",
                "c",
                "A requests/s (each round)",
                "B requests/s (each round)",
                "B ÷ A (medians)",
                "A CPU ms/request",
                "B CPU ms/request",
                "p99 ms A / B",
                "errors",
            ],
            rows,
        ),
        "",
        f"Median of B ÷ A over the points: "
        f"{statistics.median(r['b']['rps'] / r['a']['rps'] for r in results):.2f}.",
        "",
        *machine_lines(info["machine"]),
        "",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--a", type=setting, nargs="*", default=[], help="A's SERVICE_* settings")
    parser.add_argument("--b", type=setting, nargs="*", default=[], help="B's (default: none)")
    parser.add_argument("--points", nargs="+", default=list(DEFAULT_POINTS),
                        help="model:endpoint:concurrency")  # fmt: skip
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per run")
    parser.add_argument("--warmup", type=int, default=1, help="seconds before each run")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "settings")
    args = parser.parse_args(argv)
    folder = args.out.parent / f"{args.out.name}-work"
    info = provenance("settings", argv)
    results = measure(args, folder)
    args.out.with_suffix(".json").write_text(json.dumps({**info, "results": results}, indent=1))
    text = "\n".join(report(results, info, args))
    args.out.with_suffix(".md").write_text(text, "utf-8")
    print(text)
    return 1 if any(r["a"]["errors"] + r["b"]["errors"] for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
