"""Encoded text kept sparse: a review is a few hundred of 50,000 n-gram columns, 25,000 reviews a
few megabytes as (row, column, value) entries. A dense model gets dense rows made for the batch
that runs (service) or trains (trainer); a sparse one gets each row's entries as padded ids and
weights (`padded`), the input form `TextEncoding.form = "sparse"` describes. NumPy only."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SparseRows:
    """The non-zero entries of a matrix of `shape`, in row-major order."""

    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, part: slice) -> SparseRows:
        start, stop, _ = part.indices(len(self))
        return self.take(start, stop)

    def take(self, start: int, stop: int) -> SparseRows:
        """Rows [start, stop)."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        return SparseRows(
            self.rows[lo:hi] - start,
            self.columns[lo:hi],
            self.values[lo:hi],
            (stop - start, self.shape[1]),
        )

    def drop(self, start: int, stop: int) -> SparseRows:
        """All rows except [start, stop)."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        rows = np.concatenate([self.rows[:lo], self.rows[hi:] - (stop - start)])
        return SparseRows(
            rows,
            np.concatenate([self.columns[:lo], self.columns[hi:]]),
            np.concatenate([self.values[:lo], self.values[hi:]]),
            (self.shape[0] - (stop - start), self.shape[1]),
        )

    @staticmethod
    def concatenate(parts: Sequence[SparseRows]) -> SparseRows:
        """The parts' rows, one after another (all of one width)."""
        if len(parts) == 1:
            return parts[0]
        offsets = np.cumsum([0, *(len(p) for p in parts[:-1])])
        return SparseRows(
            np.concatenate([p.rows + offset for p, offset in zip(parts, offsets, strict=True)]),
            np.concatenate([p.columns for p in parts]),
            np.concatenate([p.values for p in parts]),
            (sum(len(p) for p in parts), parts[0].shape[1]),
        )

    def counts(self) -> np.ndarray:
        """The number of entries of each row."""
        return np.bincount(self.rows, minlength=len(self))

    def padded(
        self, width: int | None = None, rows: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Each row's entries as (ids int64 [n, k], values float32 [n, k]), in order, then the pad
        id (`shape[1]`: one past the last column) with value 0; k is the longest row's count
        (at least 1), or `width` where given (at least that). `rows`: only these rows, in this
        order (a part of a batch), read in place."""
        counts = self.counts()
        starts = np.cumsum(counts) - counts
        if rows is not None:
            counts, starts = counts[rows], starts[rows]
        k = max(1, int(counts.max(initial=0)), width or 0)
        ids = np.full((len(counts), k), self.shape[1], np.int64)
        values = np.zeros((len(counts), k), np.float32)
        row = np.repeat(np.arange(len(counts)), counts)
        position = np.arange(row.size) - np.repeat(np.cumsum(counts) - counts, counts)
        entry = starts[row] + position
        ids[row, position] = self.columns[entry]
        values[row, position] = self.values[entry]
        return ids, values

    @classmethod
    def from_padded(cls, ids: np.ndarray, values: np.ndarray | None, width: int) -> SparseRows:
        """`padded`'s inverse: the entries of ids [n, k] (in [0, width], `width` the pad id) and
        their values (None: 1 each); pad ids are left out."""
        kept = ids != width
        rows = np.repeat(np.arange(len(ids)), kept.sum(axis=1))
        entries = np.ones(rows.size, np.float32) if values is None else values[kept]
        return cls(rows, ids[kept], entries.astype(np.float32, copy=False), (len(ids), width))

    def write(self, out: np.ndarray) -> None:
        """Into `out`, zeros of this shape."""
        out[self.rows, self.columns] = self.values

    def dense(self, dtype: np.dtype = np.float32) -> np.ndarray:
        out = np.zeros(self.shape, dtype=dtype)
        self.write(out)
        return out
