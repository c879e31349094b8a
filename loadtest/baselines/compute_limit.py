"""The compute limit of the benchmark: onnxruntime called in-process, no HTTP, one row per call.

    python -m loadtest.baselines.compute_limit --models boston imdb [--duration 10] [--warmup 2]

Each model's newest version is opened as the service opens it (`service.registry.Registry._open`:
`service.runtime.OnnxRuntime` with the service's session options, providers and threads from
`service.settings.Settings`), then called sequentially for `--duration` seconds over the benchmark's
rows, each as the service runs it (`runner`): "run" on the V2 rows (text pre-encoded), and for text
models "encode + run", the encoding of one raw text (its encoder's) plus the run, which bounds the
typed endpoint. Prints one JSON object per line. The benchmark runs it as a process of its own, so
CPU and memory are its own.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from functools import partial

import numpy as np
import psutil

from contract.config import ONNX_FILE, read_config
from contract.sparse import SparseRows
from loadtest.harness.payloads import (
    MODELS,
    SAMPLES,
    Row,
    is_sparse,
    is_text_model,
    model_config,
    rows,
    text_rows,
)
from service.runtime import OnnxRuntime
from service.settings import Settings


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of the process
    return usage.ru_utime + usage.ru_stime


def time_calls(call: Callable[[int], object], count: int, duration: float) -> dict:
    """Calls `call(i)` for i = 0, 1, 2, … (cycling over `count` inputs) until `duration` seconds
    have passed; throughput, latency and CPU of those calls."""
    latencies = []
    cpu_before, started = cpu_seconds(), time.perf_counter()
    while (now := time.perf_counter()) - started < duration:
        call(len(latencies) % count)
        latencies.append(time.perf_counter() - now)
    elapsed, cpu = time.perf_counter() - started, cpu_seconds() - cpu_before
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "calls": len(latencies),
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": quantiles[49] * 1000,
        "p99_ms": quantiles[98] * 1000,
        "cpu_s_per_1k": cpu / len(latencies) * 1000,
        "cpu_cores": cpu / elapsed,
    }


def runner(runtime: OnnxRuntime, name: str, batch: Sequence[Row]) -> Callable[[], np.ndarray]:
    """A run of the newest version on a batch of rows as the service's batcher runs it: dense rows
    as one array; a sparse version's entries, padded to the longest row (`run_sparse`)."""
    if is_sparse(name):
        return partial(runtime.run_sparse, SparseRows.concatenate(batch))
    return partial(runtime.run, np.asarray(batch, runtime.dtype))


def measure(name: str, duration: float, warmup: float) -> list[dict]:
    settings = Settings()
    folder = MODELS / name / str(model_config(name)["version"])
    runtime = OnnxRuntime(
        folder / ONNX_FILE,
        settings.providers,
        settings.intra_op_threads,
        settings.require_providers,
    ).bind(read_config(folder))
    runs = [runner(runtime, name, [row]) for row in rows(name)]
    kinds = {"run": (lambda i: runs[i](), len(runs))}
    if is_text_model(name):
        texts = [s["text"] for s in SAMPLES[name]]
        kinds["encode + run"] = (
            lambda i: runner(runtime, name, text_rows(name, [texts[i]]))(),
            len(texts),
        )
    results = []
    for kind, (call, count) in kinds.items():
        if warmup > 0:
            time_calls(call, count, warmup)
        result = time_calls(call, count, duration)
        rss_mib = psutil.Process().memory_info().rss / 2**20
        results.append({"model": name, "kind": kind, **result, "rss_mib": rss_mib,
                        "threads": settings.intra_op_threads})  # fmt: skip
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", required=True)
    parser.add_argument("--duration", type=float, default=10, help="seconds per measure")
    parser.add_argument("--warmup", type=float, default=2, help="seconds of calls first, discarded")
    args = parser.parse_args()
    for name in args.models:
        for result in measure(name, args.duration, args.warmup):
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
