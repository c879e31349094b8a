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
from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument

from contract.config import DATATYPE_OF_ONNX, NUMPY_OF_DATATYPE, ModelConfig, RepositoryError
from contract.sparse import SparseRows
from service.errors import BadInputError

log = logging.getLogger(__name__)

# onnxruntime logs through its own logger to stderr, in colour, not through `logging`: a line that
# is not JSON among the service's JSON lines. Only its errors get through; the service logs what it
# needs itself (the providers a session really uses, below). Its one warning at import, before this
# can be set, is the images' concern (XDG_CACHE_HOME in docker/service.Dockerfile).
_ORT_ERROR = 3
ort.set_default_logger_severity(_ORT_ERROR)

# A run that fails is answered (see run_tensors), not logged by onnxruntime in its own format.
_QUIET = ort.RunOptions()
_QUIET.log_severity_level = 4
# A large call of a sparse model grows onnxruntime's memory arena for shapes that may not come
# again (the ids' padding): given back after it, as the heap gives back a large request's.
_SHRINK = ort.RunOptions()
_SHRINK.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")


# The table rows one call of a sparse text model gathers (its padded ids × `gathered_width`
# floats): past about a megabyte they leave the CPU's cache, and a batch of 64 newswires of
# Reuters version 3 (256 floats an id) took 165 µs a text in one call, 9 in calls of 1,024 ids.
SPARSE_CALL_BYTES = 1 << 20
GATHERED_WIDTH = 64  # assumed where a config does not say


class ProviderError(RuntimeError):
    """A required execution provider is not available."""


class OnnxRuntime:
    """A model version's session. `bind` it to the version's config (completed from
    `signature()` where the folder has none) before running it."""

    def __init__(
        self, path: Path, providers: list[str], threads: int, require_providers: bool = False
    ):
        self.path = path
        label = f"{path.parent.parent.name}/{path.parent.name}"
        available = ort.get_available_providers()
        usable = [p for p in providers if p in available]
        if require_providers and len(usable) < len(providers):
            missing = [p for p in providers if p not in available]
            raise ProviderError(
                f"{label}: execution providers {missing} are not available "
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
                raise ProviderError(f"{label}: onnxruntime could not start {fallen_back}")
            log.warning(
                "%s: execution providers %s unavailable, running on %s",
                label, fallen_back, self.providers,
            )  # fmt: skip

    def signature(self) -> dict:
        """The graph's inputs and outputs as a model config names them (V2 datatypes, -1 for a
        dimension the graph leaves open), or a RepositoryError naming what cannot be served."""
        return {
            kind: [self._spec(kind, t) for t in tensors]
            for kind, tensors in (
                ("inputs", self.session.get_inputs()),
                ("outputs", self.session.get_outputs()),
            )
        }

    def _spec(self, kind: str, tensor) -> dict:
        datatype = DATATYPE_OF_ONNX.get(tensor.type)
        if datatype is None:
            raise RepositoryError(
                f"{self.path}: {kind[:-1]} '{tensor.name}' is a {tensor.type}, which the V2 "
                f"protocol has no datatype for (served: {', '.join(DATATYPE_OF_ONNX)})"
            )
        shape = tensor.shape if isinstance(tensor.shape, list) else []
        return {
            "name": tensor.name,
            "datatype": datatype,
            "shape": [d if isinstance(d, int) and d >= 0 else -1 for d in shape],
        }

    def bind(self, config: ModelConfig) -> OnnxRuntime:
        """Checks that `config` names the graph's tensors as they are; keeps it."""
        graph = self.signature()
        for kind, expected in (("inputs", config.inputs), ("outputs", config.outputs)):
            wanted = [s.model_dump() for s in expected]
            if graph[kind] != wanted:
                raise RepositoryError(
                    f"{self.path}: graph {kind} are {graph[kind]}, its config names {wanted}"
                )
        self.config = config
        self.input, self.output = config.inputs[0], config.outputs[0]
        self.input_names = [spec.name for spec in config.inputs]
        width = getattr(config.encoding, "gathered_width", None) or GATHERED_WIDTH
        self.call_entries = max(1, SPARSE_CALL_BYTES // (4 * width))  # padded ids a call
        self.dtype = NUMPY_OF_DATATYPE[self.input.datatype]
        return self

    def run(self, batch: np.ndarray) -> np.ndarray:
        """Runs one batch of a one-input model, its first output (onnxruntime releases the GIL
        while it runs, so a thread may call it)."""
        return self.session.run([self.output.name], {self.input.name: batch})[0]

    def run_sparse(self, batch: SparseRows) -> np.ndarray:
        """Runs one batch of a sparse text model (`TextEncoding.form`): its rows' entries as ids
        padded to the longest row (and their weights, where the graph takes them); its output.
        Each padded entry costs the graph a row of its tables, gathered: a batch whose padding
        would gather more than `SPARSE_CALL_BYTES` runs in parts of rows of similar length, so
        that one long text neither pads every other row to its length nor makes a call that
        large."""
        counts = batch.counts()
        if len(batch) * max(1, int(counts.max(initial=0))) <= self.call_entries:
            return self._run_padded(batch)
        order = np.argsort(counts, kind="stable")
        parts, start = [], 0
        while start < len(order):  # the longest row of a part is its last
            fits = (np.arange(1, len(order) - start + 1) * counts[order[start:]].clip(1)) <= (
                self.call_entries
            )
            stop = start + max(1, int(np.argmin(fits)) if not fits.all() else len(fits))
            parts.append((order[start:stop], self._run_padded(batch, order[start:stop])))
            start = stop
        out = np.empty((len(batch), *parts[0][1].shape[1:]), parts[0][1].dtype)
        for rows, answers in parts:
            out[rows] = answers
        return out

    def _run_padded(self, batch: SparseRows, rows: np.ndarray | None = None) -> np.ndarray:
        feeds = dict(zip(self.input_names, batch.padded(rows=rows), strict=False))
        large = feeds["ids"].size > self.call_entries // 4
        return self.session.run([self.output.name], feeds, _SHRINK if large else None)[0]

    def run_tensors(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Every output of the graph for `feeds`, by name. What a graph refuses at run time
        (an index out of range, a shape it cannot reshape) depends on the input: a 400."""
        names = [s.name for s in self.config.outputs]
        try:
            return dict(zip(names, self.session.run(names, feeds, _QUIET), strict=True))
        except (InvalidArgument, Fail) as error:
            reason = str(error).rpartition("Status Message: ")[2].strip()
            raise BadInputError(
                f"the model cannot run on these inputs: {reason}", "inputs"
            ) from None
