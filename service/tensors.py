"""Named tensors that share their first dimension: a request's inputs to a model that is not a
model of rows (several inputs, any datatype), and a batch's outputs of it; and a sparse text
model's inputs (ids and weights) read as the entries of its rows (`sparse_rows`).

The batcher merges requests along the first dimension where the model's config allows it
(`ModelConfig.batchable`) and their other dimensions agree (`signature`); a model that cannot be
batched runs each request as it is: one part, whatever its first dimension.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from contract.sparse import SparseRows
from service.errors import BadInputError


@dataclass(frozen=True)
class Tensors:
    arrays: dict[str, np.ndarray]
    batched: bool = True  # False: the first dimension is not a batch; one part, never cut

    def __len__(self) -> int:
        if not self.batched:
            return 1
        return len(next(iter(self.arrays.values())))

    def __getitem__(self, part: slice) -> Tensors:
        if not self.batched:
            return self
        return Tensors({name: array[part] for name, array in self.arrays.items()})

    @property
    def signature(self) -> tuple:
        """What must agree for two requests to run as one batch: each tensor's datatype and
        dimensions after the first."""
        return tuple((name, a.dtype.str, a.shape[1:]) for name, a in self.arrays.items())

    @staticmethod
    def concatenate(parts: Sequence[Tensors]) -> Tensors:
        if len(parts) == 1:
            return parts[0]
        return Tensors(
            {name: np.concatenate([p.arrays[name] for p in parts]) for name in parts[0].arrays}
        )


def sparse_rows(inputs: dict[str, np.ndarray], width: int, fields: dict[str, str]) -> SparseRows:
    """A sparse text model's `ids` [n, k] (each row's columns, padded with `width`) and, where
    it takes them, `weights` [n, k], as the entries of its rows, checked: ids within
    [0, width], weights finite and of the ids' shape."""
    ids, weights = inputs["ids"], inputs.get("weights")
    if weights is not None and weights.shape != ids.shape:
        raise BadInputError(
            f"weights of shape {list(weights.shape)} for ids of shape {list(ids.shape)}: "
            "one weight per id",
            fields["weights"],
        )
    if ids.size and (ids.min() < 0 or ids.max() > width):
        outside = ids[(ids < 0) | (ids > width)][0]
        raise BadInputError(
            f"id {outside} is not a column: ids are in [0, {width - 1}], and {width} pads a row",
            fields["ids"],
        )
    if weights is not None and not np.isfinite(weights).all():
        raise BadInputError("weights must be finite numbers", fields["weights"])
    return SparseRows.from_padded(ids, weights, width)
