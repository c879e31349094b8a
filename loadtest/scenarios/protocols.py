"""V2 JSON tensors against the binary tensor data extension, on one service, in one run.

    python -m loadtest protocols [--rounds 3] [--duration 10] [--concurrency 8]
                                           [--out reports/protocols]

For IMDB and Boston, the same rows (the real test samples of `loadtest/harness/payloads.py`) are sent by
wrk as V2 JSON (`loadtest/wrk.lua`) and as binary tensors with binary outputs
(`loadtest/wrk_binary.lua`), in turns, `--rounds` times each; the median is kept. Target: IMDB
binary ≥ 10 × its JSON requests per second. Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from loadtest.harness.report import machine_lines, provenance, table
from loadtest.harness.servers import REPO, start_service, stop_server
from loadtest.harness.wrk import median_of, warm_run, write_workloads

MODELS = ("imdb", "boston")
IMDB_BINARY_FACTOR = 10


def measure(args, folder: Path) -> dict:
    workloads = {(w.model, "json" if w.endpoint == "v2" else w.endpoint): w
                 for w in write_workloads(list(MODELS), folder, ("v2", "binary"))}  # fmt: skip
    process, url = start_service(folder / "service.log")
    runs: dict[str, dict[str, list]] = {n: {"json": [], "binary": []} for n in MODELS}
    try:
        for _ in range(args.rounds):
            for (name, kind), workload in workloads.items():
                runs[name][kind].append(warm_run(url, workload, args.concurrency, args.duration))
    finally:
        stop_server(process)
    return {
        name: {
            kind: {**median_of(results), "body_bytes": len(workloads[name, kind].first_body)}
            for kind, results in kinds.items()
        }
        for name, kinds in runs.items()
    }


def report(results: dict) -> str:
    points = results["points"]
    lines = [
        "# V2 JSON tensors and binary tensors, side by side",
        "",
        f"Regenerate: `{results['command']}`  ",
        f"Measured {results['date']}; {results['code']}; wrk -t1 -c{results['concurrency']}, "
        f"{results['rounds']} runs of {results['duration']} s per point, median kept.",
        "",
        *machine_lines(results["machine"]),
        "",
    ]
    rows_ = []
    for name, kinds in points.items():
        for kind, p in kinds.items():
            rows_.append([name, kind, f"{p['body_bytes']:,}", f"{p['rps']:,.0f}",
                          " / ".join(f"{r:,.0f}" for r in p["runs_rps"]),
                          f"{p['p50_ms']:.2f}", f"{p['p99_ms']:.2f}", p["errors"]])  # fmt: skip
    lines += table(["model", "tensors", "body bytes", "rps", "each run", "p50 ms", "p99 ms",
                    "errors"], rows_)  # fmt: skip
    imdb = points["imdb"]["binary"]["rps"] / points["imdb"]["json"]["rps"]
    boston = points["boston"]["binary"]["rps"] / points["boston"]["json"]["rps"]
    verdict = "PASS" if imdb >= IMDB_BINARY_FACTOR else "FAIL"
    lines += [
        "",
        f"Binary ÷ JSON: IMDB {imdb:.1f} × (target ≥ {IMDB_BINARY_FACTOR} ×: {verdict}), "
        f"Boston {boston:.2f} ×.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per run")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "protocols")
    args = parser.parse_args(argv)
    folder = args.out.parent / f"{args.out.name}-work"
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    results = {
        "points": measure(args, folder),
        **provenance("protocols", argv),
        "rounds": args.rounds,
        "duration": args.duration,
        "concurrency": args.concurrency,
    }
    results["wall_s"] = time.perf_counter() - started
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2), "utf-8")
    text = report(results)
    args.out.with_suffix(".md").write_text(text, "utf-8")
    print(text)
    errors = sum(k["errors"] for kinds in results["points"].values() for k in kinds.values())
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
