"""IMDB review sentiment: load → build the model → fit with callbacks → the candidate to export.

`book` is chapter 3 to the letter: multi-hot over the 10,000 most frequent words, Dense 16×2,
rmsprop, 4 epochs of batch 512 validated on the first 10,000 reviews, then refitted on all.
`best`: word unigrams and bigrams over a 30,000-word vocabulary, the 50,000 most frequent in the
training reviews as a multi-hot row; Dense 16 with dropout 0.5; early stopping on 5,000 held-out
reviews, then refitted on all 25,000.
"""

from __future__ import annotations

import keras
import numpy as np

from contract.catalog import IMDB_ENDPOINT, IMDB_LABELS
from contract.config import TensorSpec
from trainer import text
from trainer.data import TextDataset
from trainer.fit import HoldOut, dense_stack
from trainer.publish import Candidate
from trainer.report import TrainingLog
from trainer.text import TextFeatures, TextRecipe

LABELS = IMDB_LABELS
METRIC, TARGET = "accuracy", 0.900  # what the best recipe must reach on the book's test set

RECIPES = {
    "book": TextRecipe(
        features=TextFeatures(num_words=10_000),
        hidden=[16, 16],
        dropout=0.0,
        training=HoldOut(validation_size=10_000, epochs=4, batch_size=512),
    ),
    "best": TextRecipe(
        features=TextFeatures(num_words=30_000, vocabulary_size=50_000, ngram_max=2),
        hidden=[16],
        dropout=0.5,
        training=HoldOut(validation_size=5_000, epochs=20, batch_size=512, patience=2),
    ),
}


def build_model(input_dim: int, recipe: TextRecipe) -> keras.Model:
    inputs = keras.Input((input_dim,), name="encoded_text")
    # Under a fixed seed, the order in which layers are made decides their initial weights: the
    # output layer is made first, as it was for the published versions.
    head = keras.layers.Dense(1, "sigmoid")
    outputs = head(dense_stack(inputs, recipe.hidden, recipe.dropout))
    model = keras.Model(inputs, outputs, name="imdb_sentiment")
    model.compile(
        optimizer=keras.optimizers.RMSprop(), loss="binary_crossentropy", metrics=["accuracy"]
    )
    return model


def train(recipe: TextRecipe, data: TextDataset, seed: int, log: TrainingLog) -> Candidate:
    return text.train(
        recipe,
        data,
        data.y_train.astype(np.float32),
        build_model,
        seed,
        log,
        IMDB_ENDPOINT,
        task="binary_classification",
        description="Sentiment of an IMDB movie review",
        outputs=[TensorSpec(name="probability", datatype="FP32", shape=[-1, 1])],
        labels=list(LABELS),
    )
