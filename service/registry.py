"""The models being served: every version in the repository, loaded at start-up, reloadable and
unloadable while the service runs.

A request leases the version that answers it when it looks it up (`DataPlane.lease`) and returns
the lease once its answer is written. A reload or unload swaps the registry's entry at once, so
new requests find the new state; the old version is retired, its batcher closed and its session
freed, only when its last lease ends, so every request admitted before finishes on it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from opentelemetry.trace import Tracer

from contract.config import (
    ONNX_FILE,
    ModelConfig,
    RepositoryError,
    TensorSpec,
    list_versions,
    read_config,
)
from contract.numbers import VERSION_RULE, read_version
from contract.sparse import SparseRows
from contract.text import TextEncoder, TextEncoding
from service import tracing
from service.batching import Batcher, assemble
from service.errors import BadInputError, Kind, NotFoundError, ServiceError
from service.heap import settle_heap
from service.metrics import Metrics
from service.runtime import OnnxRuntime
from service.settings import Settings
from service.tensors import Tensors

log = logging.getLogger(__name__)


ROW_DATATYPES = ("FP32", "FP64", "INT32", "INT64")


def is_sparse_text(config: ModelConfig) -> bool:
    """Whether a model takes texts as each row's n-gram ids (and weights): its requests' rows are
    merged as entries (`SparseRows`), never as dense rows."""
    return isinstance(config.encoding, TextEncoding) and config.encoding.form == "sparse"


def _runner(config: ModelConfig, runtime: OnnxRuntime) -> tuple[Callable, Callable]:
    """How a version runs a batch, and how its requests' parts are merged into one."""
    if is_sparse_text(config):
        return runtime.run_sparse, SparseRows.concatenate
    if takes_rows(config):
        return runtime.run, partial(assemble, dtype=runtime.dtype)
    return lambda batch: Tensors(runtime.run_tensors(batch.arrays)), Tensors.concatenate


def takes_rows(config: ModelConfig) -> bool:
    """Whether a model takes rows of numbers and answers rows: one input of [-1, columns], one
    output, batched. Such a model (the book's three) has the short path: its input is one array
    of rows, merged with other requests' by the batcher as they come, checked finite. Any other
    model takes named tensors (`service.batching.Tensors`)."""
    spec = config.inputs[0]
    return (
        len(config.inputs) == len(config.outputs) == 1
        and spec.datatype in ROW_DATATYPES
        and len(spec.shape) == 2
        and spec.shape[1] > 0
        and config.batchable
    )


@dataclass(eq=False)
class LoadedModel:
    config: ModelConfig
    folder: Path
    runtime: OnnxRuntime
    batcher: Batcher
    encoder: TextEncoder | None = field(default=None)
    leases: int = 0
    # Read by every request: decided once.
    takes_rows: bool = field(init=False)
    sparse: bool = field(init=False)  # a sparse text model (`is_sparse_text`)
    batchable: bool = field(init=False)
    input_specs: dict[str, TensorSpec] = field(init=False, repr=False)
    input_names: list[str] = field(init=False, repr=False)
    output_names: list[str] = field(init=False, repr=False)
    _released: asyncio.Event | None = field(default=None, repr=False)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> int:
        return self.config.version

    @property
    def row_size(self) -> int:
        """Columns of an input row (a text model's: its encoding's, whatever its form)."""
        if isinstance(self.config.encoding, TextEncoding):
            return self.config.encoding.dim
        return self.config.inputs[0].shape[-1]

    def __post_init__(self) -> None:
        self.takes_rows = takes_rows(self.config)
        self.sparse = is_sparse_text(self.config)
        self.batchable = self.config.batchable
        self.input_specs = {spec.name: spec for spec in self.config.inputs}
        self.input_names = list(self.input_specs)
        self.output_names = [spec.name for spec in self.config.outputs]

    def lease(self) -> None:
        self.leases += 1

    def release(self) -> None:
        self.leases -= 1
        if not self.leases and self._released is not None:
            self._released.set()

    async def retire(self, timeout: float) -> None:
        """Waits (up to `timeout`) until no request holds this version, then closes its batcher;
        a request still queued after the timeout is answered 503."""
        if self.leases:
            self._released = asyncio.Event()
            try:
                await asyncio.wait_for(self._released.wait(), timeout)
            except TimeoutError:
                log.warning(
                    "%s/%s retired with %d requests still holding it",
                    self.name, self.version, self.leases,
                )  # fmt: skip
        await self.batcher.close()


class Registry:
    def __init__(self, settings: Settings, metrics: Metrics, tracer: Tracer | None = None):
        self.settings = settings
        self.metrics = metrics
        self.tracer = tracer
        self.models: dict[str, dict[int, LoadedModel]] = {}
        self.unavailable: dict[tuple[str, int], str] = {}  # why a version failed to (re)load
        self._executor = ThreadPoolExecutor(
            settings.inference_threads(), thread_name_prefix="inference"
        )
        self._lock = asyncio.Lock()
        self._retiring: set[asyncio.Task] = set()
        self._failed: dict[tuple[str, int], tuple] = {}  # broken versions: their files' stamp
        metrics.sampled(self._sample_queues)

    def load_all(self) -> None:
        """Start-up: the versions to serve of every model, or an exception naming the broken
        file."""
        versions = self._on_disk()
        if not versions:
            raise RepositoryError(
                f"model repository {self.settings.model_repository} has no models"
            )
        for name, numbers in versions.items():
            if not numbers:
                raise RepositoryError(f"{self.settings.model_repository / name} has no versions")
            loaded = {}
            for version in numbers:
                try:
                    loaded[version] = self._open(name, version)
                except RepositoryError as error:
                    if self.settings.strict_repository:
                        raise
                    self._not_served(name, version, error)
            if loaded:
                self.models[name] = loaded
        if not self.models:
            raise RepositoryError(
                "no version in the repository can be served: "
                + "; ".join(f"{n}/{v}: {why}" for (n, v), why in self.unavailable.items())
            )
        self._count()
        settle_heap()

    def _not_served(self, name: str, version: int, error: Exception) -> None:
        """A version that failed to load is named (log, repository index), and not tried again
        by polling until its files change."""
        folder = Path(self.settings.model_repository) / name / str(version)
        log.error("%s/%s is not served: %s", name, version, error)
        self.unavailable[(name, version)] = str(error)
        self._failed[(name, version)] = _stamp(folder)

    def _on_disk(self) -> dict[str, list[int]]:
        """Model → the versions in the repository that its version policy serves."""
        return {
            name: self.settings.versions_to_serve(name, numbers)
            for name, numbers in list_versions(self.settings.model_repository).items()
        }

    async def sync(self) -> bool:
        """Serves what the repository holds now (repository polling): versions that appeared are
        loaded beside the others, versions that went away are retired (their requests finish), a
        version that fails to load is reported and skipped, and tried again once its files
        change, while the others keep serving. True when a version was loaded."""
        loaded_any = False
        async with self._lock:
            on_disk = self._on_disk()
            for name in set(self.models) - set(on_disk):
                log.info("%s left the repository: unloaded", name)
                self._retire(self.models.pop(name).values())
            for name, numbers in on_disk.items():
                loaded = self.models.get(name, {})
                kept = {v: m for v, m in loaded.items() if v in numbers}
                self._retire([m for v, m in loaded.items() if v not in numbers])
                for version in sorted(set(numbers) - set(loaded)):
                    model = await self._try_open(name, version)
                    if model is not None:
                        kept[version] = model
                        loaded_any = True
                if kept:
                    self.models[name] = kept
                else:
                    self.models.pop(name, None)
            self._count()
        return loaded_any

    async def _try_open(self, name: str, version: int) -> LoadedModel | None:
        folder = Path(self.settings.model_repository) / name / str(version)
        stamp = _stamp(folder)
        if self._failed.get((name, version)) == stamp:
            return None  # broken, and unchanged since
        try:
            model = await asyncio.to_thread(self._open, name, version)
        except (RepositoryError, RuntimeError) as error:
            self._not_served(name, version, error)
            return None
        log.info("serving %s/%s", name, version)
        self.unavailable.pop((name, version), None)
        self._failed.pop((name, version), None)
        return model

    def _open(self, name: str, version: int) -> LoadedModel:
        folder = Path(self.settings.model_repository) / name / str(version)
        if not (folder / ONNX_FILE).is_file():
            raise RepositoryError(f"{folder / ONNX_FILE} is missing")
        runtime = OnnxRuntime(
            folder / ONNX_FILE,
            self.settings.providers,
            self.settings.intra_op_threads,
            self.settings.require_providers,
        )
        config = read_config(folder, runtime.signature())
        runtime.bind(config)
        encoder = None
        if isinstance(config.encoding, TextEncoding):
            vocabulary = folder / config.encoding.vocabulary_file
            try:
                encoder = TextEncoder.load(config.encoding, folder)
            except (OSError, ValueError, KeyError, TypeError) as error:
                raise RepositoryError(f"{vocabulary} cannot be read: {error}") from None
        labels = {"model": name, "version": str(version)}
        version_metrics = self.metrics.version(name, version)
        batching = self.settings.batching_for(name)
        if not config.batchable:
            batching = batching.model_copy(update={"enabled": False})
        batcher = Batcher(
            *_runner(config, runtime),
            batching,
            self._executor,
            on_batch=version_metrics.batch,
            on_drop=lambda reason: self.metrics.dropped.labels(**labels, reason=reason).inc(),
            tracer=self.tracer,
            span_attributes=tracing.model_attributes(name, version),
        )
        log.info(
            "loaded %s/%s (%s) on %s", name, version, config.task, ", ".join(runtime.providers)
        )
        return LoadedModel(config, folder, runtime, batcher, encoder)

    def get(self, name: str, version: int | str | None = None) -> LoadedModel:
        """A loaded version; the newest where none is given."""
        versions = self.models.get(name)
        if not versions:
            raise NotFoundError(f"model '{name}' is not loaded", "model")
        if version is None or version == "":
            return versions[max(versions)]
        number = version if isinstance(version, int) else read_version(version)
        if number is None:
            raise BadInputError(f"'{version}' is not a version: {VERSION_RULE}", "version")
        if number not in versions:
            raise NotFoundError(
                f"model '{name}' has no version {number} (loaded: {sorted(versions)})", "version"
            )
        return versions[number]

    async def load(self, name: str) -> list[int]:
        """(Re)loads the versions of `name` to serve from the repository without stopping the
        service."""
        async with self._lock:
            numbers = self._on_disk().get(name)
            if not numbers:
                raise NotFoundError(f"the repository has no versions of '{name}'", "model")
            try:
                fresh = {v: await asyncio.to_thread(self._open, name, v) for v in numbers}
            except (RepositoryError, RuntimeError) as error:
                for v in numbers:
                    self.unavailable[(name, v)] = str(error)
                raise ServiceError(
                    f"loading '{name}' failed: {error}", "model", Kind.LOAD_FAILED
                ) from None
            old = self.models.get(name, {})
            self.models[name] = fresh
            for v in numbers:
                self.unavailable.pop((name, v), None)
            self._count()
        self._retire(old.values())
        return numbers

    async def unload(self, name: str) -> None:
        async with self._lock:
            old = self.models.pop(name, None)
            if old is None:
                raise NotFoundError(f"model '{name}' is not loaded", "model")
            self._count()
        self._retire(old.values())

    def _retire(self, models) -> None:
        """Retires replaced or unloaded versions in the background: the load or unload call
        answers at once, the requests holding them finish, then their memory is freed."""
        if not models:
            return

        async def retire() -> None:
            await asyncio.gather(*(m.retire(self.settings.drain_timeout_s) for m in models))
            settle_heap()

        task = asyncio.create_task(retire())
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def retired(self) -> None:
        """Returns once every replaced or unloaded version has been retired and freed."""
        await asyncio.gather(*self._retiring)

    async def close(self) -> None:
        self._retire([m for versions in self.models.values() for m in versions.values()])
        self.models = {}
        await self.retired()
        self._executor.shutdown(wait=True)

    def _sample_queues(self) -> None:
        self.metrics.queues(
            {
                (name, v): model.batcher.waiting
                for name, vs in self.models.items()
                for v, model in vs.items()
            }
        )

    def _count(self) -> None:
        self.metrics.models_loaded.set(sum(len(v) for v in self.models.values()))

    def index(self) -> list[dict]:
        """Triton's repository index: every version in the repository with its state."""
        on_disk = list_versions(self.settings.model_repository)
        entries = []
        for name in sorted(set(on_disk) | set(self.models)):
            for version in sorted(set(on_disk.get(name, [])) | set(self.models.get(name, {}))):
                entry = {"name": name, "version": str(version)}
                if version in self.models.get(name, {}):
                    entry["state"] = "READY"
                else:
                    entry["state"] = "UNAVAILABLE"
                    entry["reason"] = self.unavailable.get((name, version), "unloaded")
                entries.append(entry)
        return entries


def _stamp(folder: Path) -> tuple:
    """What changes when a version folder's files do: their names, sizes and times."""
    try:
        return tuple(
            sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in folder.iterdir())
        )
    except OSError:
        return ()
