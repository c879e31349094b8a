"""Runs the locust scenarios headless in one command, and fails when any request failed.

    python -m loadtest locust --start-service [--users 13] [--spawn-rate 13] [--run-time 30s]
    python -m loadtest locust --host http://127.0.0.1:8000 --classes TypedImdb V2Boston

With `--start-service` it starts `python -m service` (the committed models, or $LOADTEST_MODELS: the
repository the bodies are built for) on a free loopback port, waits until it is ready, and stops it
with SIGTERM afterwards. Locust runs in its own process (`python -m locust -f loadtest/locustfile.py
--headless ...`); its CSV files (`locust_stats.csv`, `locust_failures.csv`, ...), HTML report
(`locust.html`) and, with `--start-service`, the service's log go to `--reports`, with
`summary.json`, the final stats per request name (the CSV files are locust's periodic snapshot, up
to a second old). No class names: all classes, the mixed scenario. Exit status: locust's (1 when any
request failed), or 1 when the stats show a failure or no request at all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

from loadtest.harness.servers import REPO, start_service, stop_server, with_repo_on_path

LOCUSTFILE = Path(__file__).parents[1] / "locustfile.py"


def summary(stats: list[dict]) -> str:
    lines = [f"{'name':<24} {'requests':>8} {'failures':>8} {'rps':>7} {'p50 ms':>7} {'p95 ms':>7}"]
    for row in stats:
        lines.append(
            f"{row['name']:<24} {row['requests']:>8} {row['failures']:>8} {row['rps']:>7.1f} "
            f"{row['p50_ms']:>7.0f} {row['p95_ms']:>7.0f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--host", help="the service's base URL, e.g. http://127.0.0.1:8000")
    where.add_argument(
        "--start-service", action="store_true", help="start `python -m service` on loopback"
    )
    parser.add_argument("--users", type=int, default=13, help="users (default 13)")
    parser.add_argument("--spawn-rate", type=float, default=13, help="users started per second")
    parser.add_argument("--run-time", default="30s", help="e.g. 30s, 2m (default 30s)")
    parser.add_argument("--classes", nargs="*", default=[], help="user classes (default: all)")
    parser.add_argument("--reports", type=Path, default=REPO / "reports" / "loadtest")
    args = parser.parse_args(argv)

    reports = args.reports.resolve()
    reports.mkdir(parents=True, exist_ok=True)
    prefix = reports / "locust"
    service = None
    if args.start_service:
        service, host = start_service(reports / "service.log", {"SERVICE_LOG_LEVEL": "warning"})
        print(f"service ready at {host}", flush=True)
    else:
        host = args.host
    command = [
        sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless",
        "--host", host, "--users", str(args.users), "--spawn-rate", str(args.spawn_rate),
        "--run-time", args.run_time, "--stop-timeout", "5",
        "--csv", str(prefix), "--html", str(reports / "locust.html"),
        "--only-summary", "--exit-code-on-error", "1", "--loglevel", "WARNING",
        *args.classes,
    ]  # fmt: skip
    summary_path = reports / "summary.json"
    summary_path.unlink(missing_ok=True)
    env = with_repo_on_path({**os.environ, "LOADTEST_SUMMARY": str(summary_path)})
    try:
        code = subprocess.run(command, cwd=REPO, env=env).returncode
    finally:
        if service is not None:
            service_code = stop_server(service)
            if service_code != 0:
                print(f"the service exited with {service_code} after SIGTERM", file=sys.stderr)
    if not summary_path.exists():
        print(f"locust wrote no {summary_path.name} (exit {code})", file=sys.stderr)
        return code or 1
    stats = json.loads(summary_path.read_text("utf-8"))
    print(summary(stats))
    print(f"reports: {reports}")
    total = next((r for r in stats if r["name"] == "Aggregated"), None)
    if total is None or total["requests"] == 0:
        print("no request was made", file=sys.stderr)
        return code or 1
    if total["failures"] > 0:
        print(f"{total['failures']} requests failed", file=sys.stderr)
        return code or 1
    return code


if __name__ == "__main__":
    sys.exit(main())
