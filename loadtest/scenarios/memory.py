"""What the largest legal requests cost the service in memory: each kind of request at its maximum
legal size, sent by `c` clients at once, and the peak resident memory (VmHWM) of the service's one
worker process while they are answered, then its resident memory once they are.

    python -m loadtest memory [--concurrency 1,4,50,150] [--kinds v2-json,grpc-raw]
        [--report reports/memory.md] [--service-checkout DIR]

The report is Markdown, with its numbers also as JSON beside it (memory.json).

The tensor requests go to IMDB's newest version ($LOADTEST_MODELS), in its inputs: a dense
version's rows of its width, a sparse one's ids (and weights), `SPARSE_ROW_WIDTH` a row
(`loadtest.harness.payloads.row_width`), all zeros.

The peak is the kernel's own count (`/proc/PID/status`), reset before each point (`clear_refs`,
needs the right to write to the process's /proc files: the same user, or root). A point's answers
are counted by status: a request the service admitted is answered 200 or a documented error,
never reset. `--service-checkout` runs another revision's service (before/after), with these
clients.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import json
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import numpy as np

from contract.config import NUMPY_OF_DATATYPE
from loadtest.harness.payloads import datatypes, largest_rows, row_width
from loadtest.harness.servers import REPO, free_port, running, start_service

MAX_BODY = 8 * 1024 * 1024  # the service's default SERVICE_MAX_BODY_BYTES
IMDB_INPUTS = datatypes("imdb")  # the newest version's: name → V2 datatype
IMDB_WIDTH = row_width("imdb")  # the numbers in a row of each input
# The bytes of one row of every input, raw (binary, gRPC)
IMDB_ROW_BYTES = IMDB_WIDTH * sum(NUMPY_OF_DATATYPE[d].itemsize for d in IMDB_INPUTS.values())
TEXT_CHARS = 100_000  # the default SERVICE_MAX_TEXT_CHARS
HEADER_FLOOD = 10 * 1024 * 1024
INFER = "/inference.GRPCInferenceService/ModelInfer"
CONCURRENCY = (1, 4, 50, 150)
# Long enough for 150 of the largest bodies to take their turns in the memory budget.
SETTINGS = {"SERVICE_REQUEST_TIMEOUT_S": "600", "SERVICE_HEADER_TIMEOUT_S": "10"}


def _json_tensor_body(rows: int) -> bytes:
    data = ",".join(["0"] * (rows * IMDB_WIDTH))
    tensors = ",".join(
        f'{{"name":"{name}","shape":[{rows},{IMDB_WIDTH}],"datatype":"{datatype}","data":[{data}]}}'
        for name, datatype in IMDB_INPUTS.items()
    )
    return f'{{"inputs":[{tensors}]}}'.encode()


def _binary_tensor_body(rows: int) -> tuple[bytes, int]:
    arrays = {name: np.zeros((rows, IMDB_WIDTH), NUMPY_OF_DATATYPE[datatype])
              for name, datatype in IMDB_INPUTS.items()}  # fmt: skip
    header = json.dumps({"inputs": [
        {"name": name, "shape": [rows, IMDB_WIDTH], "datatype": IMDB_INPUTS[name],
         "parameters": {"binary_data_size": array.nbytes}}
        for name, array in arrays.items()
    ]}).encode()  # fmt: skip
    return header + b"".join(a.tobytes() for a in arrays.values()), len(header)


def _http(path: str, body: bytes, **headers: str) -> bytes:
    fields = {"host": "127.0.0.1", "content-type": "application/json", **headers}
    fields["content-length"] = str(len(body))
    head = f"POST {path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    assert len(body) <= MAX_BODY, f"{path}: {len(body)} bytes is not a legal body"
    return (head + "\r\n").encode() + body


def http_requests() -> dict[str, bytes]:
    """The largest legal request of each REST kind, as bytes on the wire."""
    json_rows = largest_rows("imdb", MAX_BODY // (2 * IMDB_WIDTH * len(IMDB_INPUTS)) - 1)  # "0,"
    binary_rows = largest_rows("imdb", MAX_BODY // IMDB_ROW_BYTES - 1)
    v2_json = _json_tensor_body(json_rows)
    v2_binary, header_length = _binary_tensor_body(binary_rows)
    binary_headers = {"inference-header-content-length": str(header_length)}
    review = ("good " * (TEXT_CHARS // 5))[: TEXT_CHARS - 1]
    texts = json.dumps({"reviews": [review] * (MAX_BODY // (TEXT_CHARS + 3) - 1)}).encode()
    sequence = ",".join(["7"] * (TEXT_CHARS - 1))
    word_ids = f'{{"word_ids":[{",".join([f"[{sequence}]"] * 41)}]}}'.encode()
    row = "[" + ",".join(["0"] * IMDB_WIDTH) + "]"
    # TensorFlow Serving's instances: one input's row itself, several inputs' as an object
    if len(IMDB_INPUTS) > 1:
        row = "{" + ",".join(f'"{name}":{row}' for name in IMDB_INPUTS) + "}"
    v1 = f'{{"instances":[{",".join([row] * json_rows)}]}}'.encode()
    return {
        "v2-json": _http("/v2/models/imdb/infer", v2_json),
        "v2-binary": _http("/v2/models/imdb/infer", v2_binary, **binary_headers),
        "v2-json-gzip": _http(
            "/v2/models/imdb/infer", gzip.compress(v2_json, 1), **{"content-encoding": "gzip"}
        ),
        "v2-binary-gzip": _http(
            "/v2/models/imdb/infer",
            gzip.compress(v2_binary, 1),
            **{"content-encoding": "gzip"},
            **binary_headers,
        ),
        "typed-texts": _http("/api/imdb", texts),
        "typed-word-ids": _http("/api/reuters", word_ids),
        "v1": _http("/v1/models/imdb:predict", v1),
    }


def grpc_requests() -> dict[str, bytes]:
    """The largest legal ModelInfer messages, serialized (sent as they are, no client parsing)."""
    from service.api.grpc.messages import messages

    rows = largest_rows("imdb", MAX_BODY // IMDB_ROW_BYTES - 1)
    shape = [rows, IMDB_WIDTH]
    raw = messages.ModelInferRequest(model_name="imdb")
    typed = messages.ModelInferRequest(model_name="imdb")
    for name, datatype in IMDB_INPUTS.items():
        zeros = np.zeros(shape, NUMPY_OF_DATATYPE[datatype])
        raw.inputs.add(name=name, datatype=datatype, shape=shape)
        raw.raw_input_contents.append(zeros.tobytes())
        tensor = typed.inputs.add(name=name, datatype=datatype, shape=shape)
        getattr(tensor.contents, f"{datatype.lower()}_contents").extend(zeros.ravel())
    return {"grpc-raw": raw.SerializeToString(), "grpc-typed": typed.SerializeToString()}


async def _read_status(reader: asyncio.StreamReader) -> str:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    await reader.readexactly(int(headers.get("content-length", 0)))
    return lines[0].split()[1]


async def _send_http(port: int, request: bytes) -> str:
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(request)
        await writer.drain()
        status = await _read_status(reader)
        writer.close()
        return status
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        return f"reset ({type(error).__name__})"


async def _flood_header(port: int) -> str:
    """One header value of 10 MiB that never ends: the service must answer (431) without holding
    it all."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-flood: ")
        chunk, sent = b"a" * 65536, 0
        answer = asyncio.ensure_future(_read_status(reader))
        while sent < HEADER_FLOOD and not answer.done():
            writer.write(chunk)
            await writer.drain()
            sent += len(chunk)
        status = await asyncio.wait_for(answer, 30)
        writer.close()
        return status
    except (ConnectionError, asyncio.IncompleteReadError) as error:
        return f"reset ({type(error).__name__})"


async def _trickle_headers(port: int) -> str:
    """Legal headers, a few bytes at a time over about two seconds."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n" + b"x-slow: 1\r\n" * 20 + b"\r\n"
    for start in range(0, len(head), 12):
        writer.write(head[start : start + 12])
        await writer.drain()
        await asyncio.sleep(2 / (len(head) / 12))
    status = await _read_status(reader)
    writer.close()
    return status


async def _send_grpc(channel: grpc.aio.Channel, message: bytes) -> str:
    call = channel.unary_unary(INFER, request_serializer=None, response_deserializer=None)
    try:
        await call(message, timeout=900)
        return "OK"
    except grpc.aio.AioRpcError as error:
        return error.code().name


def peak_and_current(pid: int) -> tuple[float, float]:
    """VmHWM and VmRSS of `pid`, MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines()
    )
    return tuple(int(fields[name].split()[0]) / 1024 for name in ("VmHWM", "VmRSS"))


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


async def measure(pid: int, send: Callable[[], Awaitable[str]], clients: int) -> dict:
    """`clients` sends at once; the service's peak while they are answered."""
    reset_peak(pid)
    started = time.perf_counter()
    statuses = Counter(await asyncio.gather(*(send() for _ in range(clients))))
    seconds = time.perf_counter() - started
    peak, _ = peak_and_current(pid)
    await asyncio.sleep(1)
    _, after = peak_and_current(pid)
    return {"peak": peak, "after": after, "statuses": dict(statuses), "seconds": seconds}


async def run(pid: int, port: int, grpc_port: int, kinds: list[str], levels: list[int]) -> dict:
    senders: dict[str, Callable[[], Awaitable[str]]] = {}
    for kind, request in http_requests().items():
        senders[kind] = lambda request=request: _send_http(port, request)
    channel = grpc.aio.insecure_channel(
        f"127.0.0.1:{grpc_port}", options=[("grpc.max_send_message_length", 2 * MAX_BODY)]
    )
    for kind, message in grpc_requests().items():
        senders[kind] = lambda message=message: _send_grpc(channel, message)
    senders["headers-oversized"] = lambda: _flood_header(port)
    senders["headers-trickled"] = lambda: _trickle_headers(port)
    results = {}
    for kind in kinds:
        for clients in levels:
            point = await measure(pid, senders[kind], clients)
            results[(kind, clients)] = point
            print(
                f"{kind:18} c={clients:<4} peak {point['peak']:6.0f} MiB, after "
                f"{point['after']:5.0f} MiB, {point['seconds']:6.1f} s, {point['statuses']}",
                flush=True,
            )
    await channel.close()
    return results


def report(results: dict, idle: float, end: float, levels: list[int], title: str) -> str:
    kinds = list(dict.fromkeys(kind for kind, _ in results))
    lines = [
        f"# {title}",
        "",
        "`python -m loadtest memory` — one worker, default limits (8 MiB bodies, 160 MiB "
        f"request memory), request timeout {SETTINGS['SERVICE_REQUEST_TIMEOUT_S']} s. Peak "
        "resident memory (VmHWM, MiB) of the service while `c` clients each send the largest "
        "legal request of a kind at once; the answers by status.",
        "",
        f"Idle before: {idle:.0f} MiB; after the whole run: {end:.0f} MiB.",
        "",
        "| kind | " + " | ".join(f"c={c}" for c in levels) + " | answers |",
        "|---|" + "---|" * (len(levels) + 1),
    ]
    for kind in kinds:
        points = [results[(kind, c)] for c in levels]
        answers = Counter()
        for point in points:
            answers.update(point["statuses"])
        peaks = " | ".join(f"{p['peak']:.0f}" for p in points)
        lines.append(f"| {kind} | {peaks} | {dict(answers)} |")
    worst = max(p["peak"] for p in results.values())
    lines += ["", f"Highest peak: {worst:.0f} MiB.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--concurrency", default=",".join(map(str, CONCURRENCY)))
    parser.add_argument("--kinds", help="comma-separated; default: all")
    parser.add_argument("--report", type=Path, default=REPO / "reports" / "memory.md")
    parser.add_argument("--service-checkout", type=Path, default=REPO)
    parser.add_argument("--title", default="Memory of the largest legal requests")
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]
    every = [*http_requests(), *grpc_requests(), "headers-oversized", "headers-trickled"]
    kinds = args.kinds.split(",") if args.kinds else every
    grpc_port = free_port()
    log = args.report.with_suffix(".service.log")
    args.report.parent.mkdir(parents=True, exist_ok=True)
    server = start_service(
        log, {**SETTINGS, "SERVICE_GRPC_PORT": str(grpc_port)}, checkout=args.service_checkout
    )
    with running(server) as (process, url):
        port = int(url.rsplit(":", 1)[1])
        time.sleep(1)
        _, idle = peak_and_current(process.pid)
        results = asyncio.run(run(process.pid, port, grpc_port, kinds, levels))
        time.sleep(3)  # idle past the service's trim of an idle heap (IDLE_TRIM_S)
        _, end = peak_and_current(process.pid)
    text = report(results, idle, end, levels, args.title)
    args.report.write_text(text)
    points = [
        {"kind": kind, "clients": clients, **point} for (kind, clients), point in results.items()
    ]
    record = {"idle_mib": idle, "end_mib": end, "points": points}
    args.report.with_suffix(".json").write_text(json.dumps(record, indent=1))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
