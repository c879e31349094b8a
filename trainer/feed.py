"""The training rows as tf.data datasets, as a model's inputs take them: dense rows, or a sparse
model's ids (and weights) padded per batch."""

from __future__ import annotations

from collections.abc import Sequence

import keras
import numpy as np
import tensorflow as tf

from contract.sparse import SparseRows
from trainer.sparse import Inputs


def one_or_all(tensors: Sequence):
    """A model of one input is given its tensor alone, as the published versions were."""
    return tensors[0] if len(tensors) == 1 else tensors


def input_names(model: keras.Model) -> list[str]:
    return [tensor.name for tensor in model.inputs]


def dataset(
    x: Inputs,
    y: np.ndarray,
    batch_size: int,
    shuffle_seed: int | None,
    inputs: Sequence[str] = ("encoded_text",),
) -> tf.data.Dataset:
    """The rows as a model of these `inputs` takes them, in batches (shuffled with the seed):
    dense rows (`SparseRows` made dense batch by batch), or for a sparse model (inputs `ids` and
    maybe `weights`) each row's columns and values padded to the batch's longest row."""
    sparse_model = isinstance(x, SparseRows) and inputs[0] == "ids"
    if sparse_model:
        entries = {"ids": x.columns, "weights": x.values}
        ragged = tuple(tf.RaggedTensor.from_row_lengths(entries[n], x.counts()) for n in inputs)
        data = tf.data.Dataset.from_tensor_slices((one_or_all(ragged), y))
    elif isinstance(x, SparseRows):
        tensor = tf.SparseTensor(np.stack([x.rows, x.columns], axis=1), x.values, x.shape)
        data = tf.data.Dataset.from_tensor_slices((tensor, y))
    else:
        data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    if sparse_model:
        pad = {"ids": x.shape[1], "weights": 0.0}  # the pad id is one past the last column

        def padded(features, labels):
            tensors = [features] if len(inputs) == 1 else features
            dense = [t.to_tensor(pad[name]) for name, t in zip(inputs, tensors, strict=True)]
            return one_or_all(tuple(dense)), labels

        return data.ragged_batch(batch_size).map(padded).prefetch(tf.data.AUTOTUNE)
    data = data.batch(batch_size)
    if isinstance(x, SparseRows):
        data = data.map(lambda features, labels: (tf.sparse.to_dense(features), labels))
    return data.prefetch(tf.data.AUTOTUNE)
