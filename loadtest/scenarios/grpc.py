"""Boston over gRPC against Boston over REST V2 JSON: requests per second at the same concurrency,
with the same kind of client, side by side from one service.

    python -m loadtest grpc [--concurrency 16] [--duration 10] [--rounds 3]
                                      [--out reports/grpc_benchmark]

It starts `python -m service` (the committed models or $LOADTEST_MODELS, default settings, HTTP and
gRPC on free loopback ports), then alternates the two protocols `--rounds` times. Each run is a load
generator in its own process, a Python asyncio loop with `--concurrency` clients each sending
one-house Boston requests back to back for `--duration` seconds: `grpc.aio` on one channel (raw
tensor contents, as tritonclient sends) against `aiohttp` on a keep-alive pool (a JSON body, as
tritonclient.http sends). Both send a request built once and decode every answer. The median round
of each protocol is kept. Writes <out>.md and <out>.json. The generator is
`loadtest/harness/generator.py`; the benchmark (`loadtest/scenarios/benchmark.py`) runs it for its
gRPC point.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from loadtest.harness.generator import PROTOCOLS, run_generator
from loadtest.harness.measure import median_round
from loadtest.harness.report import machine, machine_lines, table
from loadtest.harness.servers import REPO, free_port, start_service, stop_server


def report(results: dict, args: argparse.Namespace, host: dict) -> list[str]:
    rows = []
    for protocol in PROTOCOLS:
        runs = results[protocol]
        best = median_round(runs)
        client_ms = 1000 * best["client_cpu_s"] / max(best["requests"], 1)
        rows.append(
            [
                {"grpc": "gRPC (grpc.aio, raw contents)", "rest": "REST V2 JSON (aiohttp)"}[
                    protocol
                ],
                f"{best['rps']:.0f}",
                f"{best['p50_ms']:.2f}",
                f"{best['p99_ms']:.2f}",
                best["errors"],
                f"{client_ms:.3f}",
                " / ".join(f"{r['rps']:.0f}" for r in runs),
            ]
        )
    ratio = statistics.median(r["rps"] for r in results["grpc"]) / statistics.median(
        r["rps"] for r in results["rest"]
    )
    return [
        "# Boston over gRPC and over REST V2 JSON",
        "",
        f"`python -m loadtest grpc --concurrency {args.concurrency} --duration "
        f"{args.duration:g} --rounds {args.rounds}`, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC. One "
        "service (default settings, one worker), one-house Boston requests; each run a Python "
        f"asyncio load generator in its own process with {args.concurrency} concurrent clients, "
        "the protocols alternating; the median round of each is shown.",
        "",
        *table(
            [
                "protocol",
                "requests/s",
                "p50 ms",
                "p99 ms",
                "errors",
                "client CPU ms/request",
                "each round, requests/s",
            ],
            rows,
        ),
        "",
        f"gRPC / REST: **{ratio:.2f} ×** (target: ≥ 1). Server and load generator share the "
        "machine's CPUs, so a client that costs more CPU per request takes it from the server; "
        "the client column shows what each cost here. The machine's load average (1 min) "
        f"before the runs: {host['load_average_before']:.1f}.",
        "",
        *machine_lines(host),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "grpc_benchmark")
    args = parser.parse_args()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grpc_port = free_port()
    service, url = start_service(
        args.out.with_suffix(".service.log"),
        {"SERVICE_GRPC_PORT": str(grpc_port), "SERVICE_LOG_LEVEL": "warning"},
    )
    targets = {"grpc": f"127.0.0.1:{grpc_port}", "rest": url}
    load_before = os.getloadavg()[0]  # other work on the machine takes CPU from both protocols
    results: dict[str, list[dict]] = {p: [] for p in PROTOCOLS}
    try:
        for round_number in range(1, args.rounds + 1):
            for protocol in PROTOCOLS:
                run, client_cpu, _ = run_generator(
                    protocol, targets[protocol], args.concurrency, args.duration
                )
                result = {**asdict(run), "rps": run.rps, "errors": run.error_total,
                          "client_cpu_s": client_cpu}  # fmt: skip
                results[protocol].append(result)
                print(
                    f"round {round_number} {protocol:<4} {result['rps']:8.0f} requests/s  "
                    f"p50 {result['p50_ms']:6.2f} ms  p99 {result['p99_ms']:6.2f} ms  "
                    f"errors {result['errors']}",
                    flush=True,
                )
    finally:
        stop_server(service)
    host = machine() | {"load_average_before": load_before}
    lines = report(results, args, host)
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n", "utf-8")
    args.out.with_suffix(".json").write_text(
        json.dumps(
            {"settings": vars(args) | {"out": str(args.out)}, "machine": host, "results": results},
            indent=2,
        )
        + "\n",
        "utf-8",
    )
    print("\n".join(lines[4:10]))
    print(f"wrote {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
