"""Training inputs that are dense rows or `SparseRows`, taken apart and batched alike."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from contract.sparse import SparseRows

Inputs = np.ndarray | SparseRows


def rows_of(x: Inputs, start: int, stop: int) -> Inputs:
    return x.take(start, stop) if isinstance(x, SparseRows) else x[start:stop]


def rows_except(x: Inputs, start: int, stop: int) -> Inputs:
    return x.drop(start, stop) if isinstance(x, SparseRows) else np.delete(x, slice(start, stop), 0)


def dense_batches(x: Inputs, batch_size: int = 1024) -> Iterator[np.ndarray]:
    for start in range(0, len(x), batch_size):
        part = rows_of(x, start, min(start + batch_size, len(x)))
        yield part.dense() if isinstance(part, SparseRows) else part
