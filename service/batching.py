"""Adaptive batching: concurrent requests to one model version are merged into one inference call.

One worker task per model version takes requests from a bounded queue. It takes everything already
waiting (up to `max_batch_size` rows): requests that arrive while a batch runs form the next one,
so batches grow with the load and a lone client waits for nobody. With `max_wait_ms` > 0 it also
waits that long for more, but only while traffic is concurrent (the last batch merged several
requests), which helps when requests arrive spread out rather than all at once. A request larger
than `max_batch_size` rows runs in parts of that size, so no call needs more memory than one batch.

Before a batch runs, requests whose deadline has passed get `DeadlineExceededError`, and requests
whose caller stopped waiting (the client left, or the data plane gave up on it) are skipped:
neither is computed. A full queue refuses new requests with `UnavailableError` (503 with
Retry-After).

Raw texts (`TextRows`) are encoded when their batch runs, the texts of all its requests in one
encoder call: batching merges the encoding, not only the inference. How the parts become one batch
is the version's `merge`: dense rows (`assemble`), or a sparse text model's entries
(`SparseRows.concatenate`, padded to the batch's longest row when it runs).

Where a call runs: a batch that this model ran in under `inline_below_ms` last time (per batch
size, in powers of two) runs on the event loop; a slower or unmeasured one, or one with texts long
enough to be `offload`ed, runs in the inference thread pool (onnxruntime releases the GIL there).
Handing a call to a thread and back costs two thread wake-ups, more than a small model's whole
inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
from opentelemetry.context import Context
from opentelemetry.trace import Tracer

from contract.sparse import SparseRows
from service import tracing
from service.errors import DeadlineExceededError, UnavailableError
from service.settings import Batching
from service.tensors import Tensors


@dataclass(frozen=True)
class TextRows:
    """A request's raw texts, one input row each once `encode`d; `offload`: they are long enough
    that the batch that encodes them must run off the event loop."""

    texts: list[str]
    encode: Callable[[list[str]], SparseRows]
    offload: bool = False

    def __len__(self) -> int:
        return len(self.texts)

    def __getitem__(self, part: slice) -> TextRows:
        return TextRows(self.texts[part], self.encode, self.offload)


Rows = np.ndarray | SparseRows | TextRows | Tensors
Batch = np.ndarray | SparseRows | Tensors  # what a model version runs: `merge`d parts


def encode_texts(parts: Sequence[Rows]) -> list[np.ndarray | SparseRows]:
    """The parts with the texts of all `TextRows` encoded in one call (one batch is one model
    version: one encoder)."""
    text_parts = [p for p in parts if isinstance(p, TextRows)]
    encoded = text_parts[0].encode([text for p in text_parts for text in p.texts])
    out, start = [], 0
    for part in parts:
        if isinstance(part, TextRows):
            out.append(encoded[start : start + len(part)])
            start += len(part)
        else:
            out.append(part)
    return out


def assemble(parts: Sequence[np.ndarray | SparseRows], dtype: np.dtype) -> np.ndarray:
    """One batch of the parts' rows, in order, as dense rows of `dtype`."""
    if all(isinstance(p, np.ndarray) for p in parts):
        return parts[0] if len(parts) == 1 else np.concatenate(parts)
    first = parts[0]
    width = first.shape[1]
    out = np.zeros((sum(len(p) for p in parts), width), dtype)
    start = 0
    for part in parts:
        view = out[start : start + len(part)]
        if isinstance(part, SparseRows):
            part.write(view)
        else:
            view[:] = part
        start += len(part)
    return out


class _Request:
    __slots__ = ("deadline", "future", "queued_at", "rows", "trace")

    def __init__(
        self,
        rows: Rows,
        future: asyncio.Future | None,  # None: run at once (batching off)
        deadline: float | None,
        trace: Context | None,  # the caller's, the parent of its spans; None: not traced
    ):
        self.rows = rows
        self.future = future
        self.deadline = deadline
        self.queued_at = time.monotonic()
        self.trace = trace


class Batcher:
    def __init__(
        self,
        run: Callable[[Batch], np.ndarray | Tensors],
        merge: Callable[[list[np.ndarray | SparseRows | Tensors]], Batch],
        settings: Batching,
        executor: Executor,
        on_batch: Callable[[int, float, list[float]], None] = lambda rows, seconds, waited: None,
        on_drop: Callable[[str], None] = lambda reason: None,
        tracer: Tracer | None = None,
        span_attributes: dict[str, str] | None = None,
    ):
        self._run = run
        self._merge = merge
        self.settings = settings
        self._executor = executor
        self._on_batch = on_batch
        self._on_drop = on_drop
        self._tracer = tracer
        self._span_attributes = span_attributes or {}
        self._queue: asyncio.Queue[_Request] = asyncio.Queue()
        self._carry: _Request | None = None
        self._worker: asyncio.Task | None = None
        self._running = 0  # calls running while batching is off
        self._last_batch_requests = 1
        self._closed = False
        self._seconds: dict[int, float] = {}  # recent CPU time of a run by batch size bucket

    @staticmethod
    def _bucket(rows: int) -> int:
        return rows.bit_length()  # 1; 2-3; 4-7; ...

    @property
    def waiting(self) -> int:
        """Requests waiting for their turn (batching off: running)."""
        return self._queue.qsize() if self.settings.enabled else self._running

    async def submit(self, rows: Rows, deadline: float | None = None) -> np.ndarray:
        """The model's output rows for `rows`, computed alone or merged with concurrent requests;
        not computed if its turn comes after `deadline` (time.monotonic()). Cancelling the caller
        takes the request out of the queue."""
        if self._closed:
            raise UnavailableError("this model version was unloaded; send the request again")
        if self.waiting >= self.settings.max_queue_size:
            self._on_drop("queue_full")
            raise UnavailableError(
                f"the model's queue is full ({self.settings.max_queue_size} requests); retry later"
            )
        size = self.settings.max_batch_size
        if len(rows) <= size:
            return await self._submit_part(rows, deadline)
        parts = [rows[start : start + size] for start in range(0, len(rows), size)]
        outputs = [await self._submit_part(part, deadline) for part in parts]
        return (
            Tensors.concatenate(outputs) if isinstance(rows, Tensors) else np.concatenate(outputs)
        )

    async def _submit_part(self, rows: Rows, deadline: float | None) -> np.ndarray:
        if not self.settings.enabled:
            self._check(deadline)
            self._running += 1
            try:
                return await self._execute([self._request(rows, None, deadline)])
            finally:
                self._running -= 1
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(self._request(rows, future, deadline))
        if self._worker is None:
            self._worker = asyncio.create_task(self._work())
        return await future

    def _check(self, deadline: float | None) -> None:
        if deadline is not None and time.monotonic() >= deadline:
            self._on_drop("deadline")
            raise DeadlineExceededError("the request's deadline passed before it could run")

    def _request(
        self, rows: Rows, future: asyncio.Future | None, deadline: float | None
    ) -> _Request:
        trace = tracing.current() if self._tracer is not None else None
        return _Request(rows, future, deadline, trace)

    async def _execute(self, batch: list[_Request]) -> np.ndarray:
        """Runs the requests' rows as one batch."""
        parts = [r.rows for r in batch]
        rows = sum(len(p) for p in parts)
        bucket = self._bucket(rows)
        expected = self._seconds.get(bucket)
        offload = any(isinstance(p, TextRows) and p.offload for p in parts)
        if not offload and expected is not None and expected * 1000 < self.settings.inline_below_ms:
            out, started, encoded, ended, cpu = self._timed_run(parts)
        else:
            loop = asyncio.get_running_loop()
            out, started, encoded, ended, cpu = await loop.run_in_executor(
                self._executor, self._timed_run, parts
            )
        self._seconds[bucket] = cpu if expected is None else 0.8 * expected + 0.2 * cpu
        queued_at = [r.queued_at for r in batch]
        self._on_batch(rows, ended - encoded, [started - queued for queued in queued_at])
        if self._tracer is not None:
            attributes = {**self._span_attributes, "batch.size": rows, "batch.requests": len(batch)}
            tracing.record_batch(
                self._tracer,
                [r.trace for r in batch],
                queued_at,
                [isinstance(p, TextRows) for p in parts],
                (started, encoded, ended),
                attributes,
            )
        return out

    def _timed_run(self, parts: list[Rows]) -> tuple[np.ndarray, float, float, float, float]:
        """The output; when (time.monotonic()) the run started, its texts were encoded, and it
        ended; and the CPU time it took: what decides where the next batch of its size runs,
        since in a thread the clock also counts the wait for the GIL while the event loop runs,
        and a batch timed that way would never come back inline."""
        started = encoded = time.monotonic()
        cpu = time.thread_time()
        if any(isinstance(p, TextRows) for p in parts):
            parts = encode_texts(parts)
            encoded = time.monotonic()
        out = self._run(self._merge(parts))
        return out, started, encoded, time.monotonic(), time.thread_time() - cpu

    async def _work(self) -> None:
        while True:
            # The batch lives in _answer's frame only: once it is answered, nothing keeps its rows
            # (an IMDB batch: up to 16 MB) while this loop waits for the next one.
            await self._answer(self._runnable(await self._collect()))

    async def _answer(self, batch: list[_Request]) -> None:
        if not batch:
            return
        self._last_batch_requests = len(batch)
        try:
            out = await self._execute(batch)
        except asyncio.CancelledError:  # closed while this batch ran
            self._fail(batch, UnavailableError("this model version was unloaded mid-run"))
            raise
        except Exception as error:
            if len(batch) > 1:  # one request's input may fail a batch: each runs on its own
                for request in batch:
                    await self._answer([request])
                self._last_batch_requests = len(batch)
                return
            self._fail(batch, error)
            return
        if len(batch) == 1:  # the whole output (of a model that is not batched: not rows)
            if not batch[0].future.done():
                batch[0].future.set_result(out)
            return
        start = 0
        for request in batch:
            stop = start + len(request.rows)
            if not request.future.done():  # the client may have gone away meanwhile
                request.future.set_result(out[start:stop])
            start = stop

    @staticmethod
    def _fail(batch: list[_Request], error: Exception) -> None:
        for request in batch:
            if not request.future.done():
                request.future.set_exception(error)

    def _runnable(self, batch: list[_Request]) -> list[_Request]:
        """The requests of `batch` still worth running; the others are answered or dropped."""
        now = time.monotonic()
        runnable = []
        for request in batch:
            if request.future.done():  # cancelled: its caller stopped waiting
                continue
            if request.deadline is not None and now >= request.deadline:
                self._on_drop("deadline")
                request.future.set_exception(
                    DeadlineExceededError("the request's deadline passed while it waited its turn")
                )
            else:
                runnable.append(request)
        return runnable

    async def _collect(self) -> list[_Request]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], len(first.rows)
        limit = self.settings.max_batch_size
        wait = self.settings.max_wait_ms / 1000 if self._last_batch_requests > 1 else 0.0
        deadline = asyncio.get_running_loop().time() + wait
        while rows < limit:
            try:
                if self._queue.empty() and wait:
                    remaining = deadline - asyncio.get_running_loop().time()
                    item = await asyncio.wait_for(self._queue.get(), max(remaining, 0))
                else:
                    item = self._queue.get_nowait()
            except (asyncio.QueueEmpty, TimeoutError):
                break
            if rows + len(item.rows) > limit or _signature(item.rows) != _signature(first.rows):
                self._carry = item  # first in the next batch
                break
            batch.append(item)
            rows += len(item.rows)
        return batch

    async def close(self) -> None:
        """Refuses new requests and answers those still queued with `UnavailableError`. The
        registry closes a version only when no request holds it, so normally none are left."""
        self._closed = True
        left = [self._carry] if self._carry else []
        while not self._queue.empty():
            left.append(self._queue.get_nowait())
        self._fail(left, UnavailableError("this model version was unloaded before the request ran"))
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker


def _signature(rows: Rows) -> tuple | None:
    """Requests whose signatures differ do not share a batch (tensors of other shapes)."""
    return rows.signature if isinstance(rows, Tensors) else None
