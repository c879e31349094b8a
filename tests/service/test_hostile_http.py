"""What a hostile or careless HTTP client sends, against a real server on loopback (raw sockets
where a client library would refuse to send it): request heads that never end or have too many
fields, numbers no ASCII parser reads, requests the HTTP parser refuses, gzip bodies with more
than one member or bytes after it, compressed bodies in a crowd, and a process out of file
descriptors. Each answer is a documented status in the service's one error shape, with a request
id; the service stays up."""

from __future__ import annotations

import gzip
import json
import os
import resource
import select
import socket
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest

from tests.service.support import (
    HOUSES,
    ServerProcess,
    connect,
    house_rows,
    raw_request,
    read_response,
    v2_body,
)

HEAD_LIMIT = 32 * 1024  # the default SERVICE_MAX_HEADER_BYTES


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    process = ServerProcess(tmp_path_factory.mktemp("hostile")).wait_ready()
    yield process
    assert process.terminate() == 0, process.output()


def assert_error_shape(answer, status: int, field: str | None = None) -> None:
    assert answer.status == status, answer.body
    assert len(answer.headers["x-request-id"]) == 32
    error = answer.json()
    assert error["error"], error
    if field is not None:
        assert error["details"][0]["field"].lower() == field, error


def send_raw(url: str, data: bytes):
    with connect(url) as sock:
        sock.sendall(data)
        return read_response(sock)


def test_a_header_that_never_ends_is_431_once_over_the_limit(service):
    """A 10 MiB header value that never ends: the head is refused where it passes the limit,
    while the client is still sending (the parser itself would hold it all until the header
    timeout), and the client reads the 431 (the rest it sends is dropped, not answered with a
    reset)."""
    flood, sent = 10 * 1024 * 1024, 0
    with connect(service.url) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-flood: ")
        while sent < flood and not select.select([sock], [], [], 0)[0]:
            sock.sendall(b"a" * 65536)
            sent += 65536
        answer = read_response(sock)
        assert sock.recv(1) == b"", "the connection stays open"
    assert_error_shape(answer, 431, "headers")
    assert sent < flood


@pytest.mark.parametrize("size", [HEAD_LIMIT + 1, 100_000])
def test_a_whole_head_over_the_limit_is_431(service, size):
    """The same limit where the head arrives complete in one piece."""
    head = b"GET /v2/health/ready HTTP/1.1\r\nhost: x\r\nx-padding: " + b"a" * size + b"\r\n\r\n"
    assert_error_shape(send_raw(service.url, head), 431, "headers")


def test_too_many_headers_are_431(service):
    fields = "".join(f"x-field-{i}: {i}\r\n" for i in range(101))
    answer = send_raw(
        service.url, f"GET /v2/health/live HTTP/1.1\r\nhost: x\r\n{fields}\r\n".encode()
    )
    assert_error_shape(answer, 431, "headers")
    assert "101" in answer.json()["error"] or "100" in answer.json()["error"]


@pytest.mark.parametrize(
    "value",
    [b"\xb2", b"1\xb9", "\u0663".encode(), b"+5", b"5x", b"-1"],
    ids=["superscript-two", "one-superscript-one", "arabic-indic-three", "plus", "letter", "minus"],
)
def test_a_binary_header_length_that_is_not_ascii_digits_is_400(service, value):
    head, body = raw_request("POST", "/v2/models/boston/infer", _boston_json(3))
    head = head[:-2] + b"inference-header-content-length: " + value + b"\r\n\r\n"
    answer = send_raw(service.url, head + body)
    assert_error_shape(answer, 400, "inference-header-content-length")


@pytest.mark.parametrize(
    "head",
    [
        b"POST /v2/models/boston/infer HTTP/1.1\r\nhost: x\r\ncontent-length: abc\r\n\r\n",
        b"POST /v2/models/boston/infer HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\n"
        b"transfer-encoding: chunked\r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-a: b\nx-c: d\r\n\r\n",
        b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-a: b\x00c\r\n\r\n",
    ],
    ids=["bad-content-length", "length-and-chunked", "bare-lf", "nul"],
)
def test_what_the_parser_refuses_is_400_in_the_error_shape(service, head):
    assert_error_shape(send_raw(service.url, head), 400)
    assert httpx.get(f"{service.url}/v2/health/ready").status_code == 200


def _boston_json(rows: int) -> bytes:
    houses = np.tile(house_rows(HOUSES), (rows // len(HOUSES) + 1, 1))[:rows]
    return json.dumps(v2_body("boston", houses)).encode()


@pytest.mark.parametrize(
    ("body", "status"),
    [
        (gzip.compress(_boston_json(3)) + gzip.compress(b"GARBAGE"), 400),
        (gzip.compress(_boston_json(3)) + b"junk", 400),
        (gzip.compress(_boston_json(3)[:100]) + gzip.compress(_boston_json(3)[100:]), 200),
    ],
    ids=["second-member-garbage", "trailing-bytes", "valid-json-in-two-members"],
)
def test_every_gzip_member_is_read_and_trailing_bytes_refused(service, body, status):
    answer = httpx.post(
        f"{service.url}/v2/models/boston/infer",
        content=body,
        headers={"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert answer.status_code == status, answer.text
    if status == 400:
        assert answer.json()["details"][0]["field"] == "body"


def test_compressed_bodies_in_a_crowd_wait_their_turn_for_memory(tmp_path):
    """20 gzip'd bodies at once, each costing a third of a small budget: every one is answered
    200, none 503 (a compressed body used to be refused where the budget was not free at once)."""
    process = ServerProcess(
        tmp_path, SERVICE_MAX_BODY_BYTES=str(1 << 20), SERVICE_REQUEST_MEMORY_BYTES=str(4 << 20)
    ).wait_ready()
    try:
        body = gzip.compress(_boston_json(1_000))

        def send(_) -> int:
            return httpx.post(
                f"{process.url}/v2/models/boston/infer",
                content=body,
                headers={"content-type": "application/json", "content-encoding": "gzip"},
                timeout=60,
            ).status_code

        with ThreadPoolExecutor(20) as pool:
            statuses = list(pool.map(send, range(20)))
    finally:
        code = process.terminate()
    assert statuses == [200] * 20, statuses
    assert code == 0, process.output()


def test_out_of_file_descriptors_the_service_is_not_ready_and_still_answers(tmp_path):
    """With no descriptor left, readiness says 503 (a load balancer sends elsewhere) and the
    pages it already holds are answered; once descriptors are free again it is ready."""
    process = ServerProcess(tmp_path).wait_ready()
    try:
        pid = process.process.pid
        get = lambda sock, path: (  # noqa: E731
            sock.sendall(raw_request("GET", path)[0]) or read_response(sock)
        )
        with connect(process.url) as sock:
            assert get(sock, "/v2/health/ready").status == 200
            limits = resource.prlimit(pid, resource.RLIMIT_NOFILE)
            in_use = {int(fd) for fd in os.listdir(f"/proc/{pid}/fd")}
            lowest_free = min(set(range(len(in_use) + 1)) - in_use)
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (lowest_free, limits[1]))
            try:
                answer = get(sock, "/v2/health/ready")
                assert (answer.status, answer.json()) == (503, {"ready": False})
                assert get(sock, "/").status == 200
                assert get(sock, "/v2/health/live").status == 200
            finally:
                resource.prlimit(pid, resource.RLIMIT_NOFILE, limits)
            assert get(sock, "/v2/health/ready").status == 200
    finally:
        code = process.terminate()
    assert code == 0, process.output()


def test_a_closed_connection_mid_head_leaves_the_service_up(service):
    with socket.create_connection(("127.0.0.1", service.port)) as sock:
        sock.sendall(b"GET /v2/health/live HTTP/1.1\r\nhost: x\r\nx-flood: " + b"a" * 1000)
    assert httpx.get(f"{service.url}/v2/health/ready").status_code == 200
