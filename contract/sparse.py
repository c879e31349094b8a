"""Encoded text kept sparse: a review is a few hundred of 50,000 n-gram columns, 25,000 reviews a
few megabytes as (row, column, value) entries; the dense rows are made only for the batch that
runs (service) or trains (trainer). NumPy only."""

from __future__ import annotations

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

    def write(self, out: np.ndarray) -> None:
        """Into `out`, zeros of this shape."""
        out[self.rows, self.columns] = self.values

    def dense(self, dtype: np.dtype = np.float32) -> np.ndarray:
        out = np.zeros(self.shape, dtype=dtype)
        self.write(out)
        return out
