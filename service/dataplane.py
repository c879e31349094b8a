"""The data plane: what every protocol's request goes through, written once.

A request crosses: wire format → data plane → wire format. The protocol modules (`service/api/`)
only translate; here live

- the `Call`: one request's deadline (server default, or less where the request asks), the model
  versions it leased, the memory it reserved, all given back when its answer has been written;
- lookup and lease (`lease`): a reload or unload never fails a request admitted before it;
- the body (`read_body`, `decode`): the size limit, memory admission, and decoding off the event
  loop when the body is large;
- the checks of input rows (shape, rows, text lengths, datatype, finiteness) and of texts, before
  they are admitted (`infer`, `infer_texts`, `infer_word_ids`);
- batching, through each version's `Batcher` (bounded queue, deadline checked before compute): raw
  texts are encoded there, a batch's texts at once, off the event loop when they are long;
- the reaper: a request past its deadline, or still running when the shutdown's drain time is
  over, is cancelled and answered (504 or 503), never left hanging;
- where tracing is on (`service.tracing`), the "decode" span of a request, and the "encode" span
  of word ids (the batcher records that of raw texts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
from opentelemetry.trace import Tracer

from contract.sparse import SparseRows
from contract.text import WordIds
from service import tracing
from service.admission import (
    BodyKind,
    MemoryBudget,
    body_cost,
    cost,
    decompress,
    measure_compressed,
    worst_cost,
)
from service.batching import TextRows
from service.errors import (
    BadInputError,
    DeadlineExceededError,
    Kind,
    ServiceError,
    UnavailableError,
)
from service.heap import settle_heap, trim
from service.metrics import Metrics
from service.registry import LoadedModel, Registry
from service.settings import Settings, available_cpus
from service.tensors import Tensors, sparse_rows

log = logging.getLogger(__name__)
T = TypeVar("T")

REAPER_INTERVAL_S = 0.05  # how often deadlines are looked at: the precision of a 504
# How long the process is idle (no call in flight) before the C heap's free pages go back to the
# system: what connections and refused requests used is not counted in the memory budget, whose
# own trim follows large requests only. A trim of an idle heap takes microseconds.
IDLE_TRIM_S = 2.0
SWITCH_INTERVAL_S = 0.001
# Encoding a character of text costs about as much as parsing this many bytes of JSON: texts are
# encoded in a thread from an eighth of the size at which bodies are decoded there.
ENCODING_COST = 8


class ClientDisconnectedError(Exception):
    """The client left before its request was read: there is no one to answer."""


class Call:
    """One request's passage through the data plane."""

    __slots__ = ("answering", "deadline", "leases", "memory", "model", "reason", "started", "task")

    def __init__(self, started: float, timeout_s: float):
        self.started = started  # time.monotonic() when its headers had arrived
        self.deadline = started + timeout_s
        self.task: asyncio.Task | None = None
        self.leases: list[LoadedModel] = []
        self.memory = 0  # bytes reserved in the data plane's memory budget
        self.model: LoadedModel | None = None  # the version that answers it, for metrics
        self.answering = False  # its answer is being written: too late to cancel it
        self.reason: str | None = None  # why the data plane cancelled it

    def shorten(self, timeout_s: float) -> None:
        """The request asks for a deadline of its own (V2 `parameters.timeout`)."""
        self.deadline = min(self.deadline, self.started + timeout_s)

    def cancel(self, reason: str) -> None:
        if self.reason is None and self.task is not None and not self.answering:
            self.reason = reason
            self.task.cancel()


class DataPlane:
    def __init__(self, settings: Settings, metrics: Metrics, tracer: Tracer | None = None):
        self.settings = settings
        self.metrics = metrics
        self.tracer = tracer  # None: tracing is off
        self.registry = Registry(settings, metrics, tracer)
        self.memory = MemoryBudget(settings.request_memory_bytes)
        metrics.sampled(lambda: metrics.request_memory.set(self.memory.used))
        self._offload = ThreadPoolExecutor(available_cpus(), thread_name_prefix="decode")
        self._calls: set[Call] = set()
        self._reaper: asyncio.Task | None = None
        self._offloaded = 0  # calls running in the offload threads
        self._switch_interval = sys.getswitchinterval()
        self._poller: asyncio.Task | None = None
        self.drain_deadline: float | None = None
        self._on_drain: list[Callable[[], None]] = []

    # -- lifecycle

    def load(self) -> None:
        self.registry.load_all()

    def start(self) -> None:
        self._reaper = asyncio.create_task(self._reap())
        if self.settings.poll_interval_s:
            self._poller = asyncio.create_task(self._poll())

    @property
    def ready(self) -> bool:
        """Serving, not draining, and able to take a connection: a process out of file
        descriptors cannot accept one, and must not say it is ready for traffic."""
        return self._reaper is not None and self.drain_deadline is None and _descriptor_free()

    def on_drain(self, callback: Callable[[], None]) -> None:
        """`callback()` when the drain begins: a listener of another protocol (gRPC) stops
        accepting at the same moment as the HTTP one."""
        self._on_drain.append(callback)

    def drain(self) -> None:
        """The server stops: not ready any more; what is still running when the drain time is
        over is answered 503."""
        if self.drain_deadline is None:
            self.drain_deadline = time.monotonic() + self.settings.drain_timeout_s
            log.info("draining %d requests in flight", len(self._calls))
            for callback in self._on_drain:
                callback()

    async def close(self) -> None:
        for task in (self._poller, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        await self.registry.close()
        self._offload.shutdown(wait=False, cancel_futures=True)

    async def _poll(self) -> None:
        """Repository polling: the service serves what the repository holds (`Registry.sync`)."""
        while True:
            await asyncio.sleep(self.settings.poll_interval_s)
            try:
                if await self.registry.sync():
                    settle_heap()
            except Exception:  # a repository that cannot be read now may be readable next time
                log.exception("polling the model repository failed")

    async def _reap(self) -> None:
        idle_since = time.monotonic()
        while True:
            await asyncio.sleep(REAPER_INTERVAL_S)
            if self.metrics.multiprocess:
                self.metrics.refresh()  # what the other workers' /metrics read of this one
            now = time.monotonic()
            if self._calls:
                idle_since = None
            elif idle_since is None:
                idle_since = now
            elif now - idle_since >= IDLE_TRIM_S:
                trim()
                idle_since = now
            draining = self.drain_deadline is not None and now >= self.drain_deadline
            for call in list(self._calls):
                if draining:
                    call.cancel("shutdown")
                elif now >= call.deadline:
                    call.cancel("deadline")

    # -- calls

    def begin(self) -> Call:
        call = Call(time.monotonic(), self.settings.request_timeout_s)
        call.task = asyncio.current_task()
        self._calls.add(call)
        return call

    def end(self, call: Call) -> None:
        """The call's answer has been written (or its client has gone): its leases and memory
        are given back."""
        self._calls.discard(call)
        for model in call.leases:
            model.release()
        if call.memory:
            self.memory.release(call)
        if call.reason is not None and call.model is not None:
            labels = {"model": call.model.name, "version": str(call.model.version)}
            self.metrics.dropped.labels(**labels, reason=call.reason).inc()

    def lease(self, call: Call, name: str, version: int | str | None = None) -> LoadedModel:
        """The loaded version that answers this call (the newest where none is named), held until
        the answer is written."""
        model = self.registry.get(name, version)
        model.lease()
        call.leases.append(model)
        call.model = model
        return model

    # -- bodies

    async def read_body(
        self,
        call: Call,
        receive,
        declared_length: int | None,
        kind: BodyKind,
        encoding: str = "identity",
        binary_from: int | None = None,
    ) -> bytes:
        """The whole body, decompressed, within the size limit, the memory that parsing and
        encoding it will take reserved first (`service.admission`): the worst case its declared
        length allows, cut to what its elements need once it is read. `binary_from`: where its
        binary tensor data begins."""
        limit = self.settings.max_body_bytes
        compressed = encoding != "identity"
        if declared_length is not None:
            if declared_length > limit:
                self._refuse_too_large(limit)
            worst = (
                declared_length if compressed else worst_cost(kind, declared_length, binary_from)
            )
            await self.memory.reserve(call, worst)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                call.reason = "disconnected"
                raise ClientDisconnectedError("the client closed the connection mid-body")
            chunk = message.get("body", b"")
            if size + len(chunk) > limit:
                self._refuse_too_large(limit)
            if declared_length is None:  # counted as it comes; the whole budget at most
                grown = len(chunk) if compressed else body_cost(kind, chunk, binary_from, size)
                self.memory.grow(call, min(grown, self.memory.limit - call.memory))
            chunks.append(chunk)
            size += len(chunk)
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        if not compressed:
            self.memory.shrink(call, body_cost(kind, body, binary_from))
            return body
        # Compressed: measured without keeping what it inflates to, then admitted as any body.
        length, commas = await self.decode(
            body, lambda data: measure_compressed(data, encoding, limit, binary_from)
        )
        await self.memory.replace(call, len(body) + cost(kind, length, commas, binary_from))
        return await self.decode(body, lambda data: decompress(data, encoding, limit))

    def _refuse_too_large(self, limit: int) -> None:
        self.metrics.refused.labels("too_large").inc()
        raise ServiceError(f"the body exceeds {limit} bytes", "body", Kind.TOO_LARGE)

    async def decode(self, body: bytes, parse: Callable[[bytes], T]) -> T:
        """`parse(body)`, in a thread when the body is large: parsing megabytes of JSON would
        hold up every other client."""
        with tracing.span(self.tracer, "decode"):
            if len(body) <= self.settings.offload_above_bytes:
                return parse(body)
            return await self._off_the_loop(parse, body)

    async def _off_the_loop(self, work: Callable[..., T], *args) -> T:
        """`work(*args)` in a thread. Meanwhile the GIL changes hands every 1 ms instead of 5:
        decoding and encoding hold it through pure-Python work, and the event loop must answer
        other clients between their slices (at other times a shorter interval would only cost
        switches between the event loop and the inference threads)."""
        if not self._offloaded:
            sys.setswitchinterval(SWITCH_INTERVAL_S)
        self._offloaded += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._offload, work, *args)
        finally:
            self._offloaded -= 1
            if not self._offloaded:
                sys.setswitchinterval(self._switch_interval)

    # -- inference

    def check_shape(
        self, model: LoadedModel, shape: Sequence[int], shape_field: str, field: str
    ) -> None:
        """A tensor of `shape` fits the model's input, [rows, columns] with rows within the limit,
        before any memory is given to it."""
        columns = model.row_size
        if len(shape) != 2 or any(d < 0 for d in shape):
            raise BadInputError(
                f"expected a 2-d shape [rows, columns], got {list(shape)}", shape_field
            )
        if shape[0] > self.settings.max_batch_rows:
            self.check_rows(shape[0], shape_field)
        if shape[1] != columns:
            raise BadInputError(f"expected shape [N, {columns}], got {list(shape)}", field)

    def check_rows(self, count: int, field: str, what: str = "rows") -> None:
        limit = self.settings.max_batch_rows
        if count > limit:
            raise BadInputError(f"{count} {what} exceed the limit of {limit}", field)
        if count == 0:
            raise BadInputError("the batch is empty", field)

    async def infer(
        self, call: Call, model: LoadedModel, rows: np.ndarray, field: str
    ) -> np.ndarray:
        """Output rows for input rows of the model's shape."""
        if rows.ndim != 2 or rows.shape[1] != model.row_size:
            raise BadInputError(
                f"expected shape [N, {model.row_size}], got {list(rows.shape)}", field
            )
        self.check_rows(rows.shape[0], field)
        with np.errstate(over="ignore"):  # values beyond the datatype's range become infinity
            rows = rows.astype(model.runtime.dtype, copy=False)
        if not np.isfinite(rows).all():
            datatype = model.config.inputs[0].datatype
            raise BadInputError(f"contains NaN, infinity or values beyond {datatype}", field)
        return await model.batcher.submit(rows, call.deadline)

    async def infer_tensors(
        self,
        call: Call,
        model: LoadedModel,
        inputs: dict[str, np.ndarray],
        fields: dict[str, str] | None = None,
    ) -> dict[str, np.ndarray]:
        """Every output of a model of named tensors (`LoadedModel.takes_rows` false), for inputs
        the transport checked against its config (`service.inference`); `fields`: where the
        request holds each input, for errors. Requests to a model that batches are merged along
        the first dimension, which all its inputs share; a sparse text model's rows are merged
        as entries, whatever each request's padding."""
        if model.sparse:
            fields = fields or {name: f"inputs.{name}" for name in inputs}
            ids = inputs["ids"]
            self.check_rows(len(ids), fields["ids"])
            if ids.size > self.settings.max_sparse_entries:
                raise BadInputError(
                    f"{ids.size} ids exceed the limit of {self.settings.max_sparse_entries}",
                    fields["ids"],
                )
            rows = sparse_rows(inputs, model.row_size, fields)
            output = await model.batcher.submit(rows, call.deadline)
            return {model.output_names[0]: output}
        batched = model.batchable
        if batched:
            sizes = {array.shape[0] for array in inputs.values()}
            if len(sizes) != 1:
                raise BadInputError(
                    f"the inputs' first dimensions (the batch) differ: {sorted(sizes)}", "inputs"
                )
            self.check_rows(sizes.pop(), "inputs")
        outputs = await model.batcher.submit(Tensors(inputs, batched), call.deadline)
        return outputs.arrays

    async def infer_texts(
        self, call: Call, model: LoadedModel, texts: list[str], field: str
    ) -> np.ndarray:
        """Output rows for raw texts, encoded as the model was trained. The batcher encodes them,
        with the texts of the other requests in their batch."""
        encoder = self._encoder(model)
        self._check_items(texts, field, "characters")

        def encode(batch_texts: list[str]) -> SparseRows:
            return encoder.sparse_rows(encoder.word_ids_batch(batch_texts))

        offload = sum(map(len, texts)) * ENCODING_COST > self.settings.offload_above_bytes
        return await model.batcher.submit(TextRows(texts, encode, offload), call.deadline)

    async def infer_word_ids(
        self, call: Call, model: LoadedModel, sequences: list[list[int]], field: str
    ) -> np.ndarray:
        """Output rows for texts already encoded as word ids; ids beyond the model's vocabulary
        count as out of vocabulary."""
        encoder = self._encoder(model)
        self._check_items(sequences, field, "word ids")
        oov, limit = encoder.encoding.oov_id, encoder.encoding.num_words
        with tracing.span(self.tracer, "encode"):
            try:
                ids = WordIds.from_sequences(sequences)
            except OverflowError:  # ids beyond int64: out of vocabulary all the same
                ids = WordIds.from_sequences([[min(i, limit) for i in s] for s in sequences])
            rows = encoder.sparse_rows(ids.capped(limit, oov))
        return await model.batcher.submit(rows, call.deadline)

    def _check_items(self, items: Sequence[Sequence], field: str, unit: str) -> None:
        """Texts or id sequences: within the batch limit, and each within the length limit."""
        self.check_rows(len(items), field, "items")
        limit = self.settings.max_text_chars
        for i, item in enumerate(items):
            if len(item) > limit:
                raise BadInputError(
                    f"{len(item)} {unit} exceed the limit of {limit}", f"{field}[{i}]"
                )

    @staticmethod
    def _encoder(model: LoadedModel):
        if model.encoder is None:
            raise BadInputError(f"model '{model.name}' does not take text", "model")
        return model.encoder


def deadline_error(call: Call) -> ServiceError:
    """What a call the data plane cancelled is answered (a call whose client left gets none)."""
    if call.reason == "shutdown":
        return UnavailableError("the service is shutting down; send the request again")
    waited = time.monotonic() - call.started
    return DeadlineExceededError(f"the request's deadline passed after {waited:.3f} s")


def _descriptor_free() -> bool:
    try:
        os.close(os.open(os.devnull, os.O_RDONLY))
    except OSError:
        return False
    return True
