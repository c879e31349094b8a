"""The service as a real process (`python -m service`): HTTP details that only a real server shows,
and the graceful shutdown on SIGTERM."""

from __future__ import annotations

import json
import random
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from service.api.rest.http import CorkedTransport
from tests.service.support import (
    REVIEWS,
    ServerProcess,
    connect,
    newest,
    ort_predict,
    raw_request,
    read_response,
    sample_rows,
    v2_body,
    v2_outputs,
)


def test_request_id_over_http(server):
    answer = httpx.get(f"{server}/v2/health/ready", headers={"X-Request-ID": "abc-123"})
    assert answer.headers["x-request-id"] == "abc-123"
    assert len(httpx.get(f"{server}/v2/health/live").headers["x-request-id"]) == 32


def test_oversized_chunked_body_is_413_over_http(server):
    """No Content-Length: the limit is counted as the chunks arrive (default limit: 32 MiB)."""
    chunk = b" " * (1024 * 1024)

    def body():
        yield b'{"reviews": ["'
        for _ in range(40):
            yield chunk
        yield b'"]}'

    answer = httpx.post(
        f"{server}/api/imdb",
        content=body(),
        headers={"content-type": "application/json"},
        timeout=60,
    )
    assert "content-length" not in answer.request.headers
    assert answer.status_code == 413, answer.text
    assert answer.json()["details"][0]["field"] == "body"
    assert httpx.get(f"{server}/v2/health/ready").status_code == 200


class RecordingTransport:
    def __init__(self):
        self.sent: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sent.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str):
        return f"info:{name}"


def test_a_response_head_goes_out_with_its_body_and_nothing_waits_for_the_loop():
    inner = RecordingTransport()
    corked = CorkedTransport(inner)
    corked.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # the client waits for it: at once
    assert inner.sent == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    corked.write(b"HTTP/1.1 200 OK\r\n\r\n")
    assert len(inner.sent) == 1  # a head waits for its body
    corked.write(b"body")
    assert inner.sent[-1] == b"HTTP/1.1 200 OK\r\n\r\nbody"
    corked.write(b"more")  # a streamed response's next part: at once
    assert inner.sent[-1] == b"more"
    corked.write(b"HTTP/1.1 204 No Content\r\n\r\n")
    corked.flush()  # the response's end: a head without a body goes alone
    assert inner.sent[-1] == b"HTTP/1.1 204 No Content\r\n\r\n"
    corked.write(b"HTTP/1.1 431 Request Header Fields Too Large\r\n\r\n{}")
    corked.close()  # sends what it holds, then closes
    assert (inner.sent[-1][:12], inner.closed) == (b"HTTP/1.1 431", True)
    corked.write(b"after close")
    assert inner.sent[-1][:12] == b"HTTP/1.1 431"  # nothing is written to a closed transport
    assert corked.get_extra_info("peername") == "info:peername"


def test_pipelined_requests_are_answered_in_order(server):
    """Three requests in one send: three answers, in order, each whole (the answers of one loop
    turn go out together)."""
    row = sample_rows("boston")[:1]
    requests = [
        raw_request("GET", "/v2/health/ready", x_request_id="first"),
        raw_request(
            "POST",
            "/v2/models/boston/infer",
            json.dumps(v2_body("boston", row)).encode(),
            x_request_id="second",
        ),
        raw_request("POST", "/api/boston", b'{"houses": [{"crim": "x"}]}', x_request_id="third"),
    ]
    with connect(server) as sock:
        sock.sendall(b"".join(head + body for head, body in requests))
        data = b""
        answers = []
        while len(answers) < len(requests):
            chunk = sock.recv(65536)
            assert chunk, f"closed after {len(answers)} answers"
            data += chunk
            while b"\r\n\r\n" in data:
                head, _, rest = data.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                headers = {
                    k.lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])
                }
                length = int(headers["content-length"])
                if len(rest) < length:
                    break
                answers.append((int(lines[0].split()[1]), headers["x-request-id"], rest[:length]))
                data = rest[length:]
    assert [(status, rid) for status, rid, _ in answers] == [
        (200, "first"), (200, "second"), (422, "third")]  # fmt: skip
    assert json.loads(answers[1][2])["outputs"][0]["shape"] == [1, 1]
    assert "crim" in answers[2][2].decode()


def test_sigterm_lets_requests_in_flight_finish(tmp_path):
    # The access log shows each request answered after the shutdown began.
    process = ServerProcess(tmp_path, SERVICE_ACCESS_LOG="true").wait_ready()
    try:
        rows = sample_rows("boston")
        payload = json.dumps(v2_body("boston", rows)).encode()
        clients = 4
        started = [threading.Event() for _ in range(clients)]
        answers: dict[int, httpx.Response | Exception] = {}

        def slow_body(i: int):
            """The body in 30 parts over 3 s: the request is in flight during the shutdown."""
            step = len(payload) // 30 + 1
            for start in range(0, len(payload), step):
                yield payload[start : start + step]
                started[i].set()  # the first part has been sent
                time.sleep(0.1)

        def send(i: int) -> None:
            try:
                answers[i] = httpx.post(
                    f"{process.url}/v2/models/boston/infer",
                    content=slow_body(i),
                    headers={"content-type": "application/json", "x-request-id": f"slow-{i}"},
                    timeout=60,
                )
            except Exception as error:
                answers[i] = error

        threads = [threading.Thread(target=send, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        for event in started:
            assert event.wait(30), "a request never started"
        time.sleep(0.5)  # orders events only: the server has read the requests' headers
        code = process.terminate(timeout=60)
        for thread in threads:
            thread.join(60)
    finally:
        process.kill()
    output = process.output()
    assert code == 0, output

    expected = ort_predict("boston", newest("boston"), rows)
    for i in range(clients):
        answer = answers[i]
        assert isinstance(answer, httpx.Response), f"request {i} failed: {answer!r}\n{output}"
        assert answer.status_code == 200, answer.text
        assert np.abs(v2_outputs(answer.json()) - expected).max() <= 1e-6
    # They were answered after the shutdown had begun, and the service then stopped cleanly.
    shutdown = output.index("Shutting down")
    for i in range(clients):
        assert output.index(f"[slow-{i}] POST /v2/models/boston/infer 200") > shutdown, output
    assert output.index("stopped") > shutdown


def test_sigterm_answers_every_request_that_arrived_before_it(tmp_path):
    """64 clients each send a 90,000-character review; SIGTERM follows 20 ms later. Every one is
    answered 200 (none reset), then the service exits 0."""
    process = ServerProcess(tmp_path).wait_ready()
    try:
        review = (" ".join(REVIEWS) + " ") * (90_000 // (len(" ".join(REVIEWS)) + 1) + 1)
        head, body = raw_request(
            "POST", "/api/imdb", json.dumps({"reviews": [review[:90_000]]}).encode()
        )
        socks = [connect(process.url, timeout=60) for _ in range(64)]
        for sock in socks:
            sock.sendall(head + body)
        time.sleep(0.02)
        process.process.send_signal(signal.SIGTERM)
        answers = []
        for sock in socks:
            try:
                answers.append(read_response(sock).status)
            except OSError as error:
                answers.append(repr(error))
        code = process.terminate(timeout=60)
    finally:
        process.kill()
    assert answers == [200] * 64, answers
    assert code == 0, process.output()


def _in_threads(clients: int, work) -> None:
    """Runs work() in `clients` threads at once; re-raises the first failure."""
    with ThreadPoolExecutor(clients) as pool:
        for future in [pool.submit(work) for _ in range(clients)]:
            future.result()


def test_max_wait_merges_requests_that_arrive_spread_out(tmp_path):
    """Clients that pause a few milliseconds between requests rarely meet in the queue (batches of
    1-3 rows on average without a wait); with `max_wait_ms` the batcher waits for them, and the
    batch-size histogram in /metrics shows the merged batches."""
    batching = json.dumps({"boston": {"max_wait_ms": 20}})
    process = ServerProcess(tmp_path, SERVICE_BATCHING=batching).wait_ready()
    clients, requests = 8, 25
    body = v2_body("boston", sample_rows("boston")[:1])
    pauses = random.Random(0)

    def client():
        with httpx.Client(base_url=process.url) as session:
            for _ in range(requests):
                answer = session.post("/v2/models/boston/infer", json=body)
                assert answer.status_code == 200, answer.text
                time.sleep(pauses.uniform(0, 0.01))

    try:
        _in_threads(clients, client)
        metrics = httpx.get(f"{process.url}/metrics").text
    finally:
        assert process.terminate() == 0, process.output()
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.labels.get("model") == "boston"
        and sample.labels.get("version") == str(newest("boston"))
    }
    rows, batches = samples["service_batch_size_rows_sum"], samples["service_batch_size_rows_count"]
    assert rows == clients * requests
    assert rows / batches >= 4, f"{rows / batches:.1f} rows per batch"


def _worker_pids(pid: int) -> list[int]:
    """The worker processes that uvicorn spawned (not multiprocessing's resource tracker)."""
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def _cpu_ticks(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def test_two_workers_both_serve(tmp_path):
    """With SERVICE_WORKERS=2 there are two worker processes, and requests on new connections are
    shared between them: each does a good part of the work (its CPU time grows)."""
    process = ServerProcess(tmp_path, SERVICE_WORKERS="2").wait_ready()
    try:
        workers = _worker_pids(process.process.pid)
        assert len(workers) == 2, process.output()
        before = {pid: _cpu_ticks(pid) for pid in workers}

        def client():
            no_reuse = httpx.Limits(max_keepalive_connections=0)
            with httpx.Client(base_url=process.url, limits=no_reuse) as session:
                for _ in range(50):
                    answer = session.post("/api/imdb", json={"reviews": REVIEWS[:1]})
                    assert answer.status_code == 200, answer.text

        _in_threads(4, client)
        work = {pid: _cpu_ticks(pid) - before[pid] for pid in workers}
    finally:
        assert process.terminate() == 0, process.output()
    assert min(work.values()) >= 0.25 * sum(work.values()), f"CPU ticks per worker: {work}"


def test_with_workers_the_first_signal_closes_the_listener_and_readiness(tmp_path):
    """SIGTERM to the supervisor of two workers: from the moment it arrives no new connection is
    served as ready (the listener closes, or readiness says 503), and a request in flight on
    either worker is answered."""
    process = ServerProcess(tmp_path, SERVICE_WORKERS="2").wait_ready()
    payload = json.dumps(v2_body("boston", sample_rows("boston"))).encode()
    head, body = raw_request("POST", "/v2/models/boston/infer", payload)
    try:
        in_flight = [connect(process.url) for _ in range(4)]  # both workers, most likely
        for sock in in_flight:
            sock.sendall(head + body[:10])  # the rest after the signal
        time.sleep(0.5)  # orders events only: the workers have read the heads
        process.process.send_signal(signal.SIGTERM)
        time.sleep(0.05)
        late = []
        for _ in range(20):
            try:
                with connect(process.url, timeout=5) as sock:
                    sock.sendall(raw_request("GET", "/v2/health/ready")[0])
                    late.append(read_response(sock).status)
            except OSError as error:  # refused, or closed unanswered: not served
                late.append(type(error).__name__)
            time.sleep(0.02)
        for sock in in_flight:
            sock.sendall(body[10:])
        answers = [read_response(sock).status for sock in in_flight]
        code = process.terminate(timeout=60)
    finally:
        process.kill()
    assert 200 not in late, late
    assert answers == [200] * 4, answers
    assert code == 0, process.output()
