"""The models being served: every version in the repository, loaded at start-up, reloadable and
unloadable while the service runs.

A request takes a reference to one `LoadedModel` and keeps it until it is answered, so a reload or
unload swaps the registry's entry at once and lets requests in flight finish on the old version.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from service.batching import Batcher
from service.encoding import TextEncoder, TextEncoding
from service.errors import BadInputError, NotFoundError, ServiceError
from service.metrics import Metrics
from service.repository import ONNX_FILE, ModelConfig, RepositoryError, list_versions, read_config
from service.runtime import OnnxRuntime
from service.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    config: ModelConfig
    folder: Path
    runtime: OnnxRuntime
    batcher: Batcher
    encoder: TextEncoder | None = field(default=None)

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def version(self) -> int:
        return self.config.version

    @property
    def row_size(self) -> int:
        return self.config.inputs[0].shape[-1]

    async def predict(self, rows: np.ndarray, field_name: str = "inputs") -> np.ndarray:
        """Output rows for input rows of the model's shape; validation happens here, once, for
        every protocol."""
        if rows.ndim != 2 or rows.shape[1] != self.row_size:
            raise BadInputError(
                f"expected shape [N, {self.row_size}], got {list(rows.shape)}", field_name
            )
        if rows.shape[0] == 0:
            raise BadInputError("the batch is empty", field_name)
        with np.errstate(over="ignore"):  # values beyond the datatype's range become infinity
            rows = rows.astype(self.runtime.dtype, copy=False)
        if not np.isfinite(rows).all():
            datatype = self.config.inputs[0].datatype
            raise BadInputError(f"contains NaN, infinity or values beyond {datatype}", field_name)
        return await self.batcher.submit(rows)


class Registry:
    def __init__(self, settings: Settings, metrics: Metrics):
        self.settings = settings
        self.metrics = metrics
        self.models: dict[str, dict[int, LoadedModel]] = {}
        self.unavailable: dict[tuple[str, int], str] = {}  # why a version failed to (re)load
        self._executor = ThreadPoolExecutor(
            settings.inference_threads(), thread_name_prefix="inference"
        )
        self._lock = asyncio.Lock()

    def load_all(self) -> None:
        """Start-up: every version of every model, or an exception naming the broken file."""
        versions = list_versions(self.settings.model_repository)
        if not versions:
            raise RepositoryError(
                f"model repository {self.settings.model_repository} has no models"
            )
        for name, numbers in versions.items():
            if not numbers:
                raise RepositoryError(f"{self.settings.model_repository / name} has no versions")
            self.models[name] = {v: self._open(name, v) for v in numbers}
        self._count()
        settle_heap()

    def _open(self, name: str, version: int) -> LoadedModel:
        folder = Path(self.settings.model_repository) / name / str(version)
        config = read_config(folder)
        runtime = OnnxRuntime(
            folder / ONNX_FILE,
            config,
            self.settings.providers,
            self.settings.threads(),
            self.settings.require_providers,
        )
        encoder = (
            TextEncoder.load(config.encoding, folder)
            if isinstance(config.encoding, TextEncoding)
            else None
        )
        labels = {"model": name, "version": str(version)}
        batcher = Batcher(
            runtime.run,
            self.settings.batching_for(name),
            self._executor,
            on_batch=lambda rows, seconds: (
                self.metrics.batch_size.labels(**labels).observe(rows),
                self.metrics.inference.labels(**labels).observe(seconds),
            ),
            on_queue=self.metrics.queue_depth.labels(**labels).set,
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
        try:
            number = int(version)
        except (TypeError, ValueError):
            raise BadInputError(f"'{version}' is not a version number", "version") from None
        if number not in versions:
            raise NotFoundError(
                f"model '{name}' has no version {number} (loaded: {sorted(versions)})", "version"
            )
        return versions[number]

    async def load(self, name: str) -> list[int]:
        """(Re)loads every version of `name` from the repository without stopping the service."""
        async with self._lock:
            numbers = list_versions(self.settings.model_repository).get(name)
            if not numbers:
                raise NotFoundError(f"the repository has no versions of '{name}'", "model")
            try:
                fresh = {v: await asyncio.to_thread(self._open, name, v) for v in numbers}
            except (RepositoryError, RuntimeError) as error:
                for v in numbers:
                    self.unavailable[(name, v)] = str(error)
                raise ServiceError(400, f"loading '{name}' failed: {error}", "model") from None
            old = self.models.get(name, {})
            self.models[name] = fresh
            for v in numbers:
                self.unavailable.pop((name, v), None)
            self._count()
        await self._retire(old.values())
        settle_heap()
        return numbers

    async def unload(self, name: str) -> None:
        async with self._lock:
            old = self.models.pop(name, None)
            if old is None:
                raise NotFoundError(f"model '{name}' is not loaded", "model")
            self._count()
        await self._retire(old.values())
        settle_heap()

    async def _retire(self, models) -> None:
        await asyncio.gather(*(m.batcher.close(self.settings.drain_timeout_s) for m in models))

    async def close(self) -> None:
        await self._retire([m for versions in self.models.values() for m in versions.values()])
        self._executor.shutdown(wait=True)

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


def settle_heap() -> None:
    """Hides what is loaded from the cyclic garbage collector (`gc.freeze`): its full collections
    would otherwise walk every vocabulary entry, pauses of 10-20 ms under load. Collects first, so
    that what a reload or unload let go is freed, not frozen."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
