"""Memory admission: what a request's body will cost once parsed and encoded, reserved before the
memory is allocated, in one budget for every transport.

A body's cost is counted by what it holds, not guessed from its size alone: a JSON number becomes a
Python object, its list entry and its array entries (`NUMBER_BYTES`), a word id also its n-gram
codes (`WORD_ID_BYTES`), a character of text its share of the words and ids made of it
(`TEXT_CHAR_BYTES`); binary tensor data costs its size, its array and its copy in a batch; a number
sent to a sparse text model (an id, or its weight) also its entry in the batch (`ENTRY_BYTES`). Commas
count the elements: one pass over the bytes, no parsing. The constants were
measured with `python -m loadtest memory` (peak resident memory of one request of each
kind, less the idle process).

A request reserves the worst case its declared length allows before it is read (a JSON number
takes at least two bytes, "0,"), then, read, gives back what its counted elements do not need.
Reservations wait in arrival order; none waits while it holds memory, so none can block another
for good. A compressed body reserves its compressed bytes, is measured by inflating it once
without keeping the output, then waits for what it will cost like any other.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import deque
from collections.abc import Iterator
from enum import Enum

from service import heap
from service.errors import BadInputError, Kind, ServiceError, UnavailableError

NUMBER_BYTES = 48
WORD_ID_BYTES = 64
TEXT_CHAR_BYTES = 24
# an id sent to a sparse text model, also an entry (row, column, value) of its batch
ENTRY_BYTES = 32
BINARY_COPIES = 3  # the body, its array, the array's copy in a batch
# A request that reserved at least this much trims the heap when the budget falls back to zero.
TRIM_AFTER_BYTES = 16 * 1024 * 1024
# Content-Encoding → zlib's wbits ("deflate" is the zlib format, as tritonclient sends it).
DECOMPRESSORS = {"gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}
INFLATE_CHUNK = 256 * 1024


class BodyKind(Enum):
    """What a route's JSON body holds, and so what it costs."""

    NUMBERS = "numbers"  # JSON tensors: V2, V1, houses
    ENTRIES = "entries"  # JSON tensors of ids (and weights) for a sparse text model
    TEXTS = "texts"  # raw texts, or word ids (the typed text routes take either)

    def json_cost(self, length: int, commas: int) -> int:
        """Memory to parse and encode `length` bytes of JSON holding `commas` commas."""
        elements = commas + 1
        if self is BodyKind.NUMBERS:
            return length + elements * NUMBER_BYTES
        if self is BodyKind.ENTRIES:
            return length + elements * (NUMBER_BYTES + ENTRY_BYTES)
        return length + max(elements * WORD_ID_BYTES, length * TEXT_CHAR_BYTES)


def cost(kind: BodyKind, length: int, commas: int, binary_from: int | None = None) -> int:
    """What a body of `length` bytes costs, whose JSON (up to `binary_from`, where its binary
    tensor data begins, if it has any) holds `commas` commas."""
    json_length = length if binary_from is None else min(binary_from, length)
    copies = BINARY_COPIES + (ENTRY_BYTES // 4 if kind is BodyKind.ENTRIES else 0)  # per byte
    return kind.json_cost(json_length, commas) + (length - json_length) * copies


def worst_cost(kind: BodyKind, length: int, binary_from: int | None = None) -> int:
    """The cost of the costliest body of `length` bytes: an element every two bytes ("0,")."""
    json_length = length if binary_from is None else min(binary_from, length)
    return cost(kind, length, json_length // 2, binary_from)


def body_cost(kind: BodyKind, body: bytes, binary_from: int | None = None, offset: int = 0) -> int:
    """What `body` costs; or a part of a body, from `offset`, as it arrives."""
    json_from = None if binary_from is None else max(binary_from - offset, 0)
    json_length = len(body) if json_from is None else min(json_from, len(body))
    return cost(kind, len(body), body.count(b",", 0, json_length), json_from)


class MemoryBudget:
    """The bytes that requests in flight may hold, reserved before their bodies are read or
    parsed and given back when they are answered. Requests that do not fit wait in arrival
    order; the reaper ends a wait at the request's deadline. A reservation larger than the whole
    budget is cut to it: that request runs alone."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0
        self._trim = False  # a large reservation ended since the budget was last empty
        self._waiting: deque[tuple[int, asyncio.Future]] = deque()

    async def reserve(self, holder, amount: int) -> None:
        """`amount` more for `holder` (anything with a `memory` attribute), waiting its turn."""
        amount = min(amount, self.limit)
        if not self._waiting and self.used + amount <= self.limit:
            self._take(holder, amount)
            return
        granted = asyncio.get_running_loop().create_future()
        entry = (amount, granted)
        self._waiting.append(entry)
        try:
            await granted
        except asyncio.CancelledError:
            if granted.done() and not granted.cancelled():  # granted as it was cancelled
                holder.memory += amount
            elif entry in self._waiting:
                self._waiting.remove(entry)
            raise
        holder.memory += amount

    async def replace(self, holder, amount: int) -> None:
        """Gives back what `holder` holds, then waits for `amount`: a reservation that must grow
        never waits while it holds memory (two such could wait for each other)."""
        self.release(holder)
        await self.reserve(holder, amount)

    def grow(self, holder, amount: int) -> None:
        """More for a holder that cannot wait (a body without a declared length, arriving): it
        is refused when the budget is full."""
        if self.used + amount > self.limit:
            raise UnavailableError(
                "the service's request memory is full; retry later, or send Content-Length so "
                "that the request can wait its turn",
                "body",
            )
        self._take(holder, amount)

    def shrink(self, holder, amount: int) -> None:
        """Cuts `holder`'s reservation to `amount`, once what it really needs is known."""
        excess = holder.memory - min(amount, self.limit)
        if excess > 0:
            holder.memory -= excess
            self.used -= excess
            self._grant()

    def _take(self, holder, amount: int) -> None:
        self.used += amount
        holder.memory += amount

    def release(self, holder) -> None:
        self._trim |= holder.memory >= TRIM_AFTER_BYTES
        self.used -= holder.memory
        holder.memory = 0
        self._grant()
        if not self.used and self._trim:
            self._trim = False
            heap.trim()  # what the large requests used goes back to the system

    def _grant(self) -> None:
        while self._waiting and self.used + self._waiting[0][0] <= self.limit:
            amount, granted = self._waiting.popleft()
            if not granted.done():
                self.used += amount
                granted.set_result(None)


def inflate(data: bytes, encoding: str, limit: int) -> Iterator[bytes]:
    """The decompressed body in chunks: every gzip member (a body may hold several, RFC 1952),
    never more than `limit` bytes in all (a zip bomb is a 413, not a worker out of memory);
    bytes after the last member, or a member cut short, are a 400."""
    rest, size = data, 0
    while True:
        stream = zlib.decompressobj(DECOMPRESSORS[encoding])
        while not stream.eof:
            try:
                chunk = stream.decompress(rest, INFLATE_CHUNK)
            except zlib.error as error:
                raise BadInputError(f"not valid {encoding} data: {error}", "body") from None
            rest = stream.unconsumed_tail
            if not chunk and not rest:
                break  # no input left, no output: the member is cut short
            size += len(chunk)
            if size > limit:
                raise ServiceError(
                    f"the body exceeds {limit} bytes once decompressed", "body", Kind.TOO_LARGE
                )
            yield chunk
        if not stream.eof:
            raise BadInputError(f"the {encoding} data ends early", "body")
        rest = stream.unused_data
        if not rest:
            return
        if encoding != "gzip" or not rest.startswith(b"\x1f\x8b"):
            raise BadInputError(f"{len(rest)} bytes follow the {encoding} data", "body")


def measure_compressed(
    data: bytes, encoding: str, limit: int, binary_from: int | None = None
) -> tuple[int, int]:
    """The decompressed length of a body and the commas of its JSON (before `binary_from`),
    without keeping what it inflates to."""
    length = commas = 0
    for chunk in inflate(data, encoding, limit):
        json_end = (
            len(chunk) if binary_from is None else max(min(binary_from - length, len(chunk)), 0)
        )
        commas += chunk.count(b",", 0, json_end)
        length += len(chunk)
    return length, commas


def decompress(data: bytes, encoding: str, limit: int) -> bytes:
    return b"".join(inflate(data, encoding, limit))
