"""Prometheus collectors, on a registry of the app's own (several apps may live in one process)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.2,
    0.5,
    1.0,
    2.0,
    5.0,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "service_requests",
            "requests by HTTP route or gRPC method, model, version and status (HTTP code or "
            "gRPC status name)",
            ["endpoint", "model", "version", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "service_request_duration_seconds",
            "request latency: HTTP from the first byte read to the response, gRPC from the "
            "parsed message to the answer",
            ["endpoint", "model"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.inference = Histogram(
            "service_inference_duration_seconds",
            "onnxruntime time per batch",
            ["model", "version"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.batch_size = Histogram(
            "service_batch_size_rows",
            "rows per inference call",
            ["model", "version"],
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "service_queue_depth",
            "requests waiting for the batcher",
            ["model", "version"],
            registry=self.registry,
        )
        self.dropped = Counter(
            "service_dropped_requests",
            "requests answered without running: deadline (504), disconnected (the client "
            "left), queue_full and shutdown (503)",
            ["model", "version", "reason"],
            registry=self.registry,
        )
        self.refused = Counter(
            "service_refused_requests",
            "requests refused before their body was read: too_large (413)",
            ["reason"],
            registry=self.registry,
        )
        self.request_memory = Gauge(
            "service_request_memory_bytes",
            "memory reserved by the requests in flight (bodies decoded and input rows)",
            registry=self.registry,
        )
        self.models_loaded = Gauge(
            "service_models_loaded", "model versions loaded and ready", registry=self.registry
        )
