"""The book models' typed schemas under the names their clients import (`ReviewsRequest`,
`PricesAnswer`, …), and the first Boston house. Generated as every model's are, here from the
catalogue that the book models' configs are written from (`contract.catalog`), so no repository
has to be read to import them."""

from __future__ import annotations

from contract.catalog import (
    BOSTON_ENDPOINT,
    BOSTON_EXAMPLE,
    BOSTON_FEATURES,
    BOSTON_TARGET,
    IMDB_ENDPOINT,
    IMDB_LABELS,
    REUTERS_ENDPOINT,
    REUTERS_LABELS,
)
from service.api.rest.typed.api import TypedApi
from service.api.rest.typed.interface import Interface

EXAMPLE_HOUSE = BOSTON_EXAMPLE

_IMDB = TypedApi.of(
    Interface("imdb", "binary_classification", IMDB_ENDPOINT, labels=tuple(IMDB_LABELS))
)
_REUTERS = TypedApi.of(
    Interface(
        "reuters",
        "multiclass_classification",
        REUTERS_ENDPOINT,
        labels=tuple(REUTERS_LABELS),
        word_ids=REUTERS_ENDPOINT.word_ids_description,
    )
)
_BOSTON = TypedApi.of(
    Interface(
        "boston",
        "regression",
        BOSTON_ENDPOINT,
        target=BOSTON_TARGET,
        features=tuple(BOSTON_FEATURES),
    )
)

ReviewsRequest, SentimentAnswer = _IMDB.request, _IMDB.answer
NewswiresRequest, TopicsAnswer = _REUTERS.request, _REUTERS.answer
HousesRequest, PricesAnswer = _BOSTON.request, _BOSTON.answer
