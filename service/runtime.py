"""One onnxruntime session per model version: execution providers, threads, and `run(batch)`.

onnxruntime falls back to the CPU without a word when a provider such as CUDA cannot start; this
class reads back the providers the session really uses, logs them, and refuses to start when
`require_providers` is set and one is missing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort

from contract.config import ModelConfig, RepositoryError

log = logging.getLogger(__name__)

# onnxruntime logs through its own logger to stderr, in colour, not through `logging`: a line that
# is not JSON among the service's JSON lines. Only its errors get through; the service logs what it
# needs itself (the providers a session really uses, below). Its one warning at import, before this
# can be set, is the images' concern (XDG_CACHE_HOME in docker/service.Dockerfile).
_ORT_ERROR = 3
ort.set_default_logger_severity(_ORT_ERROR)

_NUMPY_TYPES = {"FP32": np.float32, "FP64": np.float64, "INT32": np.int32, "INT64": np.int64}
_ORT_TYPES = {"FP32": "tensor(float)", "FP64": "tensor(double)", "INT32": "tensor(int32)",
              "INT64": "tensor(int64)"}  # fmt: skip


class ProviderError(RuntimeError):
    """A required execution provider is not available."""


class OnnxRuntime:
    def __init__(
        self,
        path: Path,
        config: ModelConfig,
        providers: list[str],
        threads: int,
        require_providers: bool = False,
    ):
        available = ort.get_available_providers()
        usable = [p for p in providers if p in available]
        if require_providers and len(usable) < len(providers):
            missing = [p for p in providers if p not in available]
            raise ProviderError(
                f"{config.name}/{config.version}: execution providers {missing} are not available "
                f"(onnxruntime offers {available}); unset SERVICE_REQUIRE_PROVIDERS to fall back"
            )
        options = ort.SessionOptions()
        options.log_severity_level = _ORT_ERROR
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Idle intra-op threads would spin, taking the CPU that the event loop needs for HTTP.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(path), options, providers=usable or ["CPUExecutionProvider"]
            )
        except Exception as error:  # onnxruntime raises its own exception types for bad files
            raise RepositoryError(f"{path} cannot be loaded by onnxruntime: {error}") from None
        self.providers = self.session.get_providers()
        fallen_back = [p for p in providers if p not in self.providers]
        if fallen_back:
            if require_providers:
                raise ProviderError(
                    f"{config.name}/{config.version}: onnxruntime could not start {fallen_back}"
                )
            log.warning(
                "%s/%s: execution providers %s unavailable, running on %s",
                config.name, config.version, fallen_back, self.providers,
            )  # fmt: skip
        self._check_signature(path, config)
        (self.input,) = config.inputs
        (self.output,) = config.outputs
        self.dtype = _NUMPY_TYPES[self.input.datatype]

    def _check_signature(self, path: Path, config: ModelConfig) -> None:
        for kind, found, expected in (
            ("inputs", self.session.get_inputs(), config.inputs),
            ("outputs", self.session.get_outputs(), config.outputs),
        ):
            actual = [
                (t.name, t.type, [d if isinstance(d, int) else -1 for d in t.shape]) for t in found
            ]
            wanted = [(s.name, _ORT_TYPES[s.datatype], s.shape) for s in expected]
            if actual != wanted:
                raise RepositoryError(
                    f"{path}: graph {kind} are {actual}, its config names {wanted}"
                )

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Runs one batch (onnxruntime releases the GIL while it runs, so a thread may call it)."""
        return self.session.run([self.output.name], {self.input.name: batch})[0]
