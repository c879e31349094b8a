"""Boston over gRPC against Boston over REST V2 JSON: requests per second at the same concurrency,
with the same kind of client, side by side from one service.

    python loadtest/grpc_benchmark.py [--concurrency 16] [--duration 10] [--rounds 3]
                                      [--out reports/grpc_benchmark]

It starts `python -m service` (the committed models, default settings, HTTP and gRPC on free
loopback ports), then alternates the two protocols `--rounds` times. Each run is a load generator
in its own process, a Python asyncio loop with `--concurrency` clients each sending one-house
Boston requests back to back for `--duration` seconds: `grpc.aio` on one channel (raw tensor
contents, as tritonclient sends) against `aiohttp` on a keep-alive pool (a JSON body, as
tritonclient.http sends). Both send a request built once and decode every answer. The median
round of each protocol is kept. Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtest.benchmark import machine, machine_lines, table  # noqa: E402
from loadtest.run import free_port, start_service, stop_server  # noqa: E402

PROTOCOLS = ("grpc", "rest")
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def boston_row() -> list[float]:
    from service.api.typed import EXAMPLE_HOUSE
    from service.repository import read_config

    newest = max(int(p.name) for p in (REPO / "models" / "boston").iterdir() if p.name.isdigit())
    features = read_config(REPO / "models" / "boston" / str(newest)).encoding.features
    return [float(EXAMPLE_HOUSE[f.name]) for f in features]


async def drive(send, concurrency: int, duration: float) -> dict:
    """`concurrency` clients calling `send()` back to back for `duration` seconds."""
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + duration

    async def client() -> None:
        nonlocal errors
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            try:
                await send()
            except Exception:
                errors += 1
                continue
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "seconds": elapsed,
        "rps": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2],
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)],
    }


async def grpc_load(target: str, concurrency: int, duration: float) -> dict:
    import grpc
    import numpy as np

    from service.api.grpc_v2 import messages

    request = messages.ModelInferRequest(model_name="boston")
    request.inputs.add(name="features", datatype="FP32", shape=[1, 13])
    request.raw_input_contents.append(np.array([boston_row()], "<f4").tobytes())
    body = request.SerializeToString()
    async with grpc.aio.insecure_channel(target) as channel:
        infer = channel.unary_unary(
            INFER_METHOD,
            request_serializer=lambda raw: raw,
            response_deserializer=messages.ModelInferResponse.FromString,
        )

        async def send() -> None:
            answer = await infer(body)
            np.frombuffer(answer.raw_output_contents[0], "<f4")

        return await drive(send, concurrency, duration)


async def rest_load(target: str, concurrency: int, duration: float) -> dict:
    import aiohttp

    body = json.dumps(
        {
            "inputs": [
                {"name": "features", "shape": [1, 13], "datatype": "FP32", "data": boston_row()}
            ]
        }
    ).encode()
    url = f"{target}/v2/models/boston/infer"
    headers = {"content-type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def send() -> None:
            async with session.post(url, data=body, headers=headers) as response:
                if response.status != 200:
                    raise RuntimeError(response.status)
                json.loads(await response.read())

        return await drive(send, concurrency, duration)


def generate(protocol: str, target: str, concurrency: int, duration: float) -> None:
    """The load generator's process: one run, printed as JSON with its own CPU time."""
    load = grpc_load if protocol == "grpc" else rest_load
    result = asyncio.run(load(target, concurrency, duration))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["client_cpu_s"] = usage.ru_utime + usage.ru_stime
    print(json.dumps(result))


def run_generator(protocol: str, target: str, concurrency: int, duration: float) -> dict:
    command = [
        sys.executable,
        __file__,
        "--generate",
        protocol,
        "--target",
        target,
        "--concurrency",
        str(concurrency),
        "--duration",
        str(duration),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120)
    if result.returncode != 0:
        raise SystemExit(f"the {protocol} load generator failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def report(results: dict, args: argparse.Namespace, host: dict) -> list[str]:
    rows = []
    for protocol in PROTOCOLS:
        runs = results[protocol]
        best = sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]  # the median round
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
        f"`python loadtest/grpc_benchmark.py --concurrency {args.concurrency} --duration "
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
    parser.add_argument("--generate", choices=PROTOCOLS, help=argparse.SUPPRESS)
    parser.add_argument("--target", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate(args.generate, args.target, args.concurrency, args.duration)
        return
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
                result = run_generator(protocol, targets[protocol], args.concurrency, args.duration)
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
