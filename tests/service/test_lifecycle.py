"""The data plane under the faults of a running service, against a real server on loopback with
raw sockets (a test client delivers bodies whole and cannot show these races): backpressure,
deadlines, disconnects, memory admission, the drain at shutdown, and unexpected errors.

These run the service's own server in a thread of the test process (`InProcessServer`), so that
a test can hold a model's inference and see what ran; SIGTERM, reload and unload against a
separate process are in test_shutdown.py and test_repository_api.py."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from service.admission import BINARY_COPIES, BodyKind, body_cost, worst_cost
from service.dataplane import Call
from tests.service.support import (
    InProcessServer,
    connect,
    raw_request,
    read_response,
    sample_rows,
    settings,
    v2_body,
    wait_until,
)

BOSTON = "/v2/models/boston/infer"
MiB = 1024 * 1024


def boston_request(rows: int = 1, **parameters) -> tuple[bytes, bytes]:
    body = v2_body("boston", sample_rows("boston")[:1].repeat(rows, axis=0))
    if parameters:
        body["parameters"] = parameters
    return raw_request("POST", BOSTON, json.dumps(body).encode())


def send(url: str, request: tuple[bytes, bytes]):
    sock = connect(url)
    sock.sendall(b"".join(request))
    return sock


def queued(server: InProcessServer, name: str = "boston") -> int:
    """Requests waiting in the batcher of the model's newest version."""
    versions = server.dataplane.registry.models[name]
    return versions[max(versions)].batcher._queue.qsize()


def test_a_full_queue_answers_503_with_retry_after():
    with InProcessServer(
        batching={"boston": {"max_queue_size": 2, "inline_below_ms": 0}}
    ) as server:
        server.hold()
        running = send(server.url, boston_request())
        assert server.entered.wait(10)  # the first request is running (held); two queue
        waiting = [send(server.url, boston_request()) for _ in range(2)]
        wait_until(lambda: queued(server) == 2, "two requests to queue")
        refused = read_response(send(server.url, boston_request()))
        assert refused.status == 503, refused.body
        assert refused.headers["retry-after"] == "1"
        assert "queue is full" in refused.json()["error"]
        server.release()
        for sock in [running, *waiting]:
            assert read_response(sock).status == 200
        assert server.metric("service_dropped_requests_total", reason="queue_full") == 1


def test_an_expired_timeout_is_answered_504_and_never_run():
    with InProcessServer() as server:
        server.hold()
        running = send(server.url, boston_request())
        assert server.entered.wait(10), "the first request never reached the model"
        started = time.monotonic()
        expired = send(server.url, boston_request(rows=7, timeout=100_000))  # 0.1 s, in µs
        answer = read_response(expired)  # while the model is still held
        waited = time.monotonic() - started
        assert answer.status == 504, answer.body
        assert "deadline" in answer.json()["error"]
        assert waited < 5
        server.release()
        assert read_response(running).status == 200
        time.sleep(0.1)
        assert ("boston", 7) not in server.ran  # its 7 rows never reached the model
        assert server.metric("service_dropped_requests_total", reason="deadline") == 1


@pytest.mark.parametrize("timeout", [-1, 1.5, "soon", True])
def test_a_bad_timeout_is_400(client, timeout):
    body = v2_body("boston", sample_rows("boston"))
    body["parameters"] = {"timeout": timeout}
    answer = client.post(BOSTON, json=body)
    assert answer.status_code == 400
    assert answer.json()["details"][0]["field"] == "parameters.timeout"


def test_work_of_a_client_that_disconnected_is_dropped():
    with InProcessServer() as server:
        server.hold()
        running = send(server.url, boston_request())
        assert server.entered.wait(10), "the first request never reached the model"
        gone = send(server.url, boston_request(rows=5))
        wait_until(lambda: queued(server) == 1, "the request to queue")
        gone.close()
        wait_until(
            lambda: server.metric("service_dropped_requests_total", reason="disconnected") == 1,
            "the drop to be counted",
        )
        server.release()
        assert read_response(running).status == 200
        assert server.ran == [("boston", 1)]  # the 5 rows of the client that left never ran


def test_memory_admission_makes_requests_wait_their_turn():
    """Each body reserves the worst case of its declared size before it is read; the budget holds
    one such body, so the second waits until the first is answered, and both are answered."""
    head, body = boston_request(rows=150)
    worst = worst_cost(BodyKind.NUMBERS, len(body))
    budget = worst + worst // 2
    with InProcessServer(request_memory_bytes=budget, max_body_bytes=50 * 1024) as server:
        first = connect(server.url)
        first.sendall(head + body[:100])  # admitted: its memory is reserved while it uploads
        wait_until(lambda: server.dataplane.memory.used > 0, "the first reservation")
        second = send(server.url, (head, body))
        time.sleep(0.3)
        assert server.dataplane.memory.used == worst  # one at a time
        assert server.metric("service_request_memory_bytes") == worst
        first.sendall(body[100:])
        assert read_response(first).status == 200
        assert read_response(second).status == 200
        wait_until(lambda: server.dataplane.memory.used == 0, "the memory to be given back")


def test_a_request_that_never_gets_memory_is_answered_at_its_deadline():
    with InProcessServer(request_memory_bytes=MiB, max_body_bytes=50 * 1024,
                         request_timeout_s=0.5) as server:  # fmt: skip
        hog = Call(time.monotonic(), 3600)  # holds all the memory for longer than the test
        server.in_loop(lambda: server.dataplane.memory.grow(hog, MiB))
        started = time.monotonic()
        answer = read_response(send(server.url, boston_request(rows=150)))
        assert answer.status == 504, answer.body
        assert "deadline" in answer.json()["error"]
        assert 0.4 < time.monotonic() - started < 5
        server.in_loop(lambda: server.dataplane.memory.release(hog))
        assert read_response(send(server.url, boston_request(rows=150))).status == 200


def test_the_memory_budget_must_hold_one_largest_body():
    with pytest.raises(ValueError, match="request_memory_bytes must hold one body"):
        settings(max_body_bytes=1024 * 1024, request_memory_bytes=BINARY_COPIES * 1024 * 1024 - 1)


def test_a_chunked_body_that_does_not_fit_is_503_at_once():
    """A body without Content-Length cannot wait for memory while it holds some: what it costs
    is counted as it arrives, and refused when the budget is full."""
    head, body = boston_request(rows=250)
    small_head, small_body = boston_request(rows=150)
    budget = worst_cost(BodyKind.NUMBERS, len(body)) + body_cost(BodyKind.NUMBERS, small_body) // 2
    with InProcessServer(request_memory_bytes=budget, max_body_bytes=64 * 1024) as server:
        first = connect(server.url)
        first.sendall(head + body[:100])
        wait_until(lambda: server.dataplane.memory.used > 0, "the first reservation")
        chunked = small_head.replace(
            f"content-length: {len(small_body)}".encode(), b"transfer-encoding: chunked"
        )
        answer = read_response(
            send(server.url, (chunked, b"%x\r\n%s\r\n0\r\n\r\n" % (len(small_body), small_body)))
        )
        assert answer.status == 503, answer.body
        assert answer.headers["retry-after"] == "1"
        first.sendall(body[100:])
        assert read_response(first).status == 200


def test_leftovers_get_503_when_the_drain_time_is_over():
    with InProcessServer(drain_timeout_s=0.5) as server:
        server.hold()
        running = send(server.url, boston_request())
        assert server.entered.wait(10), "the first request never reached the model"
        waiting = send(server.url, boston_request(rows=3))
        slow_upload = connect(server.url)
        head, body = boston_request()
        slow_upload.sendall(head + body[:10])
        slow_headers = connect(server.url)
        slow_headers.sendall(head[:30])
        wait_until(lambda: queued(server) == 1, "the second request to queue")
        started = time.monotonic()
        server.begin_shutdown()
        wait_until(lambda: not server.dataplane.ready, "readiness to turn false", timeout=2)
        answers = [read_response(s) for s in (running, waiting, slow_upload, slow_headers)]
        assert [a.status for a in answers] == [503] * 4, [a.body for a in answers]
        assert all(a.headers["retry-after"] == "1" for a in answers)
        assert all("shutting down" in a.json()["error"] for a in answers)
        assert time.monotonic() - started < 5
        server.release()
        server.stop()
        assert ("boston", 3) not in server.ran


def test_an_unexpected_error_is_one_500_with_the_request_id(capfd):
    with InProcessServer() as server:

        def explode(batch):
            raise RuntimeError("the model exploded")

        for loaded in server.dataplane.registry.models["boston"].values():
            loaded.batcher._run = explode
        answer = httpx.post(
            f"{server.url}{BOSTON}",
            json=v2_body("boston", sample_rows("boston")),
            headers={"x-request-id": "boom-1"},
        )
        assert answer.status_code == 500
        assert answer.headers["x-request-id"] == "boom-1"
        assert answer.json()["error"] == "internal error; see the service log"
        log = capfd.readouterr().err
        assert log.count("ERROR") == 1, log
        assert log.count("[boom-1] unhandled error in POST /v2/models/boston/infer") == 1, log
        assert log.count("RuntimeError: the model exploded") == 1, log
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200


def test_a_client_that_never_finishes_its_headers_gets_408():
    with InProcessServer(header_timeout_s=0.3) as server:
        sock = connect(server.url)
        sock.sendall(b"POST /v2/models/boston/infer HTTP/1.1\r\nhost: x\r\n")
        started = time.monotonic()
        answer = read_response(sock)
        assert answer.status == 408
        assert 0.2 < time.monotonic() - started < 5
        assert sock.recv(1) == b""  # and closed


def test_idle_connections_are_closed():
    with InProcessServer(idle_timeout_s=0.3) as server:
        never_spoke = connect(server.url)
        after_a_request = send(server.url, raw_request("GET", "/v2/health/live"))
        assert read_response(after_a_request).status == 200
        started = time.monotonic()
        assert never_spoke.recv(1) == b""
        assert after_a_request.recv(1) == b""
        assert time.monotonic() - started < 5


def test_requests_in_flight_are_answered_while_many_more_arrive():
    """No request is lost under load: 64 concurrent clients, each answered 200 or 503 (the
    queue is small), never a reset or a 500."""
    with InProcessServer(batching={"boston": {"max_queue_size": 8, "inline_below_ms": 0}}) as s:

        def one(_):
            try:
                return httpx.post(
                    f"{s.url}{BOSTON}", json=v2_body("boston", sample_rows("boston")), timeout=30
                ).status_code
            except httpx.TransportError as error:
                return repr(error)

        with ThreadPoolExecutor(64) as pool:
            statuses = list(pool.map(one, range(256)))
    assert set(statuses) <= {200, 503}, statuses
    assert statuses.count(200) > 0
