"""Training: hold-out or K-fold validation with Keras callbacks, then the final model; learning curves.

Text inputs are kept sparse (`SparseRows`) and made dense one batch at a time, so that a 50,000-column
n-gram encoding of 25,000 reviews needs megabytes, not gigabytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import matplotlib
import numpy as np
import tensorflow as tf

from trainer.models import average
from trainer.recipes import HoldOut, KFold, Recipe

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


@dataclass(frozen=True)
class SparseRows:
    """Row-major (rows, columns, values) of a float32 matrix with `shape`."""

    rows: np.ndarray
    columns: np.ndarray
    values: np.ndarray
    shape: tuple[int, int]

    def __len__(self) -> int:
        return self.shape[0]

    def take(self, start: int, stop: int) -> SparseRows:
        lo, hi = np.searchsorted(self.rows, [start, stop])
        return SparseRows(
            self.rows[lo:hi] - start,
            self.columns[lo:hi],
            self.values[lo:hi],
            (stop - start, self.shape[1]),
        )

    def drop(self, start: int, stop: int) -> SparseRows:
        """All rows except [start, stop)."""
        lo, hi = np.searchsorted(self.rows, [start, stop])
        rows = np.concatenate([self.rows[:lo], self.rows[hi:] - (stop - start)])
        return SparseRows(
            rows,
            np.concatenate([self.columns[:lo], self.columns[hi:]]),
            np.concatenate([self.values[:lo], self.values[hi:]]),
            (self.shape[0] - (stop - start), self.shape[1]),
        )

    def dense_batches(self, batch_size: int):
        for start in range(0, len(self), batch_size):
            part = self.take(start, min(start + batch_size, len(self)))
            out = np.zeros(part.shape, dtype=np.float32)
            out[part.rows, part.columns] = part.values
            yield out


Inputs = np.ndarray | SparseRows


def rows_of(x: Inputs, start: int, stop: int) -> Inputs:
    return x.take(start, stop) if isinstance(x, SparseRows) else x[start:stop]


def rows_except(x: Inputs, start: int, stop: int) -> Inputs:
    return x.drop(start, stop) if isinstance(x, SparseRows) else np.delete(x, slice(start, stop), 0)


def dense_batches(x: Inputs, batch_size: int = 1024):
    if isinstance(x, SparseRows):
        yield from x.dense_batches(batch_size)
    else:
        for start in range(0, len(x), batch_size):
            yield x[start : start + batch_size]


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


@dataclass
class FitResult:
    model: keras.Model
    histories: list[dict[str, list[float]]]  # the validation runs, for the learning curves
    validation: dict[str, float]  # validation metrics of the chosen configuration
    epochs: int  # epochs the final model was trained for


def set_seed(seed: int) -> None:
    """Same seed, same data → same weights and metrics (at the cost of some speed)."""
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def metric_for(recipe: Recipe) -> str:
    return "mae" if recipe.loss in ("mse", "huber") else "accuracy"


def _compiled(build: Callable[[], keras.Model], recipe: Recipe) -> keras.Model:
    model = build()
    optimizers = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}
    loss = (
        keras.losses.CategoricalCrossentropy(label_smoothing=recipe.label_smoothing)
        if recipe.loss == "categorical_crossentropy"
        else recipe.loss
    )
    model.compile(
        optimizer=optimizers[recipe.optimizer.name](recipe.optimizer.learning_rate),
        loss=loss,
        metrics=[metric_for(recipe)],
    )
    return model


def _monitored(recipe: Recipe, plan: HoldOut | KFold) -> tuple[str, str]:
    """The validation series that picks the best epoch, and whether lower is better."""
    if plan.monitor == "loss":
        return "val_loss", "min"
    metric = metric_for(recipe)
    return f"val_{metric}", "min" if metric == "mae" else "max"


def _best_epoch(history: dict[str, list[float]], recipe: Recipe, plan, window: int = 1) -> int:
    """1-based epoch with the best (moving-average) validation score."""
    name, mode = _monitored(recipe, plan)
    scores = np.asarray(history[name])
    if window > 1:
        padded = np.pad(scores, window // 2, mode="edge")
        scores = np.convolve(padded, np.ones(window) / window, mode="valid")[: len(history[name])]
    return int(np.argmin(scores) if mode == "min" else np.argmax(scores)) + 1


def fit(
    build: Callable[[], keras.Model],
    x: Inputs,
    y: np.ndarray,
    recipe: Recipe,
    seed: int,
    verbose: int,
) -> FitResult:
    set_seed(seed)
    if isinstance(recipe.validation, HoldOut):
        return _fit_holdout(build, x, y, recipe, recipe.validation, seed, verbose)
    return _fit_kfold(build, x, y, recipe, recipe.validation, seed, verbose)


def _fit_holdout(build, x, y, recipe: Recipe, plan: HoldOut, seed: int, verbose: int) -> FitResult:
    n = plan.validation_size
    callbacks = []
    if plan.early_stopping_patience is not None:
        monitor, mode = _monitored(recipe, plan)
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=plan.early_stopping_patience,
                restore_best_weights=True,
            )
        )
    model = _compiled(build, recipe)
    history = model.fit(
        dataset(rows_except(x, 0, n), np.delete(y, slice(0, n), axis=0), plan.batch_size, seed),
        validation_data=dataset(rows_of(x, 0, n), y[:n], plan.batch_size, None),
        epochs=plan.epochs,
        callbacks=callbacks,
        shuffle=False,  # the tf.data pipeline shuffles, with the seed
        verbose=verbose,
    ).history
    epochs = _best_epoch(history, recipe, plan) if callbacks else plan.epochs
    validation = {
        name[4:]: values[epochs - 1] for name, values in history.items() if name.startswith("val_")
    }
    if plan.refit_on_all:
        model = _final_fit(build, x, y, recipe, epochs, seed, verbose)
    return FitResult(model, [history], validation, epochs)


def _fit_kfold(build, x, y, recipe: Recipe, plan: KFold, seed: int, verbose: int) -> FitResult:
    fold_size = len(y) // plan.folds
    histories = []
    for fold in range(plan.folds):
        lo, hi = fold * fold_size, (fold + 1) * fold_size
        model = _compiled(build, recipe)
        histories.append(
            model.fit(
                dataset(
                    rows_except(x, lo, hi),
                    np.delete(y, slice(lo, hi), axis=0),
                    plan.batch_size,
                    seed + fold,
                ),
                validation_data=dataset(rows_of(x, lo, hi), y[lo:hi], plan.batch_size, None),
                epochs=plan.epochs,
                shuffle=False,
                verbose=0,
            ).history
        )
        if verbose:
            last = {k: round(v[-1], 4) for k, v in histories[-1].items()}
            print(f"fold {fold + 1}/{plan.folds}: {last}", flush=True)
    mean = {k: np.mean([h[k] for h in histories], axis=0).tolist() for k in histories[0]}
    epochs = _best_epoch(mean, recipe, plan, plan.smoothing) if plan.choose_epochs else plan.epochs
    validation = {
        name[4:]: values[epochs - 1] for name, values in mean.items() if name.startswith("val_")
    }
    model = _final_fit(build, x, y, recipe, epochs, seed, verbose)
    return FitResult(model, histories, validation, epochs)


def _final_fit(build, x, y, recipe: Recipe, epochs: int, seed: int, verbose: int) -> keras.Model:
    """The model to publish: fitted on all training rows, or the average of `recipe.ensemble`
    such models, each from its own seed."""
    models = []
    for member in range(recipe.ensemble):
        if verbose:
            which = (
                f" (ensemble member {member + 1}/{recipe.ensemble})" if recipe.ensemble > 1 else ""
            )
            print(f"final fit on all {len(y)} training rows for {epochs} epochs{which}", flush=True)
        set_seed(seed + member)
        model = _compiled(build, recipe)
        model.fit(
            dataset(x, y, recipe.validation.batch_size, seed + member),
            epochs=epochs,
            shuffle=False,
            verbose=verbose,
        )
        models.append(model)
    return average(models)


def plot_curves(
    histories: list[dict[str, list[float]]], metric: str, chosen_epoch: int, title: str, path: Path
) -> None:
    """Loss and metric per epoch, training vs validation (the mean over folds for K-fold), and the
    epoch count the final model was trained for."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("loss", metric), strict=True):
        for prefix, label, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = np.mean([h[prefix + name] for h in histories], axis=0)
            axis.plot(np.arange(1, len(values) + 1), values, style, label=label)
        axis.axvline(chosen_epoch, color="grey", linewidth=0.8, label=f"chosen: {chosen_epoch}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.legend()
    suffix = f" (mean of {len(histories)} folds)" if len(histories) > 1 else ""
    figure.suptitle(title + suffix)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
