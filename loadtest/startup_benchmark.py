"""Cold start and memory of one service worker: spawn → /v2/health/ready, and its resident memory.

    python loadtest/startup_benchmark.py [--runs 5] [--models models] [--out reports/startup.md]

Each run starts `python -m service` on a free loopback port, times it until the readiness endpoint
answers 200, reads the process's resident memory (VmRSS, and VmHWM, its peak) once ready and again
after one request to each typed endpoint, then stops it with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REQUESTS = {
    "/api/imdb": {"reviews": ["A wonderful film with superb acting."]},
    "/api/reuters": {"newswires": ["net profit rose to 12 mln dlrs or 85 cts a share"]},
    "/api/boston": {"houses": [{"crim": 0.00632, "zn": 18.0, "indus": 2.31, "chas": 0.0,
                                "nox": 0.538, "rm": 6.575, "age": 65.2, "dis": 4.09, "rad": 1.0,
                                "tax": 296.0, "ptratio": 15.3, "b": 396.9, "lstat": 4.98}]},
}  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def memory_mib(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024
    return fields


def one_run(models: Path) -> dict:
    port = free_port()
    env = dict(os.environ, SERVICE_PORT=str(port), SERVICE_HOST="127.0.0.1",
               SERVICE_GRPC_PORT=str(free_port()), SERVICE_MODEL_REPOSITORY=str(models),
               SERVICE_LOG_LEVEL="warning")  # fmt: skip
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "service"], env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the service exited with {process.returncode} before ready")
            try:
                with urllib.request.urlopen(f"{url}/v2/health/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.01)
        ready_s = time.perf_counter() - started
        at_ready = memory_mib(process.pid)
        for path, body in REQUESTS.items():
            request = urllib.request.Request(
                url + path, json.dumps(body).encode(), {"content-type": "application/json"}
            )
            with urllib.request.urlopen(request, timeout=10) as answer:
                assert answer.status == 200, path
        after = memory_mib(process.pid)
        return {"ready_s": ready_s, "rss_ready_mib": at_ready["VmRSS"],
                "rss_served_mib": after["VmRSS"], "peak_mib": after["VmHWM"]}  # fmt: skip
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--models", type=Path, default=Path("models"))
    parser.add_argument("--out", type=Path, default=Path("reports/startup.md"))
    args = parser.parse_args()
    runs = [one_run(args.models) for _ in range(args.runs)]
    keys = ("ready_s", "rss_ready_mib", "rss_served_mib", "peak_mib")
    lines = [
        "# Service cold start and memory",
        "",
        f"Command: `python loadtest/startup_benchmark.py --runs {args.runs}`; "
        f"machine: {platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
        f"Python {platform.python_version()}; models: every version in `{args.models}`.",
        "",
        "| measure | median | min | max | target |",
        "|---|---|---|---|---|",
    ]
    targets = {"ready_s": "< 1.5 s", "rss_served_mib": "< 150 MiB"}
    for key in keys:
        values = [r[key] for r in runs]
        lines.append(f"| {key} | {statistics.median(values):.2f} | {min(values):.2f} | "
                     f"{max(values):.2f} | {targets.get(key, '')} |")  # fmt: skip
    lines.append("")
    report = "\n".join(lines)
    print(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
