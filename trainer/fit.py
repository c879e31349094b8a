"""What the three models' training shares: the validation plans (hold-out and K-fold, as chapter 4
of the book teaches them), the final fit on all training rows, ensembles, calibration and the
Dense stack. Each dataset module says which plan it uses and builds its own model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np
import tensorflow as tf

from trainer.calibration import fit_temperature, labels_of
from trainer.data import hold_out_size
from trainer.feed import dataset, input_names, one_or_all
from trainer.report import Phase, TrainingLog
from trainer.sparse import Inputs, rows_except, rows_of


@dataclass(frozen=True)
class HoldOut:
    """Validate on the first `validation_size` training rows (as the book does) while fitting on
    the rest, then fit the final model on all training rows for the chosen number of epochs.
    Small files hold out a share of their rows instead (`trainer.data.hold_out_size`)."""

    validation_size: int
    epochs: int
    batch_size: int
    patience: int | None = None  # early stopping on `monitor`; None: all `epochs` are kept
    monitor: str = "val_accuracy"  # the validation series that picks the best epoch
    ensemble: int = 1  # the final model averages this many fits, each from its own seed
    # Temperature scaling (classification): T minimising the held-out rows' cross-entropy of the
    # validation model's outputs, folded into the final model's output layer.
    calibrate: bool = False


@dataclass(frozen=True)
class KFold:
    """K-fold validation, then the final model is fitted on all training rows."""

    folds: int
    epochs: int
    batch_size: int
    choose_epochs: bool = False  # final fit for the best epoch of the mean curve, else all epochs
    smoothing: int = 1  # moving-average window over the mean validation curve when choosing
    monitor: str = "val_mae"
    ensemble: int = 1


@dataclass
class Fitted:
    model: keras.Model
    histories: list[dict[str, list[float]]]  # the validation runs, for the learning curves
    validation: dict[str, float]  # validation metrics at the chosen epoch count
    epochs: int  # epochs the final model was trained for
    temperature: float | None = None  # folded into the output layer (`HoldOut.calibrate`)


def set_seed(seed: int) -> None:
    """Same seed, same data → same weights and metrics (at the cost of some speed)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def dense_stack(x, hidden: list[int], dropout: float):
    """Dense ReLU layers, each followed by dropout where the recipe asks for it."""
    for units in hidden:
        x = keras.layers.Dense(units, "relu")(x)
        if dropout:
            x = keras.layers.Dropout(dropout)(x)
    return x


def average(models: list[keras.Model]) -> keras.Model:
    """One graph whose output is the mean of independently trained models' outputs."""
    if len(models) == 1:
        return models[0]
    inputs = [keras.Input(t.shape[1:], dtype=t.dtype, name=t.name) for t in models[0].inputs]
    # Re-wrapped under distinct names: Keras refuses two sub-models of one name in a graph.
    members = [
        keras.Model(one_or_all(m.inputs), m.outputs[0], name=f"member_{i}")
        for i, m in enumerate(models)
    ]
    outputs = keras.layers.Average()([member(one_or_all(inputs)) for member in members])
    return keras.Model(one_or_all(inputs), outputs, name=f"ensemble_of_{len(models)}")


class EpochReport(keras.callbacks.Callback):
    """Advances the phase's progress bar and logs the epoch's metrics."""

    def __init__(self, phase: Phase):
        super().__init__()
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        self.phase.epoch_done(epoch + 1, logs or {})


def fit(
    build: Callable[[Inputs, np.ndarray], keras.Model],
    x: Inputs,
    y: np.ndarray,
    plan: HoldOut | KFold,
    seed: int,
    log: TrainingLog,
) -> Fitted:
    """Validates with the plan, then fits the model to publish on all training rows. `build`
    returns a fresh compiled model for the rows (x, y) it will be fitted on."""
    set_seed(seed)
    temperature = None
    if isinstance(plan, HoldOut):
        history, epochs, temperature = _hold_out(build, x, y, plan, seed, log)
        histories, mean = [history], history
    else:
        histories = _k_fold(build, x, y, plan, seed, log)
        mean = {k: np.mean([h[k] for h in histories], axis=0).tolist() for k in histories[0]}
        epochs = (
            best_epoch(mean, plan.monitor, plan.smoothing) if plan.choose_epochs else plan.epochs
        )
    validation = {
        name[4:]: values[epochs - 1] for name, values in mean.items() if name.startswith("val_")
    }
    model = _final_fit(build, x, y, plan, epochs, seed, log, temperature)
    return Fitted(model, histories, validation, epochs, temperature)


def _mode(monitor: str) -> str:
    return "max" if "accuracy" in monitor else "min"


def best_epoch(history: dict[str, list[float]], monitor: str, window: int = 1) -> int:
    """1-based epoch with the best (moving-average) validation score."""
    scores = np.asarray(history[monitor])
    if window > 1:
        padded = np.pad(scores, window // 2, mode="edge")
        scores = np.convolve(padded, np.ones(window) / window, mode="valid")[: len(scores)]
    return int(np.argmax(scores) if _mode(monitor) == "max" else np.argmin(scores)) + 1


def logits(model: keras.Model, data: tf.data.Dataset) -> np.ndarray:
    """The model's outputs before its output layer's activation (sigmoid or softmax)."""
    head = model.layers[-1]
    activation, head.activation = head.activation, keras.activations.linear
    try:
        return np.concatenate([model(features, training=False) for features, _ in data])
    finally:
        head.activation = activation


def divide_output_layer(model: keras.Model, temperature: float) -> None:
    """Temperature scaling folded into the output layer: its kernel (or table) and bias over T
    give activation(z / T), and the graph gets no node for it."""
    for weight in model.layers[-1].trainable_weights:
        weight.assign(weight / temperature)


def _hold_out(build, x, y, plan: HoldOut, seed: int, log: TrainingLog):
    n = hold_out_size(plan.validation_size, len(y))  # small files: a share of their rows
    scaled = "" if n == plan.validation_size else f" (the recipe's {plan.validation_size}, scaled)"
    phase = log.phase(f"validation on {n} held-out rows{scaled}", plan.epochs)
    callbacks: list[keras.callbacks.Callback] = [EpochReport(phase)]
    if plan.patience is not None:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=plan.monitor,
                mode=_mode(plan.monitor),
                patience=plan.patience,
                restore_best_weights=True,
            )
        )
    x_fit, y_fit = rows_except(x, 0, n), np.delete(y, slice(0, n), axis=0)
    model = build(x_fit, y_fit)
    inputs = input_names(model)
    held_out = dataset(rows_of(x, 0, n), y[:n], plan.batch_size, None, inputs)
    history = model.fit(
        dataset(x_fit, y_fit, plan.batch_size, seed, inputs),
        validation_data=held_out,
        epochs=plan.epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles, with the seed
        verbose=0,
    ).history
    phase.done()
    epochs = best_epoch(history, plan.monitor) if plan.patience is not None else plan.epochs
    temperature = None
    if plan.calibrate:
        temperature = fit_temperature(logits(model, held_out), labels_of(y[:n]))
        log.note(f"temperature {temperature:.4f}, fitted on the {n} held-out rows")
    return history, epochs, temperature


def _k_fold(build, x, y, plan: KFold, seed: int, log: TrainingLog):
    fold_size = len(y) // plan.folds
    phase = log.phase(f"{plan.folds}-fold validation", plan.folds * plan.epochs)
    histories = []
    for fold in range(plan.folds):
        lo, hi = fold * fold_size, (fold + 1) * fold_size
        phase.note(f"fold {fold + 1}/{plan.folds}")
        x_fit, y_fit = rows_except(x, lo, hi), np.delete(y, slice(lo, hi), axis=0)
        model = build(x_fit, y_fit)
        inputs = input_names(model)
        histories.append(
            model.fit(
                dataset(x_fit, y_fit, plan.batch_size, seed + fold, inputs),
                validation_data=dataset(
                    rows_of(x, lo, hi), y[lo:hi], plan.batch_size, None, inputs
                ),
                epochs=plan.epochs,
                callbacks=[EpochReport(phase)],
                shuffle=False,
                verbose=0,
            ).history
        )
    phase.done()
    return histories


def _final_fit(
    build,
    x,
    y,
    plan: HoldOut | KFold,
    epochs: int,
    seed: int,
    log: TrainingLog,
    temperature: float | None,
):
    """The model to publish: fitted on all training rows, or the average of `plan.ensemble` such
    models, each from its own seed; calibrated with the temperature where there is one."""
    members = f", average of {plan.ensemble} models" if plan.ensemble > 1 else ""
    phase = log.phase(f"final fit on all {len(y)} rows{members}", plan.ensemble * epochs)
    models = []
    for member in range(plan.ensemble):
        if plan.ensemble > 1:
            phase.note(f"model {member + 1}/{plan.ensemble}")
        set_seed(seed + member)
        model = build(x, y)
        model.fit(
            dataset(x, y, plan.batch_size, seed + member, input_names(model)),
            epochs=epochs,
            callbacks=[EpochReport(phase)],
            shuffle=False,
            verbose=0,
        )
        if temperature is not None:
            divide_output_layer(model, temperature)
        models.append(model)
    phase.done()
    return average(models)
