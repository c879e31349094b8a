"""Prometheus collectors, on a registry of the app's own (several apps may live in one process):
the service's own families (`service_*`) and Triton's (`nv_inference_*`, same names and labels,
so that Triton's Grafana dashboards work unchanged).

With several worker processes (`SERVICE_WORKERS` > 1) the server sets PROMETHEUS_MULTIPROC_DIR
and every worker writes its values there; `/metrics`, whichever worker answers it, adds them up
(prometheus-client's multiprocess mode). Triton's counters are exposed under their exact names
(prometheus-client would add `_total` to a counter), as gauges that only grow, summed over the
workers; `rate()` treats them as Triton's.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

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


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True)
class VersionMetrics:
    """The collectors of one model version, looked up once (a `labels()` call costs as much as a
    small model's inference)."""

    batch_size: Histogram
    inference: Histogram
    queue_depth: Gauge
    pending: Gauge
    request_success: Gauge
    request_failure: Gauge
    request_duration_us: Gauge
    inference_count: Gauge
    exec_count: Gauge
    queue_duration_us: Gauge
    compute_duration_us: Gauge

    def batch(self, rows: int, seconds: float, waited: list[float]) -> None:
        """A batch of `rows` rows from requests that each waited `waited` seconds ran in
        `seconds`."""
        self.batch_size.observe(rows)
        self.inference.observe(seconds)
        self.exec_count.inc()
        self.inference_count.inc(rows)
        self.queue_duration_us.inc(sum(waited) * 1e6)
        self.compute_duration_us.inc(seconds * 1e6 * len(waited))

    def queue(self, depth: int) -> None:
        """`depth` requests wait for the batcher (read when the metrics are, see `sampled`)."""
        self.queue_depth.set(depth)
        self.pending.set(depth)

    def request(self, ok: bool, seconds: float) -> None:
        """An inference request was answered, 200 or not."""
        (self.request_success if ok else self.request_failure).inc()
        self.request_duration_us.inc(seconds * 1e6)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = MULTIPROCESS_DIR in os.environ
        self._versions: dict[tuple[str, int], VersionMetrics] = {}
        self._requests: dict[tuple[str, str, str, str], Counter] = {}
        self._latency: dict[tuple[str, str], Histogram] = {}
        self._samplers: list[Callable[[], None]] = []
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
            multiprocess_mode="livesum",
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
            multiprocess_mode="livesum",
        )
        self.models_loaded = Gauge(
            "service_models_loaded",
            "model versions loaded and ready (in each worker)",
            registry=self.registry,
            multiprocess_mode="livemax",
        )
        self.triton = {
            name: Gauge(
                f"nv_inference_{name}",
                help_text,
                ["model", "version"],
                registry=self.registry,
                multiprocess_mode="livesum" if name == "pending_request_count" else "sum",
            )
            for name, help_text in TRITON_FAMILIES.items()
        }

    def version(self, name: str, version: int) -> VersionMetrics:
        key = (name, version)
        if key not in self._versions:
            labels = {"model": name, "version": str(version)}
            triton = {k: family.labels(**labels) for k, family in self.triton.items()}
            self._versions[key] = VersionMetrics(
                batch_size=self.batch_size.labels(**labels),
                inference=self.inference.labels(**labels),
                queue_depth=self.queue_depth.labels(**labels),
                pending=triton["pending_request_count"],
                request_success=triton["request_success"],
                request_failure=triton["request_failure"],
                request_duration_us=triton["request_duration_us"],
                inference_count=triton["count"],
                exec_count=triton["exec_count"],
                queue_duration_us=triton["queue_duration_us"],
                compute_duration_us=triton["compute_infer_duration_us"],
            )
        return self._versions[key]

    def request(self, endpoint: str, name: str, version: str, status: str, seconds: float) -> None:
        """A request was answered: counted by endpoint, model, version and status, its latency by
        endpoint and model. The labelled children are kept: a `labels()` call costs more than
        the count."""
        _child(self._requests, self.requests, (endpoint, name, version, status)).inc()
        _child(self._latency, self.latency, (endpoint, name)).observe(seconds)

    def sampled(self, sampler: Callable[[], None]) -> None:
        """`sampler` sets gauges of what is there now (queue depths, memory reserved) whenever
        they are read, rather than each request setting them as it comes and goes: seven gauge
        writes a request were a tenth of a Boston request's CPU. With several workers the
        others' values are those of their last `refresh` (the data plane's every 50 ms)."""
        self._samplers.append(sampler)

    def refresh(self) -> None:
        for sampler in self._samplers:
            sampler()

    def queues(self, depths: dict[tuple[str, int], int]) -> None:
        """The queue depth of every version these metrics have seen: `depths`' or else 0 (a
        version unloaded since)."""
        for key, version_metrics in self._versions.items():
            version_metrics.queue(depths.get(key, 0))

    def exposition(self) -> bytes:
        """The text for /metrics: this process's values, or every worker's added up."""
        self.refresh()
        if not self.multiprocess:
            return generate_latest(self.registry)
        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        return generate_latest(registry)


def _child(children: dict, family, key: tuple):
    """`family.labels(*key)`, looked up once and kept in `children`."""
    child = children.get(key)
    if child is None:
        child = children[key] = family.labels(*key)
    return child


# Triton's per-model families (https://docs.nvidia.com/deeplearning/triton-inference-server/
# user-guide/docs/user_guide/metrics.html), as Triton counts them.
TRITON_FAMILIES = {
    "request_success": "Number of successful inference requests, all batch sizes",
    "request_failure": "Number of failed inference requests, all batch sizes",
    "count": "Number of inferences performed (rows; does not include cached requests)",
    "exec_count": "Number of model executions performed (batches)",
    "request_duration_us": "Cumulative inference request duration in microseconds",
    "queue_duration_us": "Cumulative inference queuing duration in microseconds",
    "compute_infer_duration_us": "Cumulative compute inference duration in microseconds",
    "pending_request_count": "Instantaneous number of pending requests awaiting execution",
}
