"""What differs between the three datasets: how their rows become model inputs, which model a recipe
builds, and how their graphs and outputs are named and described in the model repository."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import keras
import numpy as np

from service.encoding import TextEncoder, TextEncoding, fit_ngram_vocabulary
from service.repository import Feature, TabularEncoding, Target, TensorSpec
from trainer import data
from trainer.fit import Inputs, SparseRows
from trainer.models import price_regressor, text_classifier
from trainer.recipes import Recipe

IMDB_LABELS = ["negative", "positive"]

# The names keras.datasets.reuters.get_label_names() gives, in label order.
REUTERS_LABELS = [
    "cocoa",
    "grain",
    "veg-oil",
    "earn",
    "acq",
    "wheat",
    "copper",
    "housing",
    "money-supply",
    "coffee",
    "sugar",
    "trade",
    "reserves",
    "ship",
    "cotton",
    "carcass",
    "crude",
    "nat-gas",
    "cpi",
    "money-fx",
    "interest",
    "gnp",
    "meal-feed",
    "alum",
    "oilseed",
    "gold",
    "tin",
    "strategic-metal",
    "livestock",
    "retail",
    "ipi",
    "iron-steel",
    "rubber",
    "heat",
    "jobs",
    "lei",
    "bop",
    "zinc",
    "orange",
    "pet-chem",
    "dlr",
    "gas",
    "silver",
    "wpi",
    "hog",
    "lead",
]

# The 13 columns of the Boston housing data (Harrison & Rubinfeld, 1978), in order, each with the
# range its definition allows.
BOSTON_FEATURES = [
    Feature(name="crim", description="Per-capita crime rate by town", minimum=0),
    Feature(
        name="zn",
        description="Share of residential land zoned for lots over 25,000 sq. ft.",
        unit="%",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="indus",
        description="Share of non-retail business acres per town",
        unit="%",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="chas",
        description="Tract bounds the Charles River (1) or not (0)",
        minimum=0,
        maximum=1,
    ),
    Feature(
        name="nox",
        description="Nitric oxides concentration",
        unit="parts per 10 million",
        minimum=0,
        maximum=10,
    ),
    Feature(
        name="rm",
        description="Average number of rooms per dwelling",
        unit="rooms",
        minimum=1,
        maximum=30,
    ),
    Feature(
        name="age",
        description="Share of owner-occupied units built before 1940",
        unit="%",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="dis",
        description="Weighted distance to five Boston employment centres",
        unit="miles",
        minimum=0,
        maximum=100,
    ),
    Feature(
        name="rad", description="Index of accessibility to radial highways", minimum=1, maximum=24
    ),
    Feature(
        name="tax",
        description="Full-value property-tax rate",
        unit="$ per $10,000",
        minimum=0,
        maximum=10_000,
    ),
    Feature(
        name="ptratio",
        description="Pupil-teacher ratio by town",
        unit="pupils per teacher",
        minimum=1,
        maximum=100,
    ),
    Feature(
        name="b",
        description="1000·(Bk − 0.63)², Bk the town's share of Black residents "
        "(as defined in the 1978 data set)",
        minimum=0,
        maximum=396.9,
    ),
    Feature(
        name="lstat",
        description="Share of the population of lower status",
        unit="%",
        minimum=0,
        maximum=100,
    ),
]


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
    """The recipe's encoder; an n-gram vocabulary is learned from the training texts (no labels)."""
    features = recipe.features
    ngrams = None
    if features.features == "ngrams":
        ngrams = fit_ngram_vocabulary(
            data.cap_words(loaded.x_train, features.num_words),
            features.num_words,
            features.ngram_max,
            features.vocabulary_size,
            features.min_df,
        )
    encoding = TextEncoding(
        num_words=features.num_words,
        features=features.features,
        ngram_max=features.ngram_max,
        weighting=features.weighting,
        dim=len(ngrams) if ngrams is not None else features.num_words,
    )
    return TextEncoder.from_word_index(loaded.word_index, encoding, ngrams)


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
        y_train=loaded.y_train.astype(np.float32 if binary else np.int64),
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


def _prepare_boston(recipe: Recipe, data_dir: Path | None) -> Prepared:
    loaded = data.load_boston(data_dir)
    mean, variance = loaded.x_train.mean(axis=0), loaded.x_train.var(axis=0)
    return Prepared(
        task="regression",
        description="Median value of owner-occupied homes in a 1970s Boston suburb",
        x_train=loaded.x_train,
        y_train=loaded.y_train,
        x_test=loaded.x_test,
        y_test=loaded.y_test,
        build_model=lambda: price_regressor(mean, variance, recipe.network),
        inputs=[TensorSpec(name="features", datatype="FP32", shape=[-1, len(BOSTON_FEATURES)])],
        outputs=[TensorSpec(name="price", datatype="FP32", shape=[-1, 1])],
        encoding=TabularEncoding(features=BOSTON_FEATURES),
        labels=None,
        target=Target(name="price", description="Median home value", unit="$1000s"),
        files=loaded.files,
    )
