"""/metrics: Triton's families (`nv_inference_*`, Grafana dashboards made for Triton work) beside
the service's own, and correct totals with two worker processes."""

from __future__ import annotations

import json

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import TRITON_FAMILIES
from tests.service.support import (
    InProcessServer,
    ServerProcess,
    connect,
    newest,
    raw_request,
    read_response,
    sample_rows,
    v2_body,
    wait_until,
)


def samples(text: str, name: str, **labels: str) -> float:
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


def test_triton_families_count_as_triton_does(client):
    version = str(newest("reuters"))
    labels = {"model": "reuters", "version": version}
    before = client.get("/metrics").text
    rows = sample_rows("reuters")
    for _ in range(3):
        assert (
            client.post("/v2/models/reuters/infer", json=v2_body("reuters", rows)).status_code
            == 200
        )
    bad = v2_body("reuters", rows)
    bad["inputs"][0]["datatype"] = "FP64"  # not the datatype of any of its inputs
    assert client.post("/v2/models/reuters/infer", json=bad).status_code == 400
    assert client.post("/api/reuters", json={"newswires": ["oil prices fell"]}).status_code == 200
    assert client.get("/v2/models/reuters").status_code == 200  # metadata: not an inference
    after = client.get("/metrics").text

    def grew(family: str) -> float:
        name = f"nv_inference_{family}"
        return samples(after, name, **labels) - samples(before, name, **labels)

    assert grew("request_success") == 4
    assert grew("request_failure") == 1
    assert grew("count") == 3 * len(rows) + 1  # rows inferred
    assert 1 <= grew("exec_count") <= 4  # batches
    assert grew("request_duration_us") > 0
    assert grew("compute_infer_duration_us") > 0
    assert grew("queue_duration_us") >= 0
    for family in TRITON_FAMILIES:
        assert f"# TYPE nv_inference_{family} gauge" in after  # the exact name, no _total


def test_two_workers_report_the_sum(tmp_path):
    process = ServerProcess(tmp_path, SERVICE_WORKERS="2").wait_ready()
    try:
        body = v2_body("boston", sample_rows("boston"))
        for _ in range(40):  # a new connection each: the kernel spreads them over the workers
            with httpx.Client(base_url=process.url) as http:
                assert http.post("/v2/models/boston/infer", json=body).status_code == 200
        totals = set()
        for _ in range(6):
            with httpx.Client(base_url=process.url) as http:
                text = http.get("/metrics").text
            labels = {"model": "boston", "version": str(newest("boston"))}
            totals.add((samples(text, "nv_inference_request_success", **labels),
                        samples(text, "service_requests_total", endpoint="/v2/models/{model}/infer")))  # fmt: skip
    finally:
        code = process.terminate()
    assert totals == {(40.0, 40.0)}, totals
    assert code == 0, process.output()


@pytest.mark.parametrize("family", ["nv_inference_pending_request_count", "service_queue_depth"])
def test_queue_gauges_exist_per_version(client, family):
    text = client.get("/metrics").text
    assert samples(text, family, model="boston", version=str(newest("boston"))) == 0


def test_two_workers_report_the_memory_a_request_holds_whichever_answers(tmp_path):
    """Gauges of what is there now (reserved memory, queue depths) are read when the metrics are:
    the worker that answers /metrics reads its own, the others' are those they wrote last (every
    50 ms). A request holds its reservation while its body arrives; every scrape, on a new
    connection each (either worker answers), shows it, and none once it is answered."""
    process = ServerProcess(tmp_path, SERVICE_WORKERS="2").wait_ready()
    body = json.dumps(v2_body("boston", sample_rows("boston"))).encode()
    head, _ = raw_request("POST", "/v2/models/boston/infer", body)

    def scraped() -> list[float]:
        values = []
        for _ in range(10):
            with httpx.Client(base_url=process.url) as http:
                values.append(samples(http.get("/metrics").text, "service_request_memory_bytes"))
        return values

    try:
        with connect(process.url) as uploading:
            uploading.sendall(head + body[:10])
            wait_until(lambda: min(scraped()) > 0, "every scrape to show the reservation")
            uploading.sendall(body[10:])
            assert read_response(uploading).status == 200
        wait_until(lambda: max(scraped()) == 0, "the reservation to be given back")
    finally:
        code = process.terminate()
    assert code == 0, process.output()


def test_with_workers_each_keeps_its_gauges_current_for_the_others():
    """With several workers, /metrics reads the others' values from what they wrote: a worker
    writes its gauges of what is there now every 50 ms, not only when it answers /metrics."""
    body = json.dumps(v2_body("boston", sample_rows("boston"))).encode()
    head, _ = raw_request("POST", "/v2/models/boston/infer", body)
    with InProcessServer() as server:
        metrics = server.dataplane.metrics
        metrics.multiprocess = True  # what SERVICE_WORKERS > 1 sets (no /metrics read here)
        with connect(server.url) as uploading:
            uploading.sendall(head + body[:10])
            wait_until(lambda: server.dataplane.memory.used > 0, "the reservation")
            reserved = server.dataplane.memory.used
            wait_until(
                lambda: (
                    metrics.registry.get_sample_value("service_request_memory_bytes") == reserved
                ),
                "the gauge to be written",
            )
            uploading.sendall(body[10:])
            assert read_response(uploading).status == 200
        wait_until(
            lambda: metrics.registry.get_sample_value("service_request_memory_bytes") == 0,
            "the gauge to come back to 0",
        )
