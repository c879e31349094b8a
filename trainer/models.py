"""One short function per architecture; the hyper-parameters come from a recipe's `Network`."""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

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


def text_classifier(input_dim: int, classes: int, network: Network) -> keras.Model:
    """Encoded text → a Dense stack → sigmoid (2 classes) or softmax (more)."""
    units, activation = (1, "sigmoid") if classes == 2 else (classes, "softmax")
    inputs = keras.Input((input_dim,), name="encoded_text")
    outputs = keras.layers.Dense(units, activation)(_dense_stack(inputs, network))
    return keras.Model(inputs, outputs, name="text_classifier")


@keras.saving.register_keras_serializable(package="trainer")
class LogColumns(keras.layers.Layer):
    """log(1 + x) of the columns flagged in `mask`, the others unchanged: tames skewed features."""

    def __init__(self, mask: list[float], **kwargs):
        super().__init__(**kwargs)
        self.mask = [float(m) for m in mask]

    def call(self, x):
        mask = ops.convert_to_tensor(self.mask, dtype=x.dtype)  # a graph constant when exported
        # log(1 + x), not log1p: ONNX opset 17 has no Log1p operator.
        return x * (1 - mask) + ops.log(1 + ops.maximum(x, 0)) * mask

    def get_config(self) -> dict:
        return {**super().get_config(), "mask": self.mask}


def price_regressor(
    mean: np.ndarray,
    variance: np.ndarray,
    network: Network,
    log_mask: np.ndarray | None = None,
    target_mean: float = 0.0,
    target_std: float = 1.0,
) -> keras.Model:
    """Raw features → [log of skewed columns] → standardised with the training statistics → a Dense
    stack → one unit, scaled back to the price. Every transform lives in the graph, so clients
    send raw values and get prices."""
    inputs = keras.Input((len(mean),), name="features")
    x = inputs if log_mask is None else LogColumns(log_mask.tolist())(inputs)
    # Rescaling, not Normalization: its statistics trace as graph constants, while Normalization's
    # become extra inputs of the exported ONNX graph.
    std = np.sqrt(variance)
    x = keras.layers.Rescaling(scale=1 / std, offset=-mean / std)(x)
    output = keras.layers.Dense(1)(_dense_stack(x, network))
    if (target_mean, target_std) != (0.0, 1.0):
        output = keras.layers.Rescaling(scale=target_std, offset=target_mean)(output)
    return keras.Model(inputs, output, name="price_regressor")


def average(models: list[keras.Model]) -> keras.Model:
    """One graph whose output is the mean of independently trained models' outputs."""
    if len(models) == 1:
        return models[0]
    inputs = keras.Input(models[0].input_shape[1:], name=models[0].inputs[0].name)
    # Re-wrapped under distinct names: Keras refuses two sub-models of one name in a graph.
    members = [
        keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}") for i, m in enumerate(models)
    ]
    outputs = keras.layers.Average()([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=f"ensemble_of_{len(models)}")
