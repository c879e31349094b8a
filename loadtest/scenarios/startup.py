"""Cold start and memory of one service worker: spawn → /v2/health/ready, and its resident memory.

    python -m loadtest startup [--runs 5] [--models models] [--out reports/startup.md]

Each run starts `python -m service` on a free loopback port, times it until the readiness endpoint
answers 200, reads the process's resident memory (VmRSS, and VmHWM, its peak) once ready and again
after one request to each typed endpoint, then stops it with SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from loadtest.harness.servers import free_port, stop_server, wait_ready
from service.api.rest.typed import EXAMPLE_HOUSE

REQUESTS = {
    "/api/imdb": {"reviews": ["A wonderful film with superb acting."]},
    "/api/reuters": {"newswires": ["net profit rose to 12 mln dlrs or 85 cts a share"]},
    "/api/boston": {"houses": [EXAMPLE_HOUSE]},
}


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
        wait_ready(process, url, poll_s=0.01)  # polled often: the wait is what is measured
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
        stop_server(process)


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
        f"Command: `python -m loadtest startup --runs {args.runs}`; "
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
