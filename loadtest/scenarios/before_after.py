"""Boston over REST V2 JSON and over gRPC, this checkout's service against another revision's, side
by side in one run: the ratio a change costs or gains, on a machine whose speed varies by the hour.

    python -m loadtest before_after BEFORE_CHECKOUT [--concurrency 8] [--duration 5]
                                    [--rounds 3] [--out reports/before_after]

Both services run at once (each its checkout's committed models: the same graphs; default settings, one worker each); each round
measures every (protocol, service) pair in turn with the asyncio load generator of
`loadtest/generator.py` (one-house requests back to back), the order of the services alternating
from round to round. The median round of each pair is kept. Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from loadtest.harness.generator import PROTOCOLS, run_generator
from loadtest.harness.measure import median_round
from loadtest.harness.report import machine, machine_lines, table
from loadtest.harness.servers import REPO, free_port, start_service, stop_server

SERVICES = ("before", "after")


def revision(checkout: Path) -> str:
    result = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True)  # fmt: skip
    return result.stdout.strip() or str(checkout)


def measure(targets: dict, args: argparse.Namespace) -> dict:
    results = {(p, s): [] for p in PROTOCOLS for s in SERVICES}
    for number in range(args.rounds):
        order = SERVICES if number % 2 == 0 else SERVICES[::-1]
        for protocol in PROTOCOLS:
            for service in order:
                run, client_cpu, _ = run_generator(
                    protocol, targets[service][protocol], args.concurrency, args.duration
                )
                point = {**asdict(run), "rps": run.rps, "client_cpu_s": client_cpu}
                results[(protocol, service)].append(point)
                print(f"round {number + 1} {protocol:4} {service:6} {run.rps:8.0f} req/s",
                      flush=True)  # fmt: skip
    return results


def report(results: dict, args: argparse.Namespace, revisions: dict, host: dict) -> list[str]:
    rows = []
    for protocol in PROTOCOLS:
        best = {s: median_round(results[(protocol, s)]) for s in SERVICES}
        for service in SERVICES:
            point = best[service]
            rows.append([protocol, f"{service} ({revisions[service]})", f"{point['rps']:.0f}",
                         f"{point['p50_ms']:.2f}", f"{point['p99_ms']:.2f}", point["errors"],
                         " / ".join(f"{r['rps']:.0f}" for r in results[(protocol, service)])])  # fmt: skip
        rows.append([protocol, "**after / before**",
                     f"**{best['after']['rps'] / best['before']['rps']:.2f} ×**", "", "", "", ""])  # fmt: skip
    return [
        "# Before and after: Boston over REST V2 JSON and gRPC",
        "",
        f"`python -m loadtest before_after {args.before} --concurrency {args.concurrency} "
        f"--duration {args.duration:g} --rounds {args.rounds}`, {datetime.now(UTC):%Y-%m-%d %H:%M} "
        f"UTC. {args.concurrency} concurrent clients; the median round of each pair.",
        "",
        *table(
            [
                "protocol",
                "service",
                "requests/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "each round, requests/s",
            ],
            rows,
        ),
        "",
        *machine_lines(host),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("before", type=Path, help="a checkout of the revision to compare with")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "before_after")
    args = parser.parse_args(argv)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    checkouts = {"before": args.before.resolve(), "after": REPO}
    servers, targets = {}, {}
    try:
        for service, checkout in checkouts.items():
            grpc_port = free_port()
            log = args.out.parent / f"before_after-{service}.log"
            settings = {"SERVICE_GRPC_PORT": str(grpc_port)}
            servers[service] = start_service(log, settings, checkout=checkout)
            targets[service] = {"rest": servers[service][1], "grpc": f"127.0.0.1:{grpc_port}"}
        host = machine()
        results = measure(targets, args)
    finally:
        for process, _ in servers.values():
            stop_server(process)
    revisions = {s: revision(c) for s, c in checkouts.items()}
    text = "\n".join(report(results, args, revisions, host)) + "\n"
    args.out.with_suffix(".md").write_text(text)
    record = {"revisions": revisions, "machine": host,
              "results": {f"{p}/{s}": runs for (p, s), runs in results.items()}}  # fmt: skip
    args.out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
