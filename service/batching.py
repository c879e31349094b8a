"""Adaptive batching: concurrent requests to one model version are merged into one inference call.

One worker task per model version takes requests from a queue. It takes everything already waiting
(up to `max_batch_size` rows): requests that arrive while a batch runs form the next one, so
batches grow with the load and a lone client waits for nobody. With `max_wait_ms` > 0 it also
waits that long for more, but only while traffic is concurrent (the last batch merged several
requests), which helps when requests arrive spread out rather than all at once.

Where a call runs: a batch that this model ran in under `inline_below_ms` last time (per batch
size, in powers of two) runs on the event loop; a slower or unmeasured one runs in the inference
thread pool (onnxruntime releases the GIL there). Handing a call to a thread and back costs two
thread wake-ups, more than a small model's whole inference.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from concurrent.futures import Executor

import numpy as np

from service.settings import Batching


class BatcherClosedError(RuntimeError):
    pass


class Batcher:
    def __init__(
        self,
        run: Callable[[np.ndarray], np.ndarray],
        settings: Batching,
        executor: Executor,
        on_batch: Callable[[int, float], None] = lambda rows, seconds: None,
        on_queue: Callable[[int], None] = lambda depth: None,
    ):
        self._run = run
        self.settings = settings
        self._executor = executor
        self._on_batch = on_batch
        self._on_queue = on_queue
        self._queue: asyncio.Queue[tuple[np.ndarray, asyncio.Future]] = asyncio.Queue()
        self._carry: tuple[np.ndarray, asyncio.Future] | None = None
        self._worker: asyncio.Task | None = None
        self._in_flight = 0
        self._last_batch_requests = 1
        self._closed = False
        self._seconds: dict[int, float] = {}  # recent run time by batch size bucket

    @staticmethod
    def _bucket(rows: int) -> int:
        return rows.bit_length()  # 1; 2-3; 4-7; ...

    async def submit(self, rows: np.ndarray) -> np.ndarray:
        """The model's output rows for `rows`, computed alone or merged with concurrent requests."""
        if self._closed:
            raise BatcherClosedError("this model version is being unloaded")
        self._in_flight += 1
        try:
            if not self.settings.enabled:
                return await self._execute(rows)
            future = asyncio.get_running_loop().create_future()
            self._queue.put_nowait((rows, future))
            self._on_queue(self._queue.qsize())
            if self._worker is None:
                self._worker = asyncio.create_task(self._work())
            return await future
        finally:
            self._in_flight -= 1

    async def _execute(self, batch: np.ndarray) -> np.ndarray:
        bucket = self._bucket(len(batch))
        expected = self._seconds.get(bucket)
        if expected is not None and expected * 1000 < self.settings.inline_below_ms:
            out, seconds = self._timed_run(batch)
        else:
            loop = asyncio.get_running_loop()
            out, seconds = await loop.run_in_executor(self._executor, self._timed_run, batch)
        self._seconds[bucket] = seconds if expected is None else 0.8 * expected + 0.2 * seconds
        self._on_batch(len(batch), seconds)
        return out

    def _timed_run(self, batch: np.ndarray) -> tuple[np.ndarray, float]:
        started = time.perf_counter()
        out = self._run(batch)
        return out, time.perf_counter() - started

    async def _work(self) -> None:
        while True:
            batch = await self._collect()
            self._on_queue(self._queue.qsize())
            self._last_batch_requests = len(batch)
            sizes = [len(rows) for rows, _ in batch]
            try:
                out = await self._execute(np.concatenate([rows for rows, _ in batch]))
            except Exception as error:  # every waiting request gets the failure
                for _, future in batch:
                    if not future.done():
                        future.set_exception(error)
                continue
            for (_, future), part in zip(batch, np.split(out, np.cumsum(sizes)[:-1]), strict=True):
                if not future.done():  # the client may have gone away
                    future.set_result(part)

    async def _collect(self) -> list[tuple[np.ndarray, asyncio.Future]]:
        first = self._carry or await self._queue.get()
        self._carry = None
        batch, rows = [first], len(first[0])
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
            if rows + len(item[0]) > limit:
                self._carry = item  # first in the next batch
                break
            batch.append(item)
            rows += len(item[0])
        return batch

    async def close(self, timeout: float) -> None:
        """Refuses new requests, lets the queued and running ones finish (up to `timeout`)."""
        self._closed = True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._in_flight and loop.time() < deadline:
            await asyncio.sleep(0.01)
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
