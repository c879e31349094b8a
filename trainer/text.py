"""What the two text models share: their recipe's features, the encoder learned from the training
texts, and the encoded rows. The encoder is `contract.text`'s, so training and serving encode
alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import keras
import numpy as np

from contract.config import text_inputs
from contract.endpoint import TextEndpoint
from contract.sparse import SparseRows
from contract.text import TextEncoder, TextEncoding
from trainer.bag import EmbeddingBag, bags, naive_bayes_ratio
from trainer.data import TextDataset, cap_words
from trainer.fit import HoldOut, dense_stack, fit
from trainer.publish import Candidate, Serving
from trainer.report import TrainingLog
from trainer.vocabulary import fit_ngram_vocabulary, smooth_idf


@dataclass(frozen=True)
class TextFeatures:
    """How word-id sequences become the model's input row."""

    num_words: int  # keras.datasets' num_words: rarer words are out of vocabulary
    vocabulary_size: int | None = None  # None: a column per word id; else the most frequent n-grams
    ngram_max: int = 1  # with a vocabulary: words (1), or words and word pairs (2)
    min_df: int = 2  # with a vocabulary: n-grams in fewer training texts are left out
    log_count_idf: bool = False  # log(1 + count) × idf instead of multi-hot (0/1)
    # The model's input: the dense row, or its non-zero columns as ids (and values) into an
    # embedding bag (`trainer.bag`), whatever the vocabulary's size.
    form: Literal["dense", "sparse"] = "dense"
    # Sparse, binary tasks: trained on each column's naive-Bayes log-count ratio (learned from the
    # rows fitted on) × its value, folded into the served table: served as the plain encoding.
    naive_bayes: bool = False
    # Sparse, weighted: each row's values scaled to unit L2 norm in the graph, before the bag.
    l2_normalize: bool = False

    def __post_init__(self):
        if (self.naive_bayes or self.l2_normalize) and self.form != "sparse":
            raise ValueError("naive_bayes and l2_normalize are of the sparse form only")
        if self.l2_normalize and not self.log_count_idf:
            raise ValueError("l2_normalize scales a row's weights: a binary row has none")


@dataclass(frozen=True)
class TextRecipe:
    features: TextFeatures
    hidden: list[int]
    dropout: float
    training: HoldOut
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    learning_rate: float | None = None  # None: the optimizer's default (0.001)

    def make_optimizer(self) -> keras.optimizers.Optimizer:
        kind = {"rmsprop": keras.optimizers.RMSprop, "adam": keras.optimizers.Adam}[self.optimizer]
        return kind() if self.learning_rate is None else kind(self.learning_rate)


def fit_encoder(
    features: TextFeatures, word_index: dict[str, int], train: list[list[int]]
) -> TextEncoder:
    """The recipe's encoder. Its n-gram vocabulary and idf weights are learned from the training
    texts (never their labels)."""
    train = cap_words(train, features.num_words)
    ngrams = None
    if features.vocabulary_size is not None:
        ngrams = fit_ngram_vocabulary(
            train, features.num_words, features.ngram_max, features.vocabulary_size, features.min_df
        )
    settings = {
        "num_words": features.num_words,
        "features": "ngrams" if ngrams is not None else "word_ids",
        "ngram_max": features.ngram_max,
        "dim": len(ngrams) if ngrams is not None else features.num_words,
        "form": features.form,
    }
    if not features.log_count_idf:
        return TextEncoder.from_word_index(word_index, TextEncoding(**settings), ngrams)
    presence = TextEncoder.from_word_index(word_index, TextEncoding(**settings), ngrams)
    _, columns, _ = presence.coordinates(train)
    document_frequency = np.bincount(columns, minlength=presence.encoding.dim)
    encoding = TextEncoding(**settings, weighting="log_count_idf")
    idf = smooth_idf(document_frequency, len(train))
    return TextEncoder.from_word_index(word_index, encoding, ngrams, idf)


def encode(encoder: TextEncoder, sequences: list[list[int]]) -> SparseRows:
    return encoder.sparse_rows(cap_words(sequences, encoder.encoding.num_words))


def network(
    dim: int, recipe: TextRecipe, units: int, activation: str, scale: np.ndarray | None = None
) -> tuple:
    """The recipe's layers from its input to an output layer of `units` (inputs, outputs). Dense
    form: the row through the Dense stack; sparse form: ids (and weights, unless the encoding is
    binary) through an embedding bag that is the first Dense layer (of a linear model: the output
    layer), with `scale` per column while training (`trainer.bag`)."""
    if recipe.features.form == "dense":
        inputs = keras.Input((dim,), name="encoded_text")
        # Under a fixed seed, the order in which layers are made decides their initial weights:
        # the output layer is made first, as it was for the published versions.
        head = keras.layers.Dense(units, activation)
        return inputs, head(dense_stack(inputs, recipe.hidden, recipe.dropout))
    ids = keras.Input((None,), dtype="int64", name="ids")
    weights = keras.Input((None,), name="weights") if recipe.features.log_count_idf else None
    inputs = ids if weights is None else [ids, weights]
    normalize = recipe.features.l2_normalize
    if not recipe.hidden:  # a linear model, started at zero as logistic regression is
        bag = EmbeddingBag(dim, units, activation, scale, "zeros", normalize)
        return inputs, bag(ids, weights)
    x = EmbeddingBag(dim, recipe.hidden[0], "relu", scale, normalize=normalize)(ids, weights)
    x = keras.layers.Dropout(recipe.dropout)(x) if recipe.dropout else x
    x = dense_stack(x, recipe.hidden[1:], recipe.dropout)
    return inputs, keras.layers.Dense(units, activation)(x)


def train(
    recipe: TextRecipe,
    data: TextDataset,
    targets: np.ndarray,
    build_model: Callable[[int, TextRecipe, np.ndarray | None], keras.Model],
    seed: int,
    log: TrainingLog,
    endpoint: TextEndpoint,
    **serving,
) -> Candidate:
    """What both text models do: the recipe's encoder fitted on the training texts, the model
    fitted on their rows (a sparse one folded into its served form, `trainer.bag`), and the
    candidate, served with that encoding and its typed `endpoint` (`serving`: the rest of its
    `Serving`)."""
    if recipe.features.naive_bayes and serving["task"] != "binary_classification":
        raise ValueError("naive_bayes ratios are of a binary task's two classes")
    encoder = fit_encoder(recipe.features, data.word_index, data.x_train)
    dim = encoder.encoding.dim

    def build(x: SparseRows, y: np.ndarray) -> keras.Model:
        scale = naive_bayes_ratio(x, y) if recipe.features.naive_bayes else None
        return build_model(dim, recipe, scale)

    fitted = fit(build, encode(encoder, data.x_train), targets, recipe.training, seed, log)
    served = {"endpoint": endpoint}
    for bag in bags(fitted.model):
        bag.fold()
        served["gathered_width"] = served.get("gathered_width", 0) + bag.units
    return Candidate(
        fitted=fitted,
        x_test=encode(encoder, data.x_test),
        encoder=encoder,
        serving=Serving(
            inputs=text_inputs(encoder.encoding),
            encoding=encoder.encoding.model_copy(update=served),
            **serving,
        ),
    )
