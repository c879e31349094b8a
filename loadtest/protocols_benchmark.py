"""V2 JSON tensors against the binary tensor data extension, on one service, in one run.

    python loadtest/protocols_benchmark.py [--rounds 3] [--duration 10] [--concurrency 8]
                                           [--out reports/protocols]

For IMDB and Boston, the same rows (the real test samples of `loadtest/payloads.py`) are sent by
wrk as V2 JSON (`loadtest/wrk.lua`) and as binary tensors with binary outputs
(`loadtest/wrk_binary.lua`), in turns, `--rounds` times each; the median is kept. Target: IMDB
binary ≥ 10 × its JSON requests per second. Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtest.benchmark import (  # noqa: E402
    machine,
    machine_lines,
    run_wrk,
    service_code,
    summarize_wrk,
    table,
    write_workloads,
)
from loadtest.payloads import model_config, rows, v2_path  # noqa: E402
from loadtest.run import start_service, stop_server  # noqa: E402

WRK_BINARY = REPO / "loadtest" / "wrk_binary.lua"
MODELS = ("imdb", "boston")
IMDB_BINARY_FACTOR = 10


def binary_bodies(name: str, folder: Path) -> list[Path]:
    """One file per sample row: the JSON header, then the row's float32 bytes; the header's
    length ends the file name, where wrk_binary.lua reads it."""
    config = model_config(name)
    files = []
    for i, row in enumerate(rows(name)):
        raw = np.asarray([row], np.float32).tobytes()
        spec = config["inputs"][0]
        header = json.dumps({
            "inputs": [{"name": spec["name"], "shape": [1, len(row)], "datatype": "FP32",
                        "parameters": {"binary_data_size": len(raw)}}],
            "parameters": {"binary_data_output": True},
        }).encode()  # fmt: skip
        path = folder / f"{name}-{i}-{len(header)}.bin"
        path.write_bytes(header + raw)
        files.append(path)
    return files


def measure(args, folder: Path) -> dict:
    workloads = {w.model: w for w in write_workloads(list(MODELS), folder) if w.endpoint == "v2"}
    files = {name: binary_bodies(name, folder) for name in MODELS}
    process, url = start_service(folder / "service.log")
    runs: dict[str, dict[str, list[dict]]] = {n: {"json": [], "binary": []} for n in MODELS}
    try:
        for _ in range(args.rounds):
            for name in MODELS:
                path, c, d = v2_path(name), args.concurrency, args.duration
                run_wrk(url, workloads[name].bodies, c, 2)  # warm-up
                runs[name]["json"].append(
                    summarize_wrk(run_wrk(url, workloads[name].bodies, c, d)[0])
                )
                binary = [path, *map(str, files[name])]
                run_wrk(url, binary, c, 2, WRK_BINARY)
                runs[name]["binary"].append(
                    summarize_wrk(run_wrk(url, binary, c, d, WRK_BINARY)[0])
                )
    finally:
        stop_server(process)
    return {
        name: {
            kind: {
                "rps": statistics.median(r["rps"] for r in results),
                "runs_rps": [r["rps"] for r in results],
                "p50_ms": statistics.median(r["p50_ms"] for r in results),
                "p99_ms": statistics.median(r["p99_ms"] for r in results),
                "errors": sum(r["error_total"] for r in results),
                "body_bytes": (
                    files[name][0].stat().st_size
                    if kind == "binary"
                    else len(workloads[name].first_body)
                ),
            }
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
        "command": shlex.join(
            [
                "python",
                "loadtest/protocols_benchmark.py",
                *(argv if argv is not None else sys.argv[1:]),
            ]
        ),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "code": service_code(REPO),
        "machine": machine(),
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
