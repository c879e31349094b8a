"""Encoded text kept sparse: a 50,000-column n-gram encoding of 25,000 reviews needs megabytes as
(row, column, value) triples, and is made dense one batch at a time. NumPy only, so that
`trainer evaluate` runs without TensorFlow."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SparseRows:
    """Row-major (rows, columns, values) of a float32 matrix with `shape`."""

    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, start: int, stop: int) -> SparseRows:
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

    def dense(self) -> np.ndarray:
        out = np.zeros(self.shape, dtype=np.float32)
        out[self.rows, self.columns] = self.values
        return out


Inputs = np.ndarray | SparseRows


def rows_of(x: Inputs, start: int, stop: int) -> Inputs:
    return x.take(start, stop) if isinstance(x, SparseRows) else x[start:stop]


def rows_except(x: Inputs, start: int, stop: int) -> Inputs:
    return x.drop(start, stop) if isinstance(x, SparseRows) else np.delete(x, slice(start, stop), 0)


def dense_batches(x: Inputs, batch_size: int = 1024) -> Iterator[np.ndarray]:
    for start in range(0, len(x), batch_size):
        part = rows_of(x, start, min(start + batch_size, len(x)))
        yield part.dense() if isinstance(part, SparseRows) else part
