"""/metrics: Triton's families (`nv_inference_*`, Grafana dashboards made for Triton work) beside
the service's own, and correct totals with two worker processes."""

from __future__ import annotations

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from service.metrics import TRITON_FAMILIES
from tests.service.support import ServerProcess, newest, sample_rows, v2_body


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
    bad["inputs"][0]["datatype"] = "INT64"
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
