"""Hyper-parameters as data: the book's recipe and our best one for each dataset.

`book` is chapter 3 of Deep Learning with Python to the letter. `best` applies what chapter 4 teaches
(hold-out or K-fold validation, early stopping, dropout, L2, a final fit on all training data) with
richer text features. Within a run nothing is chosen on the test set; the recipes themselves were
compared on validation scores, with test scores printed beside them.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

DATASETS = ("imdb", "reuters", "boston")
RECIPES = ("book", "best")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TextFeatures(_Frozen):
    """How word-id sequences become the model's input row (see service.encoding)."""

    num_words: int
    features: Literal["word_ids", "ngrams"] = "word_ids"
    ngram_max: int = 1
    vocabulary_size: int | None = Field(None, description="n-grams kept, by document frequency")
    min_df: int = 2
    weighting: Literal["binary", "count", "log_count_idf"] = "binary"


class TabularFeatures(_Frozen):
    """Transforms of raw feature columns, all done inside the exported graph."""

    log_features: list[str] = Field([], description="columns replaced by log(1 + x)")
    standardize_target: bool = Field(
        False,
        description="the output unit works in standard units of the training target, which a "
        "fixed layer scales back to the target's units (a better-conditioned last layer)",
    )


class Network(_Frozen):
    """A stack of Dense layers."""

    hidden: list[int]
    activation: str = "relu"
    dropout: float = 0.0
    input_dropout: float = 0.0
    l2: float = 0.0


class Optimizer(_Frozen):
    name: Literal["rmsprop", "adam"] = "rmsprop"
    learning_rate: float = 1e-3


class HoldOut(_Frozen):
    """Validate on the first `validation_size` training rows (as the book does), fit on the rest."""

    kind: Literal["holdout"] = "holdout"
    validation_size: int
    epochs: int
    batch_size: int
    early_stopping_patience: int | None = Field(None, description="None: run all epochs")
    monitor: Literal["loss", "metric"] = Field(
        "metric", description="what early stopping and the best epoch follow, on validation"
    )
    refit_on_all: bool = Field(
        False, description="then fit a fresh model on all training rows for the best epoch count"
    )


class KFold(_Frozen):
    """K-fold validation, then the final model is fitted on all training rows."""

    kind: Literal["kfold"] = "kfold"
    folds: int
    epochs: int
    batch_size: int
    choose_epochs: bool = Field(
        False, description="final fit for the epoch count with the best mean validation score"
    )
    smoothing: int = Field(
        1, ge=1, description="moving-average window over that mean curve when choosing"
    )
    monitor: Literal["loss", "metric"] = "metric"


class Recipe(_Frozen):
    dataset: Literal["imdb", "reuters", "boston"]
    name: Literal["book", "best"]
    features: TextFeatures | None = None
    tabular: TabularFeatures | None = None
    network: Network
    optimizer: Optimizer = Optimizer()
    loss: Literal[
        "binary_crossentropy",
        "sparse_categorical_crossentropy",
        "categorical_crossentropy",  # one-hot targets, so that label smoothing can apply
        "mse",
        "huber",
    ]
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    validation: HoldOut | KFold = Field(discriminator="kind")
    ensemble: int = Field(
        1, ge=1, description="the final model averages this many independently trained ones"
    )

    @model_validator(mode="after")
    def _ensemble_needs_a_final_fit(self) -> Recipe:
        if (
            self.ensemble > 1
            and isinstance(self.validation, HoldOut)
            and not self.validation.refit_on_all
        ):
            raise ValueError("an ensemble is made by the final fit: set refit_on_all")
        return self

    def with_epochs(self, epochs: int) -> Recipe:
        return self.model_copy(
            update={"validation": self.validation.model_copy(update={"epochs": epochs})}
        )


RECIPE_BOOK: dict[tuple[str, str], Recipe] = {
    ("imdb", "book"): Recipe(
        dataset="imdb",
        name="book",
        features=TextFeatures(num_words=10_000),
        network=Network(hidden=[16, 16]),
        loss="binary_crossentropy",
        validation=HoldOut(validation_size=10_000, epochs=4, batch_size=512, refit_on_all=True),
    ),
    ("imdb", "best"): Recipe(
        dataset="imdb",
        name="best",
        features=TextFeatures(
            num_words=30_000, features="ngrams", ngram_max=2, vocabulary_size=50_000
        ),
        network=Network(hidden=[16], dropout=0.5),
        loss="binary_crossentropy",
        validation=HoldOut(
            validation_size=5_000,
            epochs=20,
            batch_size=512,
            early_stopping_patience=2,
            refit_on_all=True,
        ),
    ),
    ("reuters", "book"): Recipe(
        dataset="reuters",
        name="book",
        features=TextFeatures(num_words=10_000),
        network=Network(hidden=[64, 64]),
        loss="sparse_categorical_crossentropy",
        validation=HoldOut(validation_size=1_000, epochs=9, batch_size=512, refit_on_all=True),
    ),
    ("reuters", "best"): Recipe(
        dataset="reuters",
        name="best",
        # Every word (no num_words cap); the 10,000 most common, weighted by log count × idf.
        features=TextFeatures(
            num_words=31_000,
            features="ngrams",
            vocabulary_size=10_000,
            min_df=1,
            weighting="log_count_idf",
        ),
        network=Network(hidden=[128], dropout=0.5),
        loss="categorical_crossentropy",
        label_smoothing=0.1,
        validation=HoldOut(
            validation_size=1_000,
            epochs=30,
            batch_size=512,
            early_stopping_patience=3,
            monitor="loss",
            refit_on_all=True,
        ),
        ensemble=2,
    ),
    ("boston", "book"): Recipe(
        dataset="boston",
        name="book",
        network=Network(hidden=[64, 64]),
        loss="mse",
        validation=KFold(folds=4, epochs=80, batch_size=16),
    ),
    ("boston", "best"): Recipe(
        dataset="boston",
        name="best",
        tabular=TabularFeatures(
            log_features=["crim", "zn", "dis", "rad", "tax", "lstat"], standardize_target=True
        ),
        network=Network(hidden=[256, 256], dropout=0.3),
        optimizer=Optimizer(name="adam"),
        loss="huber",
        validation=KFold(folds=4, epochs=200, batch_size=16, choose_epochs=True, smoothing=5),
        ensemble=5,
    ),
}


def recipe_for(dataset: str, name: str) -> Recipe:
    return RECIPE_BOOK[(dataset, name)]
