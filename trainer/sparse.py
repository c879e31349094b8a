"""Training inputs that are dense rows or `SparseRows`, taken apart and batched alike."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

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


def sparse_feed(rows: SparseRows, inputs: Sequence[str]) -> dict[str, np.ndarray]:
    """Rows as a sparse model takes them (`TextEncoding.form`): `SparseRows.padded`, the ids and,
    where the model has that input, the weights."""
    ids, weights = rows.padded()
    return {name: {"ids": ids, "weights": weights}[name] for name in inputs}


def batches(
    x: Inputs, inputs: Sequence[str], batch_size: int = 1024
) -> Iterator[np.ndarray | dict[str, np.ndarray]]:
    """x's rows as a graph of these inputs takes them, a batch at a time: dense rows, or a sparse
    model's padded ids (and weights) by name."""
    if inputs[0] != "ids":
        yield from dense_batches(x, batch_size)
        return
    for start in range(0, len(x), batch_size):
        yield sparse_feed(rows_of(x, start, min(start + batch_size, len(x))), inputs)
