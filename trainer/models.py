"""One short function per architecture; the hyper-parameters come from a recipe's `Network`."""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np

from trainer.recipes import Network


def _dense_stack(x, network: Network):
    regularizer = keras.regularizers.l2(network.l2) if network.l2 else None
    if network.input_dropout:
        x = keras.layers.Dropout(network.input_dropout)(x)
    for units in network.hidden:
        x = keras.layers.Dense(units, network.activation, kernel_regularizer=regularizer)(x)
        if network.dropout:
            x = keras.layers.Dropout(network.dropout)(x)
    return x


def _averaged(x, head: Callable, members: int):
    """`members` independently initialised copies of `head` on one tensor, outputs averaged."""
    outputs = [head(x) for _ in range(members)]
    return outputs[0] if members == 1 else keras.layers.Average()(outputs)


def text_classifier(input_dim: int, classes: int, network: Network) -> keras.Model:
    """Encoded text → a Dense stack → sigmoid (2 classes) or softmax (more)."""
    units, activation = (1, "sigmoid") if classes == 2 else (classes, "softmax")
    inputs = keras.Input((input_dim,), name="encoded_text")
    outputs = _averaged(
        inputs,
        lambda x: keras.layers.Dense(units, activation)(_dense_stack(x, network)),
        network.members,
    )
    return keras.Model(inputs, outputs, name="text_classifier")


def price_regressor(mean: np.ndarray, variance: np.ndarray, network: Network) -> keras.Model:
    """Raw features → standardised with the training statistics (inside the graph, so clients
    send raw values) → a Dense stack → one linear unit."""
    inputs = keras.Input((len(mean),), name="features")
    # Rescaling, not Normalization: its statistics trace as graph constants, while Normalization's
    # become extra inputs of the exported ONNX graph.
    std = np.sqrt(variance)
    standardised = keras.layers.Rescaling(scale=1 / std, offset=-mean / std)(inputs)
    outputs = _averaged(
        standardised,
        lambda x: keras.layers.Dense(1)(_dense_stack(x, network)),
        network.members,
    )
    return keras.Model(inputs, outputs, name="price_regressor")
