"""`ahead`: an iterator's items made in a thread of its own, ahead of the caller that uses them;
`mapped_ahead`: a function of each item, in several threads."""

from __future__ import annotations

import queue
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
U = TypeVar("U")


def ahead(items: Iterator[T], depth: int = 1) -> Iterator[T]:
    """`items`, produced in a thread up to `depth` items ahead of the caller, so that producing
    the next overlaps the caller's work on this one: worth it where either side releases the GIL
    (NumPy, zlib, onnxruntime). The caller holds one item, the queue `depth` and the thread makes
    the next: an iterator that reuses buffers needs `depth + 2` of them. An exception in the
    thread is raised in the caller's; a caller that stops early stops the thread."""
    handoff: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def hand(item) -> bool:
        while not stop.is_set():
            try:
                handoff.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not hand(item):
                    return
            hand(done)
        except BaseException as error:  # raised again in the caller's thread
            hand(error)

    thread = threading.Thread(target=produce, name="ahead", daemon=True)
    thread.start()
    try:
        while (item := handoff.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        thread.join()


def mapped_ahead(
    function: Callable[[T], U], items: Iterable[T], threads: int = 2, depth: int = 4
) -> Iterator[U]:
    """`function` of each item, in order, computed by `threads` threads at most `depth` items
    ahead of the caller: for work that releases the GIL most of the time (NumPy on arrays of
    thousands), so that it uses several cores."""
    with ThreadPoolExecutor(threads) as pool:
        pending: deque = deque()
        for item in items:
            pending.append(pool.submit(function, item))
            if len(pending) > depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
