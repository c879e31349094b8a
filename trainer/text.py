"""What the two text models share: their recipe's features, the encoder learned from the training
texts, and the encoded rows. The encoder is `contract.text`'s, so training and serving encode
alike."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import keras
import numpy as np

from contract.config import text_inputs
from contract.endpoint import TextEndpoint
from contract.sparse import SparseRows
from contract.text import TextEncoder, TextEncoding
from trainer.data import TextDataset, cap_words
from trainer.fit import HoldOut, fit
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


@dataclass(frozen=True)
class TextRecipe:
    features: TextFeatures
    hidden: list[int]
    dropout: float
    training: HoldOut


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


def train(
    recipe: TextRecipe,
    data: TextDataset,
    targets: np.ndarray,
    build_model: Callable[[int, TextRecipe], keras.Model],
    seed: int,
    log: TrainingLog,
    endpoint: TextEndpoint,
    **serving,
) -> Candidate:
    """What both text models do: the recipe's encoder fitted on the training texts, the model
    fitted on their rows, and the candidate, served with that encoding and its typed `endpoint`
    (`serving`: the rest of its `Serving`)."""
    encoder = fit_encoder(recipe.features, data.word_index, data.x_train)
    dim = encoder.encoding.dim
    fitted = fit(
        lambda: build_model(dim, recipe),
        encode(encoder, data.x_train),
        targets,
        recipe.training,
        seed,
        log,
    )
    return Candidate(
        fitted=fitted,
        x_test=encode(encoder, data.x_test),
        encoder=encoder,
        serving=Serving(
            inputs=text_inputs(encoder.encoding),
            encoding=encoder.encoding.model_copy(update={"endpoint": endpoint}),
            **serving,
        ),
    )
