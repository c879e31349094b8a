"""Tiny recipes for the synthetic data, put in place of the real ones so that tests run the trainer
exactly as people do (`trainer train …`), in seconds."""

from __future__ import annotations

import dataclasses

import pytest

from trainer import boston, imdb, reuters
from trainer.fit import HoldOut, KFold
from trainer.text import TextFeatures

TINY = {
    (imdb, "book"): dataclasses.replace(
        imdb.RECIPES["book"],
        features=TextFeatures(num_words=13),
        hidden=[4],
        # long enough to learn the synthetic reviews (the tests check that it did)
        training=HoldOut(validation_size=20, epochs=40, batch_size=8),
    ),
    (imdb, "best"): dataclasses.replace(
        imdb.RECIPES["best"],
        features=TextFeatures(num_words=13, vocabulary_size=40, ngram_max=2),
        training=HoldOut(validation_size=20, epochs=4, batch_size=8, patience=1),
    ),
    (imdb, "sparse"): dataclasses.replace(
        imdb.RECIPES["sparse"],
        features=TextFeatures(
            num_words=13, vocabulary_size=60, ngram_max=3, min_df=1, form="sparse", naive_bayes=True
        ),
        training=HoldOut(validation_size=20, epochs=6, batch_size=8, patience=2, calibrate=True),
    ),
    (reuters, "sparse"): dataclasses.replace(
        reuters.RECIPES["sparse"],
        features=TextFeatures(
            num_words=100, vocabulary_size=400, ngram_max=2, log_count_idf=True, form="sparse"
        ),
        hidden=[16],
        training=HoldOut(
            validation_size=60,
            epochs=3,
            batch_size=32,
            patience=1,
            monitor="val_loss",
            ensemble=2,
            calibrate=True,
        ),
    ),
    (reuters, "best"): dataclasses.replace(
        reuters.RECIPES["best"],
        features=TextFeatures(num_words=100, vocabulary_size=400, ngram_max=2),
        hidden=[16],
        training=HoldOut(
            validation_size=60, epochs=3, batch_size=32, patience=1, monitor="val_loss", ensemble=2
        ),
    ),
    (boston, "best"): dataclasses.replace(
        boston.RECIPES["best"],
        hidden=[8],
        dropout=0.0,
        log_features=("crim", "lstat"),
        # long enough to learn the synthetic prices (the tests check that it did)
        training=KFold(folds=3, epochs=40, batch_size=4, choose_epochs=True, ensemble=2),
    ),
    (boston, "book"): dataclasses.replace(
        boston.RECIPES["book"], training=KFold(folds=3, epochs=2, batch_size=16)
    ),
}


@pytest.fixture
def tiny_recipes(monkeypatch):
    for (module, name), recipe in TINY.items():
        monkeypatch.setitem(module.RECIPES, name, recipe)
