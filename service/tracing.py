"""OpenTelemetry tracing, configured by the standard `OTEL_*` environment variables.

Off unless a variable asks for export (`OTEL_EXPORTER_OTLP_ENDPOINT`,
`OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER`): then no tracer exists and the
request path does no tracing work at all. On, each request gets a SERVER span (from its
`service.lifecycle.RequestContext`, which every transport enters), continued from its W3C `traceparent`
header or metadata and named after its route or RPC, with child spans from the data plane
("decode", "encode" of word ids) and the batcher ("queue", "encode" of raw texts, "inference").
The SDK reads its own variables: `OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, the OTLP exporter's endpoint, headers and timeout.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterable
from importlib.metadata import entry_points

from opentelemetry import context, propagate, trace
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

DEFAULT_SERVICE_NAME = "dlwp-serving"
# Any of these turns tracing on; OTEL_TRACES_EXPORTER=none turns it off again.
SWITCHES = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_TRACES_EXPORTER",
)
# The exporter that this package installs (opentelemetry-exporter-otlp-proto-http), also for
# the spec's generic name "otlp"; other names are looked up among the installed exporters.
DEFAULT_EXPORTER = "otlp_proto_http"
# Probes and the demo page's files: frequent, and nothing to trace.
UNTRACED_PREFIXES = ("/v2/health/", "/metrics", "/static/")
_RESPONSE_PROPAGATOR = TraceContextTextMapPropagator()  # the answer carries `traceparent` only
_NO_SPAN = contextlib.nullcontext()


def provider_from_environment() -> TracerProvider | None:
    """The SDK's tracer provider with a batching processor per exporter, as the `OTEL_*`
    variables ask; None when none asks for export."""
    if not any(os.environ.get(name) for name in SWITCHES):
        return None
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    # A comma-separated list, as in the specification; unset: OTLP.
    names = [n.strip().lower() for n in os.environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",")]
    names = [DEFAULT_EXPORTER if n == "otlp" else n for n in names if n and n != "none"]
    if not names:
        return None
    exporters = []
    for name in names:
        found = entry_points(group="opentelemetry_traces_exporter", name=name)
        if not found:
            raise ValueError(f"OTEL_TRACES_EXPORTER: no span exporter named '{name}'")
        exporters.append(next(iter(found)).load())
    resource = Resource.create()  # OTEL_SERVICE_NAME, OTEL_RESOURCE_ATTRIBUTES
    if resource.attributes[SERVICE_NAME].startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: DEFAULT_SERVICE_NAME}))
    provider = TracerProvider(resource=resource)  # the sampler from OTEL_TRACES_SAMPLER
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    return provider


def tracer_of(provider: trace.TracerProvider | None) -> Tracer | None:
    return None if provider is None else provider.get_tracer("service")


def traced(path: str) -> bool:
    return not path.startswith(UNTRACED_PREFIXES)


def http_carrier(scope: dict) -> tuple[str, dict[str, str], dict[str, str]]:
    """An HTTP request's span name (its method, until it has been routed), the headers its trace
    context comes in and its attributes, for `start_server`."""
    headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]}
    attributes = {
        "http.request.method": scope["method"],
        "url.path": scope["path"],
        "url.scheme": scope.get("scheme", "http"),
    }
    return scope["method"], headers, attributes


def http_outcome(span: trace.Span, scope: dict, status: int) -> None:
    """Names the span by its route, once routed, and records the status."""
    route = getattr(scope.get("route"), "path", None)
    if route is not None:
        span.update_name(f"{scope['method']} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)


def rpc_attributes(service: str, method: str) -> dict[str, str]:
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def start_server(
    tracer: Tracer, name: str, carrier: dict[str, str], attributes: dict[str, str]
) -> tuple[trace.Span, object]:
    """A request's SERVER span, continued from the `traceparent` in `carrier` (headers or gRPC
    metadata), made the current span; returns it with the token that `end_server` detaches."""
    span = tracer.start_span(
        name, context=propagate.extract(carrier), kind=SpanKind.SERVER, attributes=attributes
    )
    return span, context.attach(trace.set_span_in_context(span))


def response_headers(span: trace.Span) -> list[tuple[bytes, bytes]]:
    """`traceparent` of the request's span: the trace id that the client's logs can be joined on."""
    return [(n.encode("latin-1"), v.encode("latin-1")) for n, v in response_metadata(span)]


def response_metadata(span: trace.Span) -> list[tuple[str, str]]:
    """`traceparent` of a span, as a gRPC call's initial metadata carries it back."""
    carrier: dict[str, str] = {}
    _RESPONSE_PROPAGATOR.inject(carrier, trace.set_span_in_context(span))
    return list(carrier.items())


def end_server(span: trace.Span, token: object, model, failed: bool) -> None:
    """`failed`: the server's fault (a 5xx, or gRPC's statuses of that kind)."""
    if model is not None:
        span.set_attributes(model_attributes(model.name, model.version))
    if failed:
        span.set_status(Status(StatusCode.ERROR))
    context.detach(token)
    span.end()


def model_attributes(name: str, version: int) -> dict[str, str]:
    return {"model.name": name, "model.version": str(version)}


def span(tracer: Tracer | None, name: str):
    """A child span of the request's, or nothing where tracing is off or the request has no span
    (not sampled, or not from the request middleware): no orphan spans."""
    if tracer is None or not trace.get_current_span().is_recording():
        return _NO_SPAN
    return tracer.start_as_current_span(name)


def current() -> context.Context | None:
    """The context of the request's span, for the spans the batcher records later; None where the
    request has no span."""
    return context.get_current() if trace.get_current_span().is_recording() else None


def record_batch(
    tracer: Tracer,
    parents: Iterable[context.Context | None],
    queued_at: Iterable[float],
    has_texts: Iterable[bool],
    times: tuple[float, float, float],
    attributes: dict,
) -> None:
    """For each request of a batch that ran: its "queue" span (from being queued until the batch
    started), for a request of raw texts its "encode" span (the batch encoding the texts of all
    its requests at once), and its "inference" span (the batch's run, shared with the others:
    `batch.size` rows of `batch.requests` requests). `times`: when the batch started, its texts
    were encoded, and it ended; all times are time.monotonic(), as the batcher keeps them."""
    to_ns = time.time_ns() - time.monotonic_ns()
    started_ns, encoded_ns, ended_ns = (int(t * 1e9) + to_ns for t in times)
    for parent, queued, texts in zip(parents, queued_at, has_texts, strict=True):
        if parent is None:
            continue
        queue = tracer.start_span(
            "queue", parent, attributes=attributes, start_time=int(queued * 1e9) + to_ns
        )
        queue.end(started_ns)
        if texts:
            tracer.start_span("encode", parent, attributes=attributes, start_time=started_ns).end(
                encoded_ns
            )
        tracer.start_span("inference", parent, attributes=attributes, start_time=encoded_ns).end(
            ended_ns
        )
