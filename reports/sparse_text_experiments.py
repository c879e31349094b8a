"""Text-model recipes for the sparse serving form (reports/sparse-text-experiments.md).

    python reports/sparse_text_experiments.py VARIANT [--data-dir ../shared/data] [--seed 0]

The input is what the service will send a sparse model: each text's non-zero columns as padded ids
(pad id = dim) and their values (`contract.sparse.SparseRows.padded`), encoded by the project's own
encoder (`trainer.text.fit_encoder` / `encode`, the vocabulary learned from all training texts, as
`trainer train` learns it). The first layer is an embedding bag: rows of a table [dim + 1, units]
gathered by id, weighted by the values and summed, plus a bias (a Dense layer over the dense row).
NB scaling multiplies each column's value by its log-count ratio, learned from the labelled rows the
run trains on; at export it folds into the table (table row j × r_j), so the served input is unchanged.

Method as `trainer train`: validate on the first rows of the training set (IMDB 5,000, Reuters
1,000) with early stopping, then fit on all training rows for the chosen epochs and score the test
set once. A temperature is fitted on the validation run's held-out logits and applied to the final
model. One JSON line per run (also appended to --results): nothing here reads the test set to choose.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from contract.sparse import SparseRows
from trainer import data
from trainer.text import TextFeatures, encode, fit_encoder

HELD_OUT = {"imdb": 5_000, "reuters": 1_000}
OUTPUTS = {"imdb": 1, "reuters": 46}
DEFAULTS = dict(
    num_words=None,
    vocabulary_size=None,
    ngram_max=3,
    min_df=2,
    idf=False,
    nb=False,
    normalize=False,
    input_dropout=0.0,
    units=None,
    hidden=None,
    dropout=0.0,
    l2=0.0,
    optimizer="adam",
    lr=1e-3,
    batch=256,
    epochs=30,
    patience=2,
    monitor="val_accuracy",
    label_smoothing=0.0,
    ensemble=1,
)  # units None: linear (units = outputs, the bag is the logits); hidden None: no Dense after the bag
# IMDB: NB-weighted logistic regression over binarized n-grams of all words (num_words ≥ 88,584).
NB = dict(data="imdb", num_words=100_000, nb=True)
# Reuters: the dense `best` recipe's fields in the sparse form (10,000 words by document frequency,
# log-count idf, 128 ReLU, dropout 0.5, RMSprop, batch 512, label smoothing 0.1), one network.
RMS = dict(
    data="reuters",
    num_words=31_000,
    vocabulary_size=10_000,
    ngram_max=1,
    min_df=1,
    idf=True,
    units=128,
    dropout=0.5,
    optimizer="rmsprop",
    batch=512,
    label_smoothing=0.1,
    monitor="val_loss",
    patience=3,
)
ADAM = dict(RMS, optimizer="adam", batch=256)
LINEAR_NORM = dict(
    RMS,
    units=None,
    dropout=0.0,
    label_smoothing=0.0,
    normalize=True,
    optimizer="adam",
    lr=1e-2,
    batch=64,
)
VARIANTS = {
    "imdb-nb3-1m": dict(NB, vocabulary_size=1_000_000),
    "imdb-bin3-1m": dict(NB, vocabulary_size=1_000_000, nb=False),
    "imdb-nb3-500k": dict(NB, vocabulary_size=500_000),
    "imdb-nb3-250k": dict(NB, vocabulary_size=250_000),
    "imdb-nb2-500k": dict(NB, vocabulary_size=500_000, ngram_max=2),
    "imdb-nb3-2m-df1": dict(NB, vocabulary_size=2_000_000, min_df=1),
    "imdb-nb3-30k-words": dict(NB, vocabulary_size=1_000_000, num_words=30_000),
    "imdb-nb3-1m-lr3e-4": dict(NB, vocabulary_size=1_000_000, lr=3e-4),
    "imdb-nb3-1m-b64": dict(NB, vocabulary_size=1_000_000, batch=64),
    "imdb-nb3-500k-p3": dict(NB, vocabulary_size=500_000, patience=3),
    "imdb-nb3-1m-16": dict(NB, vocabulary_size=1_000_000, units=16, dropout=0.5),
    "imdb-idf3-1m-16": dict(
        NB, vocabulary_size=1_000_000, nb=False, idf=True, units=16, dropout=0.5
    ),  # stopped: a 60 MB table
    "reuters-idf2-20k-128": dict(ADAM, vocabulary_size=20_000, ngram_max=2),
    "reuters-idf2-50k-256": dict(ADAM, vocabulary_size=50_000, ngram_max=2, units=256),  # stopped
    "reuters-idf2-50k-linear": dict(
        ADAM, vocabulary_size=50_000, ngram_max=2, units=None, dropout=0.0, label_smoothing=0.0
    ),
    "reuters-idf1-10k-128-rms": RMS,
    "reuters-idf1-10k-128-rms-norm": dict(RMS, normalize=True),
    "reuters-idf1-10k-128-norm-adam3e-3": dict(RMS, normalize=True, optimizer="adam", lr=3e-3),
    "reuters-idf1-10k-128-norm-adam3e-3-ls0": dict(
        RMS, normalize=True, optimizer="adam", lr=3e-3, label_smoothing=0.0
    ),
    "reuters-idf1-10k-128-norm-adam3e-3-x2": dict(
        RMS, normalize=True, optimizer="adam", lr=3e-3, ensemble=2
    ),
    "reuters-idf1-10k-128-norm-adam3e-3-x3": dict(
        RMS, normalize=True, optimizer="adam", lr=3e-3, ensemble=3
    ),
    "reuters-idf1-10k-256-norm-adam3e-3": dict(
        RMS, normalize=True, optimizer="adam", lr=3e-3, units=256
    ),
    "reuters-idf1-10k-128-rms-ls0": dict(RMS, label_smoothing=0.0),
    "reuters-idf1-10k-128-rms-indrop": dict(RMS, input_dropout=0.3),
    "reuters-idf1-10k-128-rms-x3": dict(RMS, ensemble=3),
    "reuters-idf1-10k-128-rms-ls0-x3": dict(RMS, label_smoothing=0.0, ensemble=3),
    "reuters-idf1-10k-256-rms": dict(RMS, units=256),
    "reuters-idf1-10k-256-rms-ls0": dict(RMS, units=256, label_smoothing=0.0),
    "reuters-idf1-all-128-rms": dict(RMS, vocabulary_size=31_000),
    "reuters-idf1-all-512-rms": dict(RMS, vocabulary_size=31_000, units=512),  # stopped
    "reuters-idf2-20k-128-rms": dict(RMS, vocabulary_size=20_000, ngram_max=2),
    "reuters-idf1-all-linear-norm": dict(LINEAR_NORM, vocabulary_size=31_000),
    "reuters-idf2-50k-linear-norm": dict(LINEAR_NORM, vocabulary_size=50_000, ngram_max=2),
}


def features_of(v: dict) -> TextFeatures:
    return TextFeatures(
        num_words=v["num_words"],
        vocabulary_size=v["vocabulary_size"],
        ngram_max=v["ngram_max"],
        min_df=v["min_df"],
        log_count_idf=v["idf"],
    )


def nb_ratio(x: SparseRows, y: np.ndarray, alpha: float = 1.0) -> np.ndarray:
    """log((p/|p|₁)/(q/|q|₁)), p = α + the positive rows' binarized features summed (q: negative)."""
    positive = y[x.rows] == 1
    p = alpha + np.bincount(x.columns[positive], minlength=x.shape[1])
    q = alpha + np.bincount(x.columns[~positive], minlength=x.shape[1])
    return (np.log(p / p.sum()) - np.log(q / q.sum())).astype(np.float32)


def scaled(x: SparseRows, r: np.ndarray | None) -> SparseRows:
    return x if r is None else SparseRows(x.rows, x.columns, x.values * r[x.columns], x.shape)


def batches(x: SparseRows, y: np.ndarray | None, size: int, seed: int | None) -> tf.data.Dataset:
    """(ids, values) padded per batch to its longest row with id = dim, value 0."""
    lengths = x.counts()
    ids = tf.RaggedTensor.from_row_lengths(x.columns.astype(np.int64), lengths)
    values = tf.RaggedTensor.from_row_lengths(x.values.astype(np.float32), lengths)
    parts = (ids, values) if y is None else (ids, values, y)
    out = tf.data.Dataset.from_tensor_slices(parts)
    if seed is not None:
        out = out.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dim = x.shape[1]

    def pad(i, w, *label):
        inputs = {"ids": i.to_tensor(default_value=dim), "weights": w.to_tensor()}
        return (inputs, *label)

    return out.ragged_batch(size).map(pad).prefetch(tf.data.AUTOTUNE)


class Bias(keras.layers.Layer):
    def build(self, shape):
        self.bias = self.add_weight(shape=(shape[-1],), initializer="zeros", name="bias")

    def call(self, x):
        return x + self.bias


def build_model(dim: int, outputs: int, v: dict) -> keras.Model:
    """ids, weights → logits. Linear: table [dim + 1, outputs]; else table [dim + 1, units] → ReLU."""
    ids = keras.Input((None,), dtype="int64", name="ids")
    weights = inputs_weights = keras.Input((None,), dtype="float32", name="weights")
    linear = v["units"] is None
    units = outputs if linear else v["units"]
    table = keras.layers.Embedding(
        dim + 1,
        units,
        embeddings_initializer="zeros" if linear else "uniform",
        embeddings_regularizer=keras.regularizers.L2(v["l2"]) if v["l2"] else None,
        name="table",
    )
    if v["normalize"]:  # each row's values to unit L2 norm, in the graph (a per-row scale)
        weights = weights / keras.ops.sqrt(keras.ops.sum(weights**2, axis=1, keepdims=True) + 1e-12)
    if v["input_dropout"]:  # training only: drops whole features (their values) of each row
        weights = keras.layers.Dropout(v["input_dropout"])(weights)
    x = Bias(name="bag_bias")(keras.ops.einsum("nk,nku->nu", weights, table(ids)))
    if not linear:
        x = keras.layers.Activation("relu")(x)
        if v["dropout"]:
            x = keras.layers.Dropout(v["dropout"])(x)
        for width in v["hidden"] or []:
            x = keras.layers.Dense(width, "relu")(x)
            if v["dropout"]:
                x = keras.layers.Dropout(v["dropout"])(x)
        x = keras.layers.Dense(outputs, name="logits")(x)
    model = keras.Model({"ids": ids, "weights": inputs_weights}, x)
    optimizer = {"adam": keras.optimizers.Adam, "rmsprop": keras.optimizers.RMSprop}[v["optimizer"]]
    if outputs == 1:
        loss = keras.losses.BinaryCrossentropy(from_logits=True)
        metrics = [keras.metrics.BinaryAccuracy(threshold=0.0, name="accuracy")]
    else:
        loss = keras.losses.CategoricalCrossentropy(
            from_logits=True, label_smoothing=v["label_smoothing"]
        )
        metrics = [keras.metrics.CategoricalAccuracy(name="accuracy")]
    model.compile(optimizer=optimizer(v["lr"]), loss=loss, metrics=metrics)
    return model


def targets(y: np.ndarray, outputs: int) -> np.ndarray:
    return y.astype(np.float32)[:, None] if outputs == 1 else np.eye(outputs, dtype=np.float32)[y]


def logits_of(models: list[keras.Model], x: SparseRows) -> np.ndarray:
    """An ensemble averages its members' logits (foldable: tables side by side, heads / n)."""
    return np.mean([m.predict(batches(x, None, 1024, None), verbose=0) for m in models], axis=0)


def probabilities(z: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = z / temperature
    if z.shape[1] == 1:
        p = 1 / (1 + np.exp(-z))
        return np.concatenate([1 - p, p], axis=1)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    p = probabilities(z, temperature)[np.arange(len(y)), y]
    return float(-np.mean(np.log(np.clip(p, 1e-12, 1))))


def fit_temperature(z: np.ndarray, y: np.ndarray) -> float:
    """The T minimising the held-out NLL: golden-section search on log T in [-3, 3]."""
    lo, hi, g = -3.0, 3.0, (np.sqrt(5) - 1) / 2
    for _ in range(60):
        a, b = hi - g * (hi - lo), lo + g * (hi - lo)
        if nll(z, y, np.exp(a)) < nll(z, y, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def calibration(z: np.ndarray, y: np.ndarray, temperature: float) -> dict:
    """Accuracy, ECE (15 equal-width bins of the top probability) and mean top probability."""
    p = probabilities(z, temperature)
    top, correct = p.max(axis=1), p.argmax(axis=1) == y
    bins = np.minimum((top * 15).astype(int), 14)
    ece = sum(
        abs(correct[bins == b].mean() - top[bins == b].mean()) * (bins == b).mean()
        for b in range(15)
        if (bins == b).any()
    )
    return {
        "accuracy": round(float(correct.mean()), 4),
        "ece": round(float(ece), 4),
        "mean_top": round(float(top.mean()), 4),
    }


def train(
    v: dict,
    x: SparseRows,
    y: np.ndarray,
    outputs: int,
    seed: int,
    epochs: int | None,
    validation: SparseRows | None = None,
    y_val: np.ndarray | None = None,
):
    """One model: early-stopped on `validation` where given, else `epochs` epochs."""
    keras.utils.set_random_seed(seed)
    model = build_model(x.shape[1], outputs, v)
    callbacks, val = [], None
    if validation is not None:
        mode = "min" if v["monitor"] == "val_loss" else "max"
        callbacks = [
            keras.callbacks.EarlyStopping(
                v["monitor"], patience=v["patience"], mode=mode, restore_best_weights=True
            )
        ]
        val = batches(validation, targets(y_val, outputs), 1024, None)
    history = model.fit(
        batches(x, targets(y, outputs), v["batch"], seed),
        validation_data=val,
        epochs=epochs or v["epochs"],
        callbacks=callbacks,
        verbose=0,
    )
    return model, history.history


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("variant", choices=VARIANTS)
    options.add_argument("--data-dir", default="../shared/data")
    options.add_argument("--seed", type=int, default=0)
    options.add_argument("--results", default="/tmp/sparse-exp/results.jsonl")
    args = options.parse_args()
    v = {**DEFAULTS, **VARIANTS[args.variant]}
    name, outputs = v["data"], OUTPUTS[v["data"]]
    tf.config.experimental.enable_op_determinism()
    dataset = data.load(name, Path(args.data_dir), None)
    started = time.monotonic()
    encoder = fit_encoder(features_of(v), dataset.word_index, dataset.x_train)
    x_all, x_test = encode(encoder, dataset.x_train), encode(encoder, dataset.x_test)
    short = encode(encoder, [s[:21] for s in dataset.x_test])  # start id + the first 20 words
    y_all, y_test, n = dataset.y_train, dataset.y_test, HELD_OUT[name]
    dim = encoder.encoding.dim

    # Validation run: train on rows n.., early-stop on rows ..n; NB ratios from rows n.. only.
    x_fit, y_fit, x_val, y_val = x_all.drop(0, n), y_all[n:], x_all.take(0, n), y_all[:n]
    r = nb_ratio(x_fit, y_fit) if v["nb"] else None
    members, chosen, val_accuracy = [], [], []
    for member in range(v["ensemble"]):
        model, history = train(
            v, scaled(x_fit, r), y_fit, outputs, args.seed + member, None, scaled(x_val, r), y_val
        )
        series = history[v["monitor"]]
        best = int(np.argmin(series) if v["monitor"] == "val_loss" else np.argmax(series))
        chosen.append(best + 1)
        val_accuracy.append(history["val_accuracy"][best])
        members.append(model)
    z_val = logits_of(members, scaled(x_val, r))
    temperature = fit_temperature(z_val, y_val)
    validation = calibration(z_val, y_val, 1.0)["accuracy"]
    validation_seconds = time.monotonic() - started

    # Final fit: all training rows, each member for its chosen epochs; NB ratios from all rows.
    r = nb_ratio(x_all, y_all) if v["nb"] else None
    final = [
        train(v, scaled(x_all, r), y_all, outputs, args.seed + member, epochs)[0]
        for member, epochs in enumerate(chosen)
    ]
    seconds = time.monotonic() - started
    z_test, z_short = logits_of(final, scaled(x_test, r)), logits_of(final, scaled(short, r))
    units = outputs if v["units"] is None else v["units"]
    result = {
        "variant": args.variant,
        "seed": args.seed,
        "dim": dim,
        "units": units,
        "table_mb": round((dim + 1) * units * 4 * v["ensemble"] / 1e6, 1),
        "validation": round(validation, 4),
        "member_validation": [round(a, 4) for a in val_accuracy],
        "epochs": chosen,
        "temperature": round(temperature, 3),
        "test": calibration(z_test, y_test, 1.0)["accuracy"],
        "test_T1": calibration(z_test, y_test, 1.0),
        "test_T": calibration(z_test, y_test, temperature),
        "short20_T1": calibration(z_short, y_test, 1.0),
        "short20_T": calibration(z_short, y_test, temperature),
        "validation_s": round(validation_seconds, 1),
        "train_s": round(seconds, 1),
        "recipe": {k: v[k] for k in ("data", *DEFAULTS)},
    }
    line = json.dumps(result)
    print(line, flush=True)
    Path(args.results).parent.mkdir(parents=True, exist_ok=True)
    with open(args.results, "a") as out:
        out.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
