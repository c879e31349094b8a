"""The Python load generator for what wrk cannot send: gRPC (`grpc.aio` on one channel, raw tensor
contents, as tritonclient sends) and, beside it with the same kind of client, REST V2 JSON
(`aiohttp` on a keep-alive pool, as tritonclient.http sends). One asyncio loop, `--concurrency`
clients each sending one-house Boston requests back to back for `--duration` seconds; a request
built once, every answer decoded. Each run is a process of its own:

    python -m loadtest.harness.generator grpc 127.0.0.1:8001 --concurrency 8 --duration 5
    python -m loadtest.harness.generator rest http://127.0.0.1:8000 --concurrency 8 --duration 5

It prints one JSON line: the run (`loadtest.harness.wrk.Run`'s fields) and its own CPU seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict

from loadtest.harness.payloads import rows
from loadtest.harness.servers import REPO
from loadtest.harness.wrk import Run, pinned

PROTOCOLS = ("grpc", "rest")
INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


INFER_METHOD = "/inference.GRPCInferenceService/ModelInfer"


def boston_row() -> list[float]:
    """The first Boston sample's row, as the newest model version takes it."""
    return [float(v) for v in rows("boston")[0]]


async def drive(send, concurrency: int, duration: float) -> Run:
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
    requests = len(latencies)
    ordered = sorted(latencies) or [0.0]

    def quantile_ms(q: float) -> float:
        return 1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]

    return Run(
        requests=requests,
        seconds=elapsed,
        p50_ms=quantile_ms(0.5),
        p95_ms=quantile_ms(0.95),
        p99_ms=quantile_ms(0.99),
        max_ms=1000 * ordered[-1],
        mean_ms=1000 * statistics.fmean(ordered),
        errors={"failed": errors} if errors else {},
    )


async def grpc_load(target: str, concurrency: int, duration: float) -> Run:
    import grpc
    import numpy as np

    from service.api.grpc.messages import messages

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


async def rest_load(target: str, concurrency: int, duration: float) -> Run:
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
    run = asyncio.run(load(target, concurrency, duration))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"run": asdict(run), "client_cpu_s": usage.ru_utime + usage.ru_stime}))


def run_generator(
    protocol: str, target: str, concurrency: int, duration: float, cpus: str | None = None
) -> tuple[Run, float, float]:
    """One run of the generator in a process of its own (on `cpus` when pinned): what it
    measured, its CPU seconds and its wall seconds."""
    command = pinned([sys.executable, "-m", "loadtest.harness.generator", protocol,
                      target, "--concurrency", str(concurrency),
                      "--duration", str(duration)], cpus)  # fmt: skip
    started = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, timeout=duration + 120,
                            cwd=REPO)  # fmt: skip
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"the {protocol} load generator failed:\n{result.stderr}")
    line = json.loads(result.stdout.strip().splitlines()[-1])
    return Run(**line["run"]), line["client_cpu_s"], wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("protocol", choices=PROTOCOLS)
    parser.add_argument("target", help="host:port (gRPC) or the base URL (REST)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--duration", type=float, default=5)
    args = parser.parse_args()
    generate(args.protocol, args.target, args.concurrency, args.duration)


if __name__ == "__main__":
    main()
