"""What the three models' training shares: the validation plans (hold-out and K-fold, as chapter 4
of the book teaches them), the final fit on all training rows, ensembles, the Dense stack, and the
learning curves. Each dataset module says which plan it uses and builds its own model."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from contract.sparse import SparseRows
from trainer.data import hold_out_size
from trainer.report import Phase, TrainingLog
from trainer.sparse import Inputs, rows_except, rows_of

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


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
    inputs = keras.Input(models[0].input_shape[1:], name=models[0].inputs[0].name)
    # Re-wrapped under distinct names: Keras refuses two sub-models of one name in a graph.
    members = [
        keras.Model(m.inputs[0], m.outputs[0], name=f"member_{i}") for i, m in enumerate(models)
    ]
    outputs = keras.layers.Average()([member(inputs) for member in members])
    return keras.Model(inputs, outputs, name=f"ensemble_of_{len(models)}")


def dataset(x: Inputs, y: np.ndarray, batch_size: int, shuffle_seed: int | None) -> tf.data.Dataset:
    if isinstance(x, SparseRows):
        tensor = tf.SparseTensor(np.stack([x.rows, x.columns], axis=1), x.values, x.shape)
        data = tf.data.Dataset.from_tensor_slices((tensor, y))
    else:
        data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(y), seed=shuffle_seed, reshuffle_each_iteration=True)
    data = data.batch(batch_size)
    if isinstance(x, SparseRows):
        data = data.map(lambda features, labels: (tf.sparse.to_dense(features), labels))
    return data.prefetch(tf.data.AUTOTUNE)


class EpochReport(keras.callbacks.Callback):
    """Advances the phase's progress bar and logs the epoch's metrics."""

    def __init__(self, phase: Phase):
        super().__init__()
        self.phase = phase

    def on_epoch_end(self, epoch, logs=None):
        self.phase.epoch_done(epoch + 1, logs or {})


def fit(
    build: Callable[[], keras.Model],
    x: Inputs,
    y: np.ndarray,
    plan: HoldOut | KFold,
    seed: int,
    log: TrainingLog,
) -> Fitted:
    """Validates with the plan, then fits the model to publish on all training rows. `build`
    returns a fresh compiled model."""
    set_seed(seed)
    if isinstance(plan, HoldOut):
        history, epochs = _hold_out(build, x, y, plan, seed, log)
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
    model = _final_fit(build, x, y, plan, epochs, seed, log)
    return Fitted(model, histories, validation, epochs)


def _mode(monitor: str) -> str:
    return "max" if "accuracy" in monitor else "min"


def best_epoch(history: dict[str, list[float]], monitor: str, window: int = 1) -> int:
    """1-based epoch with the best (moving-average) validation score."""
    scores = np.asarray(history[monitor])
    if window > 1:
        padded = np.pad(scores, window // 2, mode="edge")
        scores = np.convolve(padded, np.ones(window) / window, mode="valid")[: len(scores)]
    return int(np.argmax(scores) if _mode(monitor) == "max" else np.argmin(scores)) + 1


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
    history = (
        build()
        .fit(
            dataset(rows_except(x, 0, n), np.delete(y, slice(0, n), axis=0), plan.batch_size, seed),
            validation_data=dataset(rows_of(x, 0, n), y[:n], plan.batch_size, None),
            epochs=plan.epochs,
            callbacks=callbacks,
            shuffle=False,  # the tf.data pipeline shuffles, with the seed
            verbose=0,
        )
        .history
    )
    phase.done()
    epochs = best_epoch(history, plan.monitor) if plan.patience is not None else plan.epochs
    return history, epochs


def _k_fold(build, x, y, plan: KFold, seed: int, log: TrainingLog):
    fold_size = len(y) // plan.folds
    phase = log.phase(f"{plan.folds}-fold validation", plan.folds * plan.epochs)
    histories = []
    for fold in range(plan.folds):
        lo, hi = fold * fold_size, (fold + 1) * fold_size
        phase.note(f"fold {fold + 1}/{plan.folds}")
        histories.append(
            build()
            .fit(
                dataset(
                    rows_except(x, lo, hi),
                    np.delete(y, slice(lo, hi), axis=0),
                    plan.batch_size,
                    seed + fold,
                ),
                validation_data=dataset(rows_of(x, lo, hi), y[lo:hi], plan.batch_size, None),
                epochs=plan.epochs,
                callbacks=[EpochReport(phase)],
                shuffle=False,
                verbose=0,
            )
            .history
        )
    phase.done()
    return histories


def _final_fit(build, x, y, plan: HoldOut | KFold, epochs: int, seed: int, log: TrainingLog):
    """The model to publish: fitted on all training rows, or the average of `plan.ensemble` such
    models, each from its own seed."""
    members = f", average of {plan.ensemble} models" if plan.ensemble > 1 else ""
    phase = log.phase(f"final fit on all {len(y)} rows{members}", plan.ensemble * epochs)
    models = []
    for member in range(plan.ensemble):
        if plan.ensemble > 1:
            phase.note(f"model {member + 1}/{plan.ensemble}")
        set_seed(seed + member)
        model = build()
        model.fit(
            dataset(x, y, plan.batch_size, seed + member),
            epochs=epochs,
            callbacks=[EpochReport(phase)],
            shuffle=False,
            verbose=0,
        )
        models.append(model)
    phase.done()
    return average(models)


def plot_curves(fitted: Fitted, metric: str, title: str, path) -> None:
    """Loss and metric per epoch, training vs validation (the mean over folds for K-fold), and the
    epoch count the final model was trained for."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("loss", metric), strict=True):
        for prefix, label, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = np.mean([h[prefix + name] for h in fitted.histories], axis=0)
            axis.plot(np.arange(1, len(values) + 1), values, style, label=label)
        axis.axvline(fitted.epochs, color="grey", linewidth=0.8, label=f"chosen: {fitted.epochs}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.legend()
    suffix = f" (mean of {len(fitted.histories)} folds)" if len(fitted.histories) > 1 else ""
    figure.suptitle(title + suffix)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
