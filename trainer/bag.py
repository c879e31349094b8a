"""The first layer of a sparse text model: an embedding bag, which is Dense over the dense row
computed from each row's non-zero columns only.

A row comes as ids [n, k] (its columns, padded with the id `dim`) and, unless the encoding is
binary, weights [n, k] (their values, 0 where padded). The layer gathers one table row per id and
sums them weighted: ids and weights are the dense row x, and sum_j w_j · table[id_j] + bias is
x @ kernel + bias with kernel = table[:dim]. The table has one more row, `dim`, for the padding.

A recipe may scale each row's weights to unit L2 norm first (`normalize`, in the served graph
too). While training, padding is masked out (binary: the weight of an id is 1 unless it is the pad
id) and an optional per-column scale s multiplies the weights (the recipe's training values are
s[column] × the encoding's value: e.g. a naive-Bayes ratio learned from the training rows).
`fold()` makes the layer what is served, with the same answers: table[column] × s[column], the pad
row zero, no scale and no mask; a binary model then needs no weights: Gather → ReduceSum, a
weighted one Gather → MatMul ([n, 1, k] @ [n, k, units]), the fastest forms onnxruntime runs
(reports/sparse_graphs.md).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from contract.sparse import SparseRows


class EmbeddingBag(keras.layers.Layer):
    """activation(sum of the weighted table rows of the ids + bias); see the module's docstring."""

    def __init__(
        self,
        dim: int,
        units: int,
        activation=None,
        scale: np.ndarray | None = None,
        initializer="uniform",  # as keras.layers.Embedding initialises its table
        normalize: bool = False,  # each row's weights to unit L2 norm first (training and served)
    ):
        super().__init__()
        self.dim, self.units, self.normalize = dim, units, normalize
        self.activation = keras.activations.get(activation)
        self.table = self.add_weight((dim + 1, units), initializer, name="table")
        self.bias = self.add_weight((units,), "zeros", name="bias")
        # A constant, not a weight: once folded it is gone from the model, and from what is
        # exported. The pad id's scale is 0: padding weighs nothing, masked or not.
        self.scale = None if scale is None else np.append(scale, 0).astype(np.float32)
        self.folded = False  # read when the model is traced for export

    def call(self, ids, weights=None):
        if self.normalize:
            weights = weights / ops.sqrt(ops.sum(weights * weights, axis=1, keepdims=True) + 1e-12)
        # tf.gather, not keras.ops.take: take maps negative ids to the end, which adds 9 nodes to
        # the ONNX graph (its Gather wraps negative ids by itself).
        gathered = tf.gather(self.table, ids)  # [n, k, units]
        if not self.folded:
            if weights is None:
                weights = ops.cast(ops.not_equal(ids, self.dim), self.table.dtype)
            if self.scale is not None:
                weights = weights * tf.gather(self.scale, ids)
        if weights is None:  # folded and binary: the pad row is zero
            summed = ops.sum(gathered, axis=1)
        else:
            summed = ops.squeeze(ops.matmul(ops.expand_dims(weights, 1), gathered), 1)
        return self.activation(summed + self.bias)

    def fold(self) -> None:
        """The served form, answering as before: the scale multiplied into the table, the pad row
        zero; no scale nor mask from here on."""
        table = ops.convert_to_numpy(self.table)
        if self.scale is not None:
            table = table * self.scale[:, None]
        table[self.dim] = 0
        self.table.assign(table)
        self.scale, self.folded = None, True


def bags(model: keras.Model) -> list[EmbeddingBag]:
    """The embedding bags of a model and of the models inside it (an ensemble's members)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found += bags(layer)
        elif isinstance(layer, EmbeddingBag):
            found.append(layer)
    return found


def naive_bayes_ratio(x: SparseRows, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """Each column's log-count ratio between the positive and the negative rows of a binary task
    (Wang & Manning, 2012): log((p / |p|₁) / (q / |q|₁)), p = alpha + the number of positive rows
    the column occurs in, q the same over the negative rows."""
    positive = (np.asarray(y).reshape(len(x), -1)[:, 0] > 0.5)[x.rows]
    p = alpha + np.bincount(x.columns[positive], minlength=x.shape[1])
    q = alpha + np.bincount(x.columns[~positive], minlength=x.shape[1])
    return (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)
