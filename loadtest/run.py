"""Runs the locust scenarios headless in one command, and fails when any request failed.

    python loadtest/run.py --start-service [--users 13] [--spawn-rate 13] [--run-time 30s]
    python loadtest/run.py --host http://127.0.0.1:8000 --classes TypedImdb V2Boston

With `--start-service` it starts `python -m service` (the committed models) on a free loopback
port, waits until it is ready, and stops it with SIGTERM afterwards. Locust runs in its own process
(`python -m locust -f loadtest/locustfile.py --headless ...`); its CSV files (`locust_stats.csv`,
`locust_failures.csv`, ...), HTML report (`locust.html`) and, with `--start-service`, the service's
log go to `--reports`, with `summary.json`, the final stats per request name (the CSV files are
locust's periodic snapshot, up to a second old). No class names: all classes, the mixed scenario. Exit status: locust's
(1 when any request failed), or 1 when the stats show a failure or no request at all.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtest.servers import ServerNotReadyError, free_port, stop_server, wait_ready  # noqa: E402

LOCUSTFILE = Path(__file__).with_name("locustfile.py")


def with_repo_on_path(env: dict[str, str], checkout: Path = REPO) -> dict[str, str]:
    """`env` with a checkout (this one) first on PYTHONPATH, so `service` and `loadtest` import
    from it."""
    path = os.pathsep.join(filter(None, [str(checkout), env.get("PYTHONPATH")]))
    return {**env, "PYTHONPATH": path}


def service_environment(
    settings: dict[str, str] | None = None, checkout: Path = REPO
) -> dict[str, str]:
    """This process's environment without its SERVICE_* variables, plus `settings`: the service's
    defaults but for what is named."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERVICE_")}
    return with_repo_on_path({**env, **(settings or {})}, checkout)


def start_server(
    command: list[str], env: dict[str, str], port: int, log_path: Path, timeout: float = 60
) -> tuple[subprocess.Popen, str]:
    """Starts a server listening on loopback `port`, in the log's folder (so no stray .env file is
    read), and waits until its `/v2/health/ready` answers 200."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=log_path.parent, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(process, url, timeout)
    except ServerNotReadyError as error:
        stop_server(process)
        raise SystemExit(f"`{shlex.join(command)}` {error}; see {log_path}") from None
    return process, url


def start_service(
    log_path: Path,
    settings: dict[str, str] | None = None,
    timeout: float = 60,
    checkout: Path = REPO,
) -> tuple[subprocess.Popen, str]:
    """`python -m service` on the committed models and a free loopback port (gRPC on another),
    with its default settings but for `settings` (SERVICE_* variables); its code from `checkout`
    (another revision, for a before/after comparison), the models always this checkout's."""
    port = free_port()
    env = service_environment(
        {
            "SERVICE_GRPC_PORT": str(free_port()),
            **(settings or {}),
            "SERVICE_HOST": "127.0.0.1",
            "SERVICE_PORT": str(port),
            "SERVICE_MODEL_REPOSITORY": str(REPO / "models"),
        },
        checkout,
    )
    return start_server([sys.executable, "-m", "service"], env, port, log_path, timeout)


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
