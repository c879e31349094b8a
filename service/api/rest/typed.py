"""Typed endpoints for people: raw review texts, raw newswires, houses with named features.

Texts are encoded with `contract.text` and the vocabulary saved beside the model, the very code
the trainer encoded its training data with.
"""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, create_model

from contract.catalog import BOSTON_FEATURES
from service.admission import BodyKind
from service.api.rest import VersionQuery, call_of, dataplane, served, wire
from service.api.rest.errors import ErrorResponse, protocol_route
from service.api.rest.v2 import INFER_ERRORS
from service.errors import BadInputError

router = APIRouter(
    prefix="/api", tags=["Typed endpoints"], route_class=protocol_route(bad_input=422)
)
ERRORS = {
    **{status: spec for status, spec in INFER_ERRORS.items() if status != 400},
    415: {"model": ErrorResponse, "description": "the body is not labelled JSON"},
    422: {"model": ErrorResponse, "description": "bad input, naming the field"},
}

EXAMPLE_REVIEW = (
    "A wonderful little film: the acting is superb, the script sharp and funny, "
    "and I would happily watch it again."
)
EXAMPLE_NEWSWIRE = (
    "the company said net profit rose to 12 mln dlrs or 85 cts a share in the first quarter "
    "from 9 mln dlrs or 64 cts a year ago on revenues of 410 mln dlrs"
)
# The first house of the Boston data set.
EXAMPLE_HOUSE = dict(zip([f.name for f in BOSTON_FEATURES], [
    0.00632, 18.0, 2.31, 0.0, 0.538, 6.575, 65.2, 4.09, 1.0, 296.0, 15.3, 396.9, 4.98,
], strict=True))  # fmt: skip


class Answer(BaseModel):
    model: str
    version: int


class ReviewsRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [{"reviews": [EXAMPLE_REVIEW]}]}
    )

    reviews: list[str] = Field(min_length=1, description="Raw review texts (English)")


class Sentiment(BaseModel):
    label: str = Field(description="negative or positive")
    probability: float = Field(description="probability of `label`")
    scores: dict[str, float] = Field(description="probability of each label")


class SentimentAnswer(Answer):
    predictions: list[Sentiment]


class NewswiresRequest(BaseModel):
    """Exactly one of `newswires` or `word_ids`."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "examples": [{"newswires": [EXAMPLE_NEWSWIRE], "top_k": 3}],
            "oneOf": [
                {"required": ["newswires"], "properties": {"newswires": {"type": "array"}}},
                {"required": ["word_ids"], "properties": {"word_ids": {"type": "array"}}},
            ],
        },
    )

    newswires: list[str] | None = Field(None, min_length=1, description="Raw newswire texts")
    word_ids: list[list[Annotated[int, Field(ge=0)]]] | None = Field(
        None,
        min_length=1,
        description="Or newswires already encoded as keras.datasets.reuters encodes them "
        "(1 = start, 2 = out of vocabulary, word rank + 3); ids beyond the model's vocabulary "
        "count as out of vocabulary",
    )
    top_k: int = Field(3, ge=1, le=46, description="how many topics to return, most probable first")


class TopicScore(BaseModel):
    topic: str
    probability: float


class Topics(BaseModel):
    topics: list[TopicScore]


class TopicsAnswer(Answer):
    predictions: list[Topics]


FP32_MAX = float(np.finfo(np.float32).max)  # the model computes in float32
# Strict: a number is a JSON number, never a string ("6.4") or a boolean (false).
House = create_model(
    "House",
    __config__=ConfigDict(
        extra="forbid", strict=True, json_schema_extra={"examples": [EXAMPLE_HOUSE]}
    ),
    **{
        f.name: (
            float,
            Field(
                ge=-FP32_MAX if f.minimum is None else f.minimum,
                le=FP32_MAX if f.maximum is None else f.maximum,
                allow_inf_nan=False,
                description=f.description + (f" ({f.unit})" if f.unit else ""),
            ),
        )
        for f in BOSTON_FEATURES
    },
)


class HousesRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    houses: list[House] = Field(min_length=1, description="Houses with the 13 named features")  # type: ignore[valid-type]


class Price(BaseModel):
    price: float
    unit: str


class PricesAnswer(Answer):
    predictions: list[Price]


@wire.post(router, "/imdb", body=ReviewsRequest, answer=SentimentAnswer, responses=ERRORS)
async def imdb_sentiment(request: Request, version: VersionQuery = None):
    """Sentiment of movie reviews."""
    model = served(request, "imdb", version)
    body = await wire.read(request, ReviewsRequest, BodyKind.TEXTS)
    plane, call = dataplane(request), call_of(request)
    positive = (await plane.infer_texts(call, model, body.reviews, "reviews"))[:, 0]
    negative_label, positive_label = model.config.labels
    predictions = []
    for p in positive.tolist():
        scores = {negative_label: 1 - p, positive_label: p}
        label = positive_label if p > 0.5 else negative_label
        predictions.append({"label": label, "probability": scores[label], "scores": scores})
    return wire.answer(
        request, {"model": model.name, "version": model.version, "predictions": predictions}
    )


@wire.post(router, "/reuters", body=NewswiresRequest, answer=TopicsAnswer, responses=ERRORS)
async def reuters_topics(request: Request, version: VersionQuery = None):
    """Topics of newswires, most probable first."""
    model = served(request, "reuters", version)
    body = await wire.read(request, NewswiresRequest, BodyKind.TEXTS)
    if (body.newswires is None) == (body.word_ids is None):
        raise BadInputError("send exactly one of 'newswires' (texts) or 'word_ids'", "newswires")
    plane, call = dataplane(request), call_of(request)
    if body.newswires is not None:
        probabilities = await plane.infer_texts(call, model, body.newswires, "newswires")
    else:
        probabilities = await plane.infer_word_ids(call, model, body.word_ids, "word_ids")
    labels = model.config.labels
    top = np.argsort(-probabilities, axis=1, kind="stable")[:, : body.top_k]
    predictions = [
        {"topics": [{"topic": labels[j], "probability": float(row[j])} for j in order]}
        for row, order in zip(probabilities, top, strict=True)
    ]
    return wire.answer(
        request, {"model": model.name, "version": model.version, "predictions": predictions}
    )


@wire.post(router, "/boston", body=HousesRequest, answer=PricesAnswer, responses=ERRORS)
async def boston_price(request: Request, version: VersionQuery = None):
    """Median value of owner-occupied homes, in $1000s."""
    model = served(request, "boston", version)
    body = await wire.read(request, HousesRequest, BodyKind.NUMBERS)
    plane = dataplane(request)
    plane.check_rows(len(body.houses), "houses", "houses")
    order = [f.name for f in model.config.encoding.features]
    rows = np.array([[getattr(house, name) for name in order] for house in body.houses])
    prices = (await plane.infer(call_of(request), model, rows, "houses"))[:, 0]
    unit = model.config.target.unit
    predictions = [{"price": p, "unit": unit} for p in prices.tolist()]
    return wire.answer(
        request, {"model": model.name, "version": model.version, "predictions": predictions}
    )
