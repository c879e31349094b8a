"""onnxruntime's intra-op threads for the service's models: wall and CPU time of one run per batch
size, with one thread against more, in one process, side by side.

    python -m loadtest threads [--threads 1 2] [--batches 1 8 64] [--duration 2]
                                         [--rounds 2] [--out reports/threads]

Each model's newest version is opened as the service opens it (`service.runtime.OnnxRuntime`:
the service's session options, no spinning), once per thread count, and run for `--duration`
seconds per batch size on the benchmark's rows (as the service runs them: a sparse version's
entries padded per batch, `loadtest.baselines.compute_limit.runner`), the thread counts taking
turns for `--rounds` rounds; the median round is kept. Writes <out>.md and <out>.json. This is
the measurement behind the default of `SERVICE_INTRA_OP_THREADS` (1).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contract.config import ONNX_FILE, read_config
from loadtest.baselines.compute_limit import runner, time_calls
from loadtest.harness.measure import median_round
from loadtest.harness.payloads import MODELS, Row, model_config, rows
from loadtest.harness.report import machine_lines, provenance, table
from service.runtime import OnnxRuntime
from service.settings import Settings


def batches(name: str, sizes: list[int]) -> dict[int, list[Row]]:
    """A batch of each size from the benchmark's rows, repeated as needed."""
    samples = rows(name)
    return {size: [samples[i % len(samples)] for i in range(size)] for size in sizes}


def measure(args: argparse.Namespace) -> list[dict]:
    settings = Settings(_env_file=None)
    results = []
    for name in ("boston", "imdb", "reuters"):
        version = model_config(name)["version"]
        folder = MODELS / name / str(version)
        config = read_config(folder)
        runtimes = {
            threads: OnnxRuntime(folder / ONNX_FILE, settings.providers, threads).bind(config)
            for threads in args.threads
        }
        for size, batch in batches(name, args.batches).items():
            rounds: dict[int, list[dict]] = {threads: [] for threads in args.threads}
            for _ in range(args.rounds):
                for threads, runtime in runtimes.items():
                    run = runner(runtime, name, batch)

                    def call(i: int, run=run) -> None:
                        run()

                    time_calls(call, 1, args.duration / 4)  # warm-up, discarded
                    rounds[threads].append(time_calls(call, 1, args.duration))
            for threads, runs in rounds.items():
                kept = median_round(runs)
                result = {"model": f"{name}/{version}", "batch": size, "threads": threads,
                          "wall_us": 1e6 / kept["rps"], "cpu_us": kept["cpu_s_per_1k"] * 1000}  # fmt: skip
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def report(results: list[dict], info: dict, args: argparse.Namespace) -> list[str]:
    one = {(r["model"], r["batch"]): r for r in results if r["threads"] == args.threads[0]}
    rows_ = []
    for r in results:
        base = one[r["model"], r["batch"]]
        rows_.append([r["model"], r["batch"], r["threads"], f"{r['wall_us']:.0f}",
                      f"{r['cpu_us']:.0f}", f"{r['wall_us'] / base['wall_us']:.2f}",
                      f"{r['cpu_us'] / base['cpu_us']:.2f}"])  # fmt: skip
    return [
        "# onnxruntime intra-op threads",
        "",
        f"`{info['command']}`, {info['date']}, service code: {info['code']}. Each model's newest "
        "version as the service opens it (no spinning); one run after another on the same batch "
        f"for {args.duration:g} s, the thread counts in turns, the median of {args.rounds} "
        "rounds. Wall and CPU (all threads) per run, and each over the same batch's with "
        f"{args.threads[0]} thread.",
        "",
        *table(
            ["model", "batch", "threads", "wall µs", "CPU µs", "wall ÷ 1 thread", "CPU ÷ 1 thread"],
            rows_,
        ),
        "",
        *machine_lines(info["machine"]),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--duration", type=float, default=2, help="seconds per run")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("reports/threads"))
    args = parser.parse_args()
    info = provenance("threads", None)
    results = measure(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps({**info, "results": results}, indent=1))
    args.out.with_suffix(".md").write_text("\n".join(report(results, info, args)), "utf-8")
    print(f"wrote {args.out}.md")


if __name__ == "__main__":
    main()
