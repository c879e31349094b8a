"""Tracing (service/tracing.py): a SERVER span per request, continued from the client's
`traceparent` and handed back in the answer, with the data plane's and batcher's child spans;
none for probes; nothing at all where no `OTEL_*` variable asks for it; spans exported over
OTLP/HTTP by a real server process."""

from __future__ import annotations

import itertools
import json

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from loadtest.harness.otlp_receiver import OtlpReceiver
from service import tracing
from service.server import create_app
from tests.service.support import (
    REVIEWS,
    ServerProcess,
    TestClient,
    newest,
    sample_rows,
    settings,
    v2_body,
)

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = f"00-{TRACE_ID}-{CLIENT_SPAN_ID}-01"
OTEL_VARIABLES = (*tracing.SWITCHES, "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME")


@pytest.fixture(scope="module")
def exporter():
    return InMemorySpanExporter()


@pytest.fixture(scope="module")
def traced_client(exporter):
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    with TestClient(create_app(settings(), tracer_provider=provider)) as client:
        yield client


@pytest.fixture
def spans(exporter, traced_client):
    """The spans finished during the test, by name."""
    exporter.clear()

    def finished() -> dict[str, list]:
        by_name: dict[str, list] = {}
        for span in exporter.get_finished_spans():
            by_name.setdefault(span.name, []).append(span)
        return by_name

    return finished


@pytest.fixture
def no_otel_environment(monkeypatch):
    for name in OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def test_a_trace_comes_in_and_goes_out(traced_client, spans):
    body = v2_body("boston", sample_rows("boston"))
    response = traced_client.post(
        "/v2/models/boston/infer", json=body, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 200
    (server,) = spans()["POST /v2/models/{model}/infer"]
    assert server.kind == SpanKind.SERVER
    assert f"{server.context.trace_id:032x}" == TRACE_ID
    assert f"{server.parent.span_id:016x}" == CLIENT_SPAN_ID
    assert server.parent.is_remote
    assert response.headers["traceparent"] == f"00-{TRACE_ID}-{server.context.span_id:016x}-01"
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/v2/models/{model}/infer"
    assert server.attributes["url.path"] == "/v2/models/boston/infer"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["model.name"] == "boston"
    assert server.attributes["model.version"] == str(newest("boston"))
    assert server.status.status_code == StatusCode.UNSET


def test_a_request_without_traceparent_starts_a_trace_and_hands_it_back(traced_client, spans):
    response = traced_client.get("/v2/models/imdb")
    (server,) = spans()["GET /v2/models/{model}"]
    assert server.parent is None
    trace_id = f"{server.context.trace_id:032x}"
    assert response.headers["traceparent"].split("-")[1] == trace_id


def _children(spans: dict[str, list], server) -> dict[str, object]:
    """The request's child spans by name, each checked to be one, in the request's trace."""
    children = {}
    for name, found in spans.items():
        for span in found:
            if span is not server:
                assert span.context.trace_id == server.context.trace_id, name
                assert span.parent.span_id == server.context.span_id, name
                assert span.kind == SpanKind.INTERNAL, name
                assert name not in children, f"two '{name}' spans"
                children[name] = span
    return children


def test_text_requests_have_decode_queue_encode_and_inference_spans(traced_client, spans):
    response = traced_client.post(
        "/api/imdb", json={"reviews": REVIEWS}, headers={"traceparent": TRACEPARENT}
    )
    assert response.status_code == 200
    found = spans()
    (server,) = found["POST /api/imdb"]
    children = _children(found, server)
    assert set(children) == {"decode", "encode", "queue", "inference"}
    model = {"model.name": "imdb", "model.version": str(newest("imdb"))}
    for name in ("queue", "encode", "inference"):
        assert children[name].attributes.items() >= model.items(), name
        assert children[name].attributes["batch.size"] == len(REVIEWS)
        assert children[name].attributes["batch.requests"] == 1
    # In order: the body decoded, queued, the texts encoded by the batch, run. The batcher's
    # times are time.monotonic() turned into wall-clock time, exact to a few microseconds.
    assert_in_order(server, children, ("decode", "queue", "encode", "inference"))
    assert children["queue"].end_time == children["encode"].start_time
    assert children["encode"].end_time == children["inference"].start_time


def assert_in_order(server, children: dict[str, object], names: tuple[str, ...]) -> None:
    slack = 50_000  # ns
    times = [server.start_time]
    for name in names:
        times += [children[name].start_time, children[name].end_time]
    times.append(server.end_time)
    assert all(earlier <= later + slack for earlier, later in itertools.pairwise(times)), times


def test_word_id_requests_are_encoded_before_they_queue(traced_client, spans):
    response = traced_client.post("/api/reuters", json={"word_ids": [[1, 5, 9], [1, 70_000]]})
    assert response.status_code == 200
    found = spans()
    (server,) = found["POST /api/reuters"]
    children = _children(found, server)
    assert set(children) == {"decode", "encode", "queue", "inference"}
    assert_in_order(server, children, ("decode", "encode", "queue", "inference"))
    assert children["queue"].end_time == children["inference"].start_time


def test_tensor_requests_have_decode_queue_and_inference_spans(traced_client, spans):
    rows = sample_rows("boston")
    response = traced_client.post("/v2/models/boston/infer", json=v2_body("boston", rows))
    assert response.status_code == 200
    found = spans()
    (server,) = found["POST /v2/models/{model}/infer"]
    children = _children(found, server)
    assert set(children) == {"decode", "queue", "inference"}
    assert children["inference"].attributes["batch.size"] == len(rows)


def test_a_server_error_marks_the_span(traced_client, spans):
    body = {**v2_body("boston", sample_rows("boston")), "parameters": {"timeout": 1}}  # 1 µs
    response = traced_client.post("/v2/models/boston/infer", json=body)
    assert response.status_code == 504
    (server,) = spans()["POST /v2/models/{model}/infer"]
    assert server.attributes["http.response.status_code"] == 504
    assert server.status.status_code == StatusCode.ERROR
    assert "inference" not in spans()  # the batcher did not run it


def test_a_trace_the_caller_did_not_sample_records_nothing(traced_client, spans):
    response = traced_client.post(
        "/api/imdb", json={"reviews": REVIEWS}, headers={"traceparent": TRACEPARENT[:-2] + "00"}
    )
    assert response.status_code == 200
    assert spans() == {}
    assert response.headers["traceparent"].startswith(f"00-{TRACE_ID}-")  # still handed back
    assert response.headers["traceparent"].endswith("-00")


def test_no_orphan_spans_outside_a_request(traced_client, spans):
    """Data-plane work with no request span around it (a protocol that does not start one) makes
    no spans of its own: no traces of a lone "decode" or "inference"."""
    dataplane = traced_client.app.state.dataplane
    model = dataplane.registry.get("boston")
    rows = sample_rows("boston")

    async def outside_a_request():
        await dataplane.decode(b"[1]", json.loads)
        return await model.batcher.submit(rows)

    assert traced_client.portal.call(outside_a_request).shape[0] == len(rows)
    assert spans() == {}


@pytest.mark.parametrize(
    "path", ["/v2/health/live", "/v2/health/ready", "/metrics", "/static/demo.js"]
)
def test_probes_make_no_spans(traced_client, spans, path):
    response = traced_client.get(path, headers={"traceparent": TRACEPARENT})
    assert response.status_code in (200, 404)
    assert "traceparent" not in response.headers
    assert spans() == {}


def test_off_without_otel_variables(no_otel_environment):
    assert tracing.provider_from_environment() is None
    app = create_app(settings())
    with TestClient(app) as client:
        response = client.post(
            "/v2/models/boston/infer",
            json=v2_body("boston", sample_rows("boston")),
            headers={"traceparent": TRACEPARENT},
        )
        assert response.status_code == 200
        assert "traceparent" not in response.headers
        dataplane = app.state.dataplane
        assert dataplane.tracer is None
        for versions in dataplane.registry.models.values():
            for model in versions.values():
                assert model.batcher._tracer is None


@pytest.mark.parametrize(
    ("variables", "on"),
    [
        ({}, False),
        ({"OTEL_SERVICE_NAME": "serving"}, False),  # names the service, asks for no export
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318"}, True),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://127.0.0.1:4318/v1/traces"}, True),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, True),
        ({"OTEL_TRACES_EXPORTER": "console"}, True),
        ({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
        ({"OTEL_TRACES_EXPORTER": "otlp,console"}, True),
        ({"OTEL_SDK_DISABLED": "true", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4318"}, False),
    ],
)
def test_the_otel_variables_turn_it_on(no_otel_environment, monkeypatch, variables, on):
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    provider = tracing.provider_from_environment()
    assert (provider is not None) == on
    if provider is not None:
        provider.shutdown()


def test_service_name(no_otel_environment, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    provider = tracing.provider_from_environment()
    assert provider.resource.attributes["service.name"] == "dlwp-serving"
    provider.shutdown()
    monkeypatch.setenv("OTEL_SERVICE_NAME", "serving-eu")
    provider = tracing.provider_from_environment()
    assert provider.resource.attributes["service.name"] == "serving-eu"
    provider.shutdown()


def test_an_unknown_exporter_is_refused(no_otel_environment, monkeypatch):
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console,zipkin-by-pigeon")
    with pytest.raises(ValueError, match="zipkin-by-pigeon"):
        tracing.provider_from_environment()


@pytest.mark.slow
@pytest.mark.parametrize("workers", ["1", "2"])  # 2: worker processes, which run no atexit
def test_a_server_process_exports_over_otlp(tmp_path, workers):
    with OtlpReceiver() as receiver:
        process = ServerProcess(
            tmp_path,
            SERVICE_WORKERS=workers,
            OTEL_EXPORTER_OTLP_ENDPOINT=receiver.endpoint,
            OTEL_SERVICE_NAME="traced-test",
        ).wait_ready()
        try:
            response = httpx.post(
                f"{process.url}/v2/models/boston/infer",
                json=v2_body("boston", sample_rows("boston")),
                headers={"traceparent": TRACEPARENT},
            )
            assert response.status_code == 200
            assert response.headers["traceparent"].startswith(f"00-{TRACE_ID}-")
        finally:
            code = process.terminate()  # exports what is still buffered
    assert code == 0, process.output()
    assert receiver.service_names() == {"traced-test"}
    spans = {span.name: span for span in receiver.spans()}
    assert set(spans) == {"POST /v2/models/{model}/infer", "decode", "queue", "inference"}
    assert {span.trace_id.hex() for span in spans.values()} == {TRACE_ID}
    assert spans["POST /v2/models/{model}/infer"].parent_span_id.hex() == CLIENT_SPAN_ID
