"""Service configuration: environment variables prefixed `SERVICE_`, or a `.env` file.

Nested values are JSON, e.g. `SERVICE_BATCHING='{"imdb": {"max_batch_size": 128}}'`; lists may be
comma-separated, e.g. `SERVICE_PROVIDERS=CUDAExecutionProvider,CPUExecutionProvider`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service.admission import BINARY_COPIES


class Batching(BaseModel):
    """Adaptive batching of one model (see service/batching.py)."""

    enabled: bool = Field(True, description="merge concurrent requests into one inference call")
    max_batch_size: int = Field(64, ge=1, description="rows in one inference call, at most")
    max_wait_ms: float = Field(
        0.0,
        ge=0,
        description="under concurrent traffic, wait this long for more requests to merge; 0: "
        "merge what is already waiting (batches still grow with the load)",
    )
    inline_below_ms: float = Field(
        0.2,
        ge=0,
        description="calls that took less than this run on the event loop instead of a thread "
        "(a hand-over costs more); 0: always in a thread",
    )
    max_queue_size: int = Field(
        256,
        ge=1,
        description="requests waiting for this model at most; more get 503 with Retry-After",
    )


class VersionPolicy(BaseModel):
    """Which versions of a model are served, as TF Serving's `model_version_policy`: `{}` all of
    them, `{"latest": N}` the N newest, `{"specific": [1, 3]}` those named."""

    model_config = ConfigDict(extra="forbid")

    latest: int | None = Field(None, ge=1)
    specific: list[int] | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_rule(self) -> VersionPolicy:
        if self.latest is not None and self.specific is not None:
            raise ValueError("a version policy is latest or specific, not both")
        return self

    def select(self, versions: list[int]) -> list[int]:
        """The versions to serve of those in the repository, ascending."""
        if self.latest is not None:
            return sorted(versions)[-self.latest :]
        if self.specific is not None:
            return sorted(set(versions) & set(self.specific))
        return sorted(versions)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="SERVICE_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    model_repository: Path = Field(Path("models"), description="Triton-style model repository")
    providers: Annotated[list[str], NoDecode] = Field(
        ["CPUExecutionProvider"], description="onnxruntime execution providers, in order"
    )
    require_providers: bool = Field(
        False, description="refuse to start when a listed provider is not available (fail fast)"
    )
    strict_repository: bool = Field(
        False,
        description="refuse to start when a version in the repository cannot be loaded (as "
        "Triton's --exit-on-error); otherwise it is named in the log and in the repository "
        "index (UNAVAILABLE, with the reason) and the other versions serve",
    )
    # One by default: these models' operators take microseconds, and a second onnxruntime
    # thread, which may not spin (it would take the CPU the event loop needs), mostly wakes too
    # late to share them: up to 1.7 x the CPU per batch, rarely a faster one (`python -m
    # loadtest threads`). The worker's CPUs run batches side by side instead.
    intra_op_threads: int = Field(
        1,
        ge=1,
        description="onnxruntime intra-op threads per model session; the worker's CPUs run "
        "batches side by side (`inference_threads`)",
    )
    batching: dict[str, Batching] = Field(
        default_factory=dict, description="per model; models not named get `default_batching`"
    )
    default_batching: Batching = Batching()
    version_policy: dict[str, VersionPolicy] = Field(
        default_factory=dict,
        description='per model, e.g. {"imdb": {"latest": 1}}; models not named: every version',
    )
    poll_interval_s: float = Field(
        0,
        ge=0,
        description="look at the model repository this often and serve what changed (new "
        "versions loaded, removed ones unloaded, broken ones reported and skipped); 0: never",
    )
    max_body_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="larger bodies (and gRPC messages) get 413 (RESOURCE_EXHAUSTED); what a body "
        "costs once parsed and encoded is reserved in `request_memory_bytes`",
    )
    request_memory_bytes: int = Field(
        160 * 1024 * 1024,
        ge=1024 * 1024,
        description="memory that the requests in flight may hold: their bodies and gRPC "
        "messages, parsed and encoded, counted by the numbers, word ids and characters they "
        "hold (service/admission.py); a request that does not fit waits for others to finish, "
        "until its deadline",
    )
    max_batch_rows: int = Field(1024, ge=1, description="rows one request may carry")
    max_text_chars: int = Field(100_000, ge=1, description="characters one text may have")
    max_sparse_entries: int = Field(
        1 << 18,
        ge=1,
        description="ids one request may send to a sparse text model (its rows' n-grams, all "
        "rows together): each becomes an entry of the batch, which its body's size does not "
        "bound in memory (JSON writes an id in two bytes)",
    )
    host: str = "0.0.0.0"
    port: int = Field(8000, ge=0, le=65535)
    grpc_port: int = Field(
        8001,
        ge=0,
        le=65535,
        description="the Open Inference Protocol over gRPC listens here, on `host`, in the same "
        "process as HTTP (each worker binds it, sharing it with SO_REUSEPORT); 0: no gRPC",
    )
    workers: int = Field(1, ge=1)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = "text"
    access_log: bool = Field(
        False,
        description="log a line per request (method, path, status, model, ms, request id); "
        "off by default: at thousands of requests a second it costs CPU and disk, and "
        "/metrics counts the same",
    )
    admin_api_key: SecretStr | None = Field(
        None, description="enables the repository (load/unload) API for requests bearing this key"
    )
    drain_timeout_s: float = Field(
        30.0, ge=0, description="on SIGTERM, how long requests in flight may take; then 503"
    )
    request_timeout_s: float = Field(
        60.0,
        gt=0,
        description="deadline of a request, from its headers to its answer (body, queue and "
        "inference); V2 requests may ask for less with parameters.timeout (microseconds)",
    )
    max_header_bytes: int = Field(
        32 * 1024,
        ge=1024,
        description="a request's line and headers together, at most; more get 431 (the HTTP "
        "parser has no limit of its own)",
    )
    max_headers: int = Field(100, ge=8, description="headers one request may have; more: 431")
    header_timeout_s: float = Field(
        10.0, gt=0, description="a client must send a request's headers within this; else 408"
    )
    idle_timeout_s: float = Field(
        30.0, gt=0, description="a connection with no request for this long is closed"
    )
    offload_above_bytes: int = Field(
        512 * 1024,
        ge=0,
        description="bodies larger than this are decoded in a thread, and texts longer than an "
        "eighth of it encoded there, so that the event loop keeps answering other clients",
    )

    @model_validator(mode="after")
    def _one_body_fits_in_memory(self) -> Settings:
        # A request whose cost is more than the whole budget runs alone (service.admission);
        # the budget must at least hold a body of the largest size and its copies.
        needed = self.max_body_bytes * BINARY_COPIES
        if self.request_memory_bytes < needed:
            raise ValueError(
                f"request_memory_bytes must hold one body of max_body_bytes and its copies: "
                f"at least {needed} ({BINARY_COPIES} × {self.max_body_bytes})"
            )
        return self

    @field_validator("admin_api_key")
    @classmethod
    def _no_empty_key(cls, key: SecretStr | None) -> SecretStr | None:
        # An empty key (a template that left it blank) would open the repository API to a
        # request that sends an empty one: refuse to start instead.
        if key is not None and not key.get_secret_value().strip():
            raise ValueError(
                "set but empty; give the key a secret value, or unset it to turn the repository "
                "API off"
            )
        return key

    @field_validator("providers", mode="before")
    @classmethod
    def _split_providers(cls, value):
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def batching_for(self, model: str) -> Batching:
        return self.batching.get(model, self.default_batching)

    def versions_to_serve(self, model: str, versions: list[int]) -> list[int]:
        return self.version_policy.get(model, VersionPolicy()).select(versions)

    def inference_threads(self) -> int:
        """Threads that run inference calls: as many as the worker's share of the CPUs holds at
        `intra_op_threads` each; more would only contend for the same cores."""
        return max(1, available_cpus() // self.workers // self.intra_op_threads)


def available_cpus() -> int:
    """CPUs this process may use: its affinity mask, capped by a cgroup CPU quota (containers),
    never the host's core count."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = _cgroup_quota()
    return max(1, min(cpus, math.ceil(quota))) if quota else cpus


def _cgroup_quota() -> float | None:
    v2 = Path("/sys/fs/cgroup/cpu.max")  # "max 100000" or "200000 100000"
    if v2.is_file():
        quota, period = v2.read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    v1_quota, v1_period = (
        Path("/sys/fs/cgroup/cpu/cpu.cfs_quota_us"),
        Path("/sys/fs/cgroup/cpu/cpu.cfs_period_us"),
    )
    if v1_quota.is_file() and v1_period.is_file():
        quota = int(v1_quota.read_text())
        return None if quota <= 0 else quota / int(v1_period.read_text())
    return None
