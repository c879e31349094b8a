"""IMDB review sentiment: load → build the model → fit with callbacks → the candidate to export.

`book` is chapter 3 to the letter: multi-hot over the 10,000 most frequent words, Dense 16×2,
rmsprop, 4 epochs of batch 512 validated on the first 10,000 reviews, then refitted on all.
`best`: word unigrams and bigrams over a 30,000-word vocabulary, the 50,000 most frequent in the
training reviews as a multi-hot row; Dense 16 with dropout 0.5; early stopping on 5,000 held-out
reviews, then refitted on all 25,000.
`sparse`: naive-Bayes-weighted logistic regression over word uni-, bi- and trigrams (every word,
the 500,000 most frequent n-grams of those in at least 2 training reviews) in the sparse form: an embedding bag
of one unit whose table is the ratio × the weight (`trainer.bag`), Adam; early stopping on 5,000
held-out reviews, refitted on all 25,000, calibrated by the held-out reviews' temperature.
"""

from __future__ import annotations

import keras
import numpy as np

from contract.catalog import IMDB_ENDPOINT, IMDB_LABELS
from contract.config import TensorSpec
from trainer import text
from trainer.data import TextDataset
from trainer.fit import HoldOut
from trainer.publish import Candidate
from trainer.report import TrainingLog
from trainer.text import TextFeatures, TextRecipe

LABELS = IMDB_LABELS
METRIC = "accuracy"
TARGETS = {"best": 0.900, "sparse": 0.915}  # what each recipe must reach on the book's test set

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
    "sparse": TextRecipe(
        features=TextFeatures(
            num_words=100_000,  # every word of the word index (88,584)
            vocabulary_size=500_000,
            ngram_max=3,
            min_df=2,
            form="sparse",
            naive_bayes=True,
        ),
        hidden=[],
        dropout=0.0,
        optimizer="adam",
        training=HoldOut(
            validation_size=5_000, epochs=30, batch_size=256, patience=2, calibrate=True
        ),
    ),
}


def build_model(input_dim: int, recipe: TextRecipe, scale: np.ndarray | None = None) -> keras.Model:
    """`scale`: the sparse form's per-column training scale (`TextFeatures.naive_bayes`)."""
    inputs, outputs = text.network(input_dim, recipe, 1, "sigmoid", scale)
    model = keras.Model(inputs, outputs, name="imdb_sentiment")
    model.compile(
        optimizer=recipe.make_optimizer(), loss="binary_crossentropy", metrics=["accuracy"]
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
