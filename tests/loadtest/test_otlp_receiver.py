"""The collector of docs/observability.md, as a reader runs it: `python -m loadtest.harness.otlp_receiver`
on a port, the service started with `OTEL_EXPORTER_OTLP_ENDPOINT` pointing at it, and a request's
spans printed by the receiver, with the trace id the answer's `traceparent` names."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.request

from tests.service.support import REPO, ServerProcess, free_port


def test_the_receiver_prints_the_spans_of_a_request(tmp_path):
    port = free_port()
    receiver = subprocess.Popen(
        [sys.executable, "-m", "loadtest.harness.otlp_receiver", "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert "receiving OTLP/HTTP traces at" in receiver.stdout.readline()
        service = ServerProcess(
            tmp_path,
            OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{port}",
            OTEL_BSP_SCHEDULE_DELAY="100",
        ).wait_ready()
        try:
            body = {"houses": [{"crim": 0.00632, "zn": 18.0, "indus": 2.31, "chas": 0.0,
                                "nox": 0.538, "rm": 6.575, "age": 65.2, "dis": 4.09, "rad": 1.0,
                                "tax": 296.0, "ptratio": 15.3, "b": 396.9, "lstat": 4.98}]}  # fmt: skip
            request = urllib.request.Request(
                f"{service.url}/api/boston",
                json.dumps(body).encode(),
                {"content-type": "application/json"},
            )
            with urllib.request.urlopen(request, timeout=30) as answer:
                trace_id = answer.headers["traceparent"].split("-")[1]
            lines, deadline = [], time.monotonic() + 30  # the SERVER span ends last
            while time.monotonic() < deadline and not any("'POST /api/boston'" in x for x in lines):
                lines.append(receiver.stdout.readline())
        finally:
            assert service.terminate() == 0, service.output()
    finally:
        receiver.terminate()
        receiver.wait(10)
    ours = [line for line in lines if line.startswith(trace_id)]
    names = {line.split("'")[1] for line in ours}
    assert {"POST /api/boston", "queue", "inference"} <= names, lines
    server = next(line for line in ours if "'POST /api/boston'" in line)
    assert " - 'POST /api/boston'" in server  # the SERVER span: no parent
    assert "http.response.status_code=200" in server
