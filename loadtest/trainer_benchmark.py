"""Time and peak memory of the trainer's commands that run without TensorFlow.

    python -m loadtest.trainer_benchmark [--runs 3] [--data-dir ../shared/data] [--models models]

Each run starts the command in a fresh interpreter (`python -m trainer …`, as people run it) and
reads its wall time and peak resident memory (the child's ru_maxrss). Targets (issue 14):
`trainer evaluate all` under 3 s and 400 MiB; a missing version reported at once.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGETS = {"evaluate all": (3.0, 400.0)}


def measure(argv: list[str]) -> tuple[float, float, int]:
    """(seconds, peak MiB, exit code) of one `python -m trainer ARGV` in a fresh process."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", *argv],
        cwd=REPO,
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
    options.add_argument("--models", default="models")
    args = options.parse_args()
    source = ["--data-dir", str(Path(args.data_dir).resolve()), "--models", args.models]
    commands = {
        "evaluate all": ["evaluate", "all", *source],
        "evaluate boston --version 7 (missing)": ["evaluate", "boston", "--version", "7", *source],
    }
    print(f"{'command':<40} {'median s':>9} {'max s':>7} {'peak MiB':>9}  exit  target")
    failed = False
    for name, argv in commands.items():
        runs = [measure(argv) for _ in range(args.runs)]
        seconds = [s for s, _, _ in runs]
        peak = max(m for _, m, _ in runs)
        codes = sorted({c for _, _, c in runs})
        target = TARGETS.get(name)
        verdict = ""
        if target:
            met = statistics.median(seconds) < target[0] and peak < target[1]
            failed |= not met
            verdict = f"< {target[0]:.0f} s, < {target[1]:.0f} MiB: {'met' if met else 'MISSED'}"
        print(
            f"{name:<40} {statistics.median(seconds):>9.2f} {max(seconds):>7.2f} {peak:>9.0f}"
            f"  {','.join(map(str, codes)):>4}  {verdict}"
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
