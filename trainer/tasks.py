"""What differs between the three datasets: how their rows become model inputs, which model a recipe
builds, and how their graphs and outputs are named and described in the model repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from service.catalog import BOSTON_FEATURES, BOSTON_TARGET, IMDB_LABELS, REUTERS_LABELS
from service.encoding import TextEncoder, TextEncoding, fit_ngram_vocabulary, smooth_idf
from service.repository import TabularEncoding, Target, TensorSpec
from trainer import data
from trainer.fit import Inputs, SparseRows
from trainer.models import price_regressor, text_classifier
from trainer.recipes import Recipe, TabularFeatures


@dataclass
class Prepared:
    """A dataset made ready for one recipe: inputs, targets, and everything the config records."""

    task: str
    description: str
    x_train: Inputs
    y_train: np.ndarray
    x_test: Inputs
    y_test: np.ndarray
    build_model: Callable[[], keras.Model]
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    encoding: TextEncoding | TabularEncoding
    labels: list[str] | None
    target: Target | None
    files: dict[str, str]
    encoder: TextEncoder | None = None


def prepare(recipe: Recipe, data_dir: Path | None) -> Prepared:
    if recipe.dataset == "boston":
        return _prepare_boston(recipe, data_dir)
    loaded = data.load_imdb(data_dir) if recipe.dataset == "imdb" else data.load_reuters(data_dir)
    labels = IMDB_LABELS if recipe.dataset == "imdb" else REUTERS_LABELS
    return _prepare_text(recipe, loaded, labels)


def encoder_for(recipe: Recipe, loaded: data.TextDataset) -> TextEncoder:
    """The recipe's encoder. Its n-gram vocabulary and idf weights are learned from the training
    texts (never their labels)."""
    features = recipe.features
    train = data.cap_words(loaded.x_train, features.num_words)
    ngrams = None
    if features.features == "ngrams":
        ngrams = fit_ngram_vocabulary(
            train, features.num_words, features.ngram_max, features.vocabulary_size, features.min_df
        )
    settings = {
        "num_words": features.num_words,
        "features": features.features,
        "ngram_max": features.ngram_max,
        "dim": len(ngrams) if ngrams is not None else features.num_words,
    }
    if features.weighting != "log_count_idf":
        encoding = TextEncoding(**settings, weighting=features.weighting)
        return TextEncoder.from_word_index(loaded.word_index, encoding, ngrams)
    presence = TextEncoder.from_word_index(loaded.word_index, TextEncoding(**settings), ngrams)
    _, columns, _ = presence.coordinates(train)
    document_frequency = np.bincount(columns, minlength=presence.encoding.dim)
    encoding = TextEncoding(**settings, weighting="log_count_idf")
    idf = smooth_idf(document_frequency, len(train))
    return TextEncoder.from_word_index(loaded.word_index, encoding, ngrams, idf)


def _prepare_text(recipe: Recipe, loaded: data.TextDataset, labels: list[str]) -> Prepared:
    encoder = encoder_for(recipe, loaded)
    dim = encoder.encoding.dim

    def encoded(sequences) -> SparseRows:
        rows, columns, values = encoder.coordinates(
            data.cap_words(sequences, encoder.encoding.num_words)
        )
        return SparseRows(rows, columns, values, (len(sequences), dim))

    binary = len(labels) == 2
    return Prepared(
        task="binary_classification" if binary else "multiclass_classification",
        description="Sentiment of an IMDB movie review"
        if binary
        else "Topic of a Reuters newswire (46 topics)",
        x_train=encoded(loaded.x_train),
        y_train=_targets(loaded.y_train, binary, len(labels), recipe),
        x_test=encoded(loaded.x_test),
        y_test=loaded.y_test.astype(np.float32 if binary else np.int64),
        build_model=lambda: text_classifier(dim, len(labels), recipe.network),
        inputs=[TensorSpec(name="encoded_text", datatype="FP32", shape=[-1, dim])],
        outputs=[
            TensorSpec(
                name="probability" if binary else "probabilities",
                datatype="FP32",
                shape=[-1, 1 if binary else len(labels)],
            )
        ],
        encoding=encoder.encoding,
        labels=list(labels),
        target=None,
        files=loaded.files,
        encoder=encoder,
    )


def _targets(labels: np.ndarray, binary: bool, classes: int, recipe: Recipe) -> np.ndarray:
    if binary:
        return labels.astype(np.float32)
    if recipe.loss == "categorical_crossentropy":
        return np.eye(classes, dtype=np.float32)[labels]
    return labels.astype(np.int64)


def _prepare_boston(recipe: Recipe, data_dir: Path | None) -> Prepared:
    loaded = data.load_boston(data_dir)
    tabular = recipe.tabular or TabularFeatures()
    names = [f.name for f in BOSTON_FEATURES]
    unknown = set(tabular.log_features) - set(names)
    if unknown:
        raise ValueError(f"log_features names unknown columns {sorted(unknown)}")
    log_mask = np.array([name in tabular.log_features for name in names], dtype=np.float32)
    # The statistics are those of the features as the network sees them: after the log.
    seen = np.where(log_mask > 0, np.log1p(np.maximum(loaded.x_train, 0)), loaded.x_train)
    mean, variance = seen.mean(axis=0), seen.var(axis=0)
    target_mean, target_std = (
        (float(loaded.y_train.mean()), float(loaded.y_train.std()))
        if tabular.standardize_target
        else (0.0, 1.0)
    )
    return Prepared(
        task="regression",
        description="Median value of owner-occupied homes in a 1970s Boston suburb",
        x_train=loaded.x_train,
        y_train=loaded.y_train,
        x_test=loaded.x_test,
        y_test=loaded.y_test,
        build_model=lambda: price_regressor(
            mean,
            variance,
            recipe.network,
            log_mask if log_mask.any() else None,
            target_mean,
            target_std,
        ),
        inputs=[TensorSpec(name="features", datatype="FP32", shape=[-1, len(BOSTON_FEATURES)])],
        outputs=[TensorSpec(name="price", datatype="FP32", shape=[-1, 1])],
        encoding=TabularEncoding(features=BOSTON_FEATURES),
        labels=None,
        target=BOSTON_TARGET,
        files=loaded.files,
    )
