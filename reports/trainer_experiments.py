"""The recipe variants tried for issue 14's stretch targets (reports/trainer-experiments.md).

    python reports/trainer_experiments.py VARIANT [--data-dir ../shared/data] [--seed 0]

Each variant is a published recipe with a few fields replaced; it is trained exactly as
`trainer train` trains (the same `train` of the dataset module: validation, then the final fit on
all training rows), then the final model is scored on the test set once and exported to ONNX
(as `trainer train` exports it) to time onnxruntime on one row. One JSON line per run: the
validation figure (what chooses), the test figure (reported, chooses nothing), train seconds and
the batch-1 microseconds (median of 2,000 runs, one onnxruntime thread). Nothing is published.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from trainer import boston, data, imdb, reuters
from trainer.evaluate import onnx_session, score
from trainer.export import export_onnx
from trainer.fit import HoldOut, KFold
from trainer.report import TrainingLog
from trainer.sparse import dense_batches
from trainer.text import TextFeatures

MODULES = {"imdb": imdb, "reuters": reuters, "boston": boston}


def replaced(recipe, features=None, training=None, **fields):
    if features:
        fields["features"] = dataclasses.replace(recipe.features, **features)
    if training:
        fields["training"] = dataclasses.replace(recipe.training, **training)
    return dataclasses.replace(recipe, **fields)


IMDB, REUTERS, BOSTON = (m.RECIPES["best"] for m in (imdb, reuters, boston))
VARIANTS = {
    # IMDB (best: uni+bigrams, 30,000 words, 50,000 n-grams, multi-hot, Dense 16, dropout 0.5)
    "imdb-best": ("imdb", IMDB),
    "imdb-idf": ("imdb", replaced(IMDB, features={"log_count_idf": True})),
    "imdb-100k": ("imdb", replaced(IMDB, features={"vocabulary_size": 100_000})),
    "imdb-trigrams-100k": (
        "imdb",
        replaced(IMDB, features={"vocabulary_size": 100_000, "ngram_max": 3}),
    ),
    "imdb-idf-trigrams": (
        "imdb",
        replaced(IMDB, features={"ngram_max": 3, "log_count_idf": True}),
    ),
    "imdb-idf-trigrams-100k-8": (
        "imdb",
        replaced(
            IMDB,
            features={"vocabulary_size": 100_000, "ngram_max": 3, "log_count_idf": True},
            hidden=[8],
        ),
    ),
    # Reuters (best: all words, 10,000 features, log-count idf, Dense 128, dropout 0.5, ls 0.1, ×2)
    "reuters-best": ("reuters", REUTERS),
    "reuters-20k": ("reuters", replaced(REUTERS, features={"vocabulary_size": 20_000})),
    "reuters-bigrams-20k": (
        "reuters",
        replaced(REUTERS, features={"vocabulary_size": 20_000, "ngram_max": 2, "min_df": 2}),
    ),
    "reuters-256": ("reuters", replaced(REUTERS, hidden=[256])),
    "reuters-ensemble4": ("reuters", replaced(REUTERS, training={"ensemble": 4})),
    # Boston (best: 6 log features, Dense 256×2, dropout 0.3, Huber, Adam, 4-fold, ×5)
    "boston-best": ("boston", BOSTON),
    "boston-ensemble10": ("boston", replaced(BOSTON, training={"ensemble": 10})),
    "boston-512": ("boston", replaced(BOSTON, hidden=[512, 512])),
    "boston-mse": ("boston", replaced(BOSTON, loss="mse")),
}
assert all(isinstance(r.training, HoldOut | KFold) for _, r in VARIANTS.values())
assert TextFeatures  # the fields the text variants replace


def batch1_microseconds(path: Path, row: np.ndarray, runs: int = 2000) -> float:
    session = onnx_session(path, threads=1)
    name = session.get_inputs()[0].name
    feed = {name: row[None, :].astype(np.float32)}
    for _ in range(200):
        session.run(None, feed)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1e6)


def main() -> int:
    options = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    options.add_argument("variant", choices=VARIANTS)
    options.add_argument("--data-dir", default=os.environ.get("TRAINER_DATA_DIR", "../shared/data"))
    options.add_argument("--seed", type=int, default=0)
    args = options.parse_args()
    name, recipe = VARIANTS[args.variant]
    module = MODULES[name]
    dataset = data.load(name, Path(args.data_dir), None)
    started = time.monotonic()
    candidate = module.train(recipe, dataset, args.seed, TrainingLog(name, None))
    seconds = time.monotonic() - started
    model = candidate.fitted.model
    outputs = np.concatenate(
        [np.asarray(model(batch, training=False)) for batch in dense_batches(candidate.x_test, 512)]
    )
    test = score(candidate.serving.task, dataset.y_test, outputs)
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "model.onnx"
        export_onnx(model, candidate.serving.inputs[0], candidate.serving.outputs[0], path)
        first = next(dense_batches(candidate.x_test, 1))[0]
        microseconds = batch1_microseconds(path, first)
    print(
        json.dumps(
            {
                "variant": args.variant,
                "seed": args.seed,
                "validation": candidate.fitted.validation,
                "epochs": candidate.fitted.epochs,
                "test": test,
                "train_s": round(seconds, 1),
                "onnx_batch1_us": round(microseconds, 1),
                "input_dim": candidate.serving.inputs[0].shape[1],
            }
        ),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
