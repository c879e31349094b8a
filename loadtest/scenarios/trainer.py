"""Time and peak memory of the trainer's commands that run without TensorFlow.

    python -m loadtest trainer [--runs 3] [--data-dir ../shared/data] [--models models]
                                         [--against OTHER_CHECKOUT ...]

Each run starts the command in a fresh interpreter (`python -m trainer …`, as people run it) and
reads its wall time and peak resident memory (the child's ru_maxrss). `evaluate all` is measured
twice: cold (an empty reviews cache, as on a new machine: the raw IMDB reviews are read and
encoded) and warm (the cache that a first run filled). The caches are temporary folders of this
benchmark's own (`$TRAINER_CACHE_DIR`), so the user's cache is neither used nor changed.

`--against` measures other checkouts of the project (the code before a change, say) with the same
interpreter, round by round in turn with this one, so that what else loads the machine falls on
both alike. Targets (issue 14): `trainer evaluate all` under 3 s and 400 MiB, cold and warm; a
missing version reported at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TARGETS = {"evaluate all (cold)": (3.0, 400.0), "evaluate all (warm)": (3.0, 400.0)}


def measure(argv: list[str], checkout: Path, cache: str) -> tuple[float, float, int]:
    """(seconds, peak MiB, exit code) of one `python -m trainer ARGV` in a fresh process, run in
    `checkout` (whose `trainer` package it then imports) with `cache` as its reviews cache."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", *argv],
        cwd=checkout,
        env={**os.environ, "TRAINER_CACHE_DIR": cache},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    return seconds, usage.ru_maxrss / 1024, os.waitstatus_to_exitcode(status)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("--runs", type=int, default=3)
    options.add_argument("--data-dir", default=os.environ.get("TRAINER_DATA_DIR", "../shared/data"))
    options.add_argument("--models", default="models", help="relative to each checkout")
    options.add_argument("--against", type=Path, nargs="*", default=[], help="other checkouts")
    args = options.parse_args()
    source = ["--data-dir", str(Path(args.data_dir).resolve()), "--models", args.models]
    commands = {
        "evaluate all (cold)": ["evaluate", "all", *source],
        "evaluate all (warm)": ["evaluate", "all", *source],
        "evaluate boston --version 7 (missing)": ["evaluate", "boston", "--version", "7", *source],
    }
    checkouts = [REPO, *(path.resolve() for path in args.against)]
    runs: dict[tuple[Path, str], list[tuple[float, float, int]]] = {}
    with tempfile.TemporaryDirectory(prefix="trainer-benchmark-") as scratch:
        warm = {checkout: f"{scratch}/warm-{i}" for i, checkout in enumerate(checkouts)}
        for checkout in checkouts:  # fills each checkout's warm cache
            measure(commands["evaluate all (warm)"], checkout, warm[checkout])
        for round_ in range(args.runs):
            for checkout in checkouts:
                for name, argv in commands.items():
                    cold = f"{scratch}/cold-{round_}-{checkout.name}"
                    cache = cold if name.endswith("(cold)") else warm[checkout]
                    runs.setdefault((checkout, name), []).append(measure(argv, checkout, cache))
    failed = False
    for checkout in checkouts:
        print(f"{checkout}:")
        print(f"  {'command':<40} {'median s':>9} {'max s':>7} {'peak MiB':>9}  exit  target")
        for name in commands:
            seconds = [s for s, _, _ in runs[checkout, name]]
            peak = max(m for _, m, _ in runs[checkout, name])
            codes = sorted({c for _, _, c in runs[checkout, name]})
            target = TARGETS.get(name)
            verdict = ""
            if target:
                met = statistics.median(seconds) < target[0] and peak < target[1]
                failed |= checkout == REPO and not met
                verdict = (
                    f"< {target[0]:.0f} s, < {target[1]:.0f} MiB: {'met' if met else 'MISSED'}"
                )
            print(
                f"  {name:<40} {statistics.median(seconds):>9.2f} {max(seconds):>7.2f}"
                f" {peak:>9.0f}  {','.join(map(str, codes)):>4}  {verdict}"
            )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
