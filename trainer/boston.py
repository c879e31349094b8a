"""Boston house prices: load → build the model → fit with callbacks → the candidate to export.

`book` is chapter 3 to the letter: features standardised, Dense 64×2, rmsprop, MSE, 4-fold
validation of 80 epochs of batch 16, then refitted on all training houses for 80 epochs.
`best`: log(1 + x) of the six skewed features, standardised, Dense 256×2 with dropout 0.3, whose
output unit works in standard units that the graph scales to $1000s; Huber loss, Adam; the epoch
count is the minimum of the 4-fold mean validation MAE (5-epoch moving average, up to 200); the
model is the average of 5 networks fitted on all training houses. Every transform is in the graph:
clients send raw values and get prices.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
import numpy as np
from keras import ops

from contract.catalog import BOSTON_ENDPOINT, BOSTON_FEATURES, BOSTON_TARGET
from contract.config import TabularEncoding, TensorSpec
from trainer.data import BOSTON_COLUMNS, TabularDataset
from trainer.fit import KFold, dense_stack, fit
from trainer.publish import Candidate, Serving
from trainer.report import TrainingLog

LABELS = None
METRIC = "mae"
TARGETS = {"best": 2.35}  # what each recipe must reach on the book's test set


@dataclass(frozen=True)
class Recipe:
    hidden: list[int]
    dropout: float
    optimizer: str  # "rmsprop" or "adam", at Keras's default learning rate
    loss: str  # "mse" or "huber"
    training: KFold
    log_features: tuple[str, ...] = ()  # columns replaced by log(1 + x): tames skewed features
    # The output unit works in standard units of the training prices, which a fixed layer scales
    # back to $1000s: a better-conditioned last layer.
    standardize_target: bool = False


RECIPES = {
    "book": Recipe(
        hidden=[64, 64],
        dropout=0.0,
        optimizer="rmsprop",
        loss="mse",
        training=KFold(folds=4, epochs=80, batch_size=16),
    ),
    "best": Recipe(
        hidden=[256, 256],
        dropout=0.3,
        optimizer="adam",
        loss="huber",
        training=KFold(
            folds=4, epochs=200, batch_size=16, choose_epochs=True, smoothing=5, ensemble=5
        ),
        log_features=("crim", "zn", "dis", "rad", "tax", "lstat"),
        standardize_target=True,
    ),
}


@keras.saving.register_keras_serializable(package="trainer")
class LogColumns(keras.layers.Layer):
    """log(1 + x) of the columns flagged in `mask`, the others unchanged."""

    def __init__(self, mask: list[float], **kwargs):
        super().__init__(**kwargs)
        self.mask = [float(m) for m in mask]

    def call(self, x):
        mask = ops.convert_to_tensor(self.mask, dtype=x.dtype)  # a graph constant when exported
        # log(1 + x), not log1p: ONNX opset 17 has no Log1p operator.
        return x * (1 - mask) + ops.log(1 + ops.maximum(x, 0)) * mask

    def get_config(self) -> dict:
        return {**super().get_config(), "mask": self.mask}


def build_model(x_train: np.ndarray, y_train: np.ndarray, recipe: Recipe) -> keras.Model:
    """Raw features → [log of skewed columns] → standardised with the training statistics → a Dense
    stack → one unit, [scaled back to the price]."""
    unknown = set(recipe.log_features) - set(BOSTON_COLUMNS)
    if unknown:
        raise ValueError(f"log_features names unknown columns {sorted(unknown)}")
    log_mask = np.array([name in recipe.log_features for name in BOSTON_COLUMNS], np.float32)
    # The statistics are those of the features as the network sees them: after the log.
    seen = np.where(log_mask > 0, np.log1p(np.maximum(x_train, 0)), x_train)
    mean, std = seen.mean(axis=0), np.sqrt(seen.var(axis=0))

    inputs = keras.Input((len(BOSTON_COLUMNS),), name="features")
    x = LogColumns(log_mask.tolist())(inputs) if log_mask.any() else inputs
    # Rescaling, not Normalization: its statistics trace as graph constants, while Normalization's
    # become extra inputs of the exported ONNX graph.
    x = keras.layers.Rescaling(scale=1 / std, offset=-mean / std)(x)
    # Under a fixed seed, the order in which layers are made decides their initial weights: the
    # output layer is made first, as it was for the published versions.
    head = keras.layers.Dense(1)
    output = head(dense_stack(x, recipe.hidden, recipe.dropout))
    if recipe.standardize_target:
        scale, offset = float(y_train.std()), float(y_train.mean())
        output = keras.layers.Rescaling(scale=scale, offset=offset)(output)
    model = keras.Model(inputs, output, name="boston_price")
    optimizer = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    model.compile(optimizer=optimizer[recipe.optimizer](), loss=recipe.loss, metrics=["mae"])
    return model


def train(recipe: Recipe, data: TabularDataset, seed: int, log: TrainingLog) -> Candidate:
    fitted = fit(
        # Standardised by all training rows' statistics, not the fitted rows' alone: as the
        # published versions were made.
        lambda _x, _y: build_model(data.x_train, data.y_train, recipe),
        data.x_train,
        data.y_train,
        recipe.training,
        seed,
        log,
    )
    return Candidate(
        fitted=fitted,
        x_test=data.x_test,
        encoder=None,
        serving=Serving(
            task="regression",
            description="Median value of owner-occupied homes in a 1970s Boston suburb",
            inputs=[TensorSpec(name="features", datatype="FP32", shape=[-1, len(BOSTON_COLUMNS)])],
            outputs=[TensorSpec(name="price", datatype="FP32", shape=[-1, 1])],
            encoding=TabularEncoding(features=BOSTON_FEATURES, endpoint=BOSTON_ENDPOINT),
            target=BOSTON_TARGET,
        ),
    )
