"""The answer side of a typed endpoint, by the model's task: one prediction's schema, generated
from the config, the request fields the task adds, and how the model's output rows become
predictions.

- binary classification: `{label, probability, scores}`, from one output column (the second
  label's probability) or one column per label;
- multiclass classification: the `top_k` most probable labels, most probable first (`top_k` a
  field of the request);
- regression: the value (column 0) under the target's name, and the target's unit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from pydantic import BaseModel, Field, create_model

from service.api.rest.typed.interface import Interface

Predict = Callable[[np.ndarray, Any], list[dict]]  # output rows, the request's body → predictions
DEFAULT_TOP_K = 3


class Answer(BaseModel):
    # The answer's common part: every typed answer adds its `predictions`.
    model: str
    version: int


@dataclass(frozen=True)
class AnswerSide:
    prediction: type[BaseModel]
    predict: Predict
    request_fields: dict = field(default_factory=dict)  # as `create_model` takes them
    request_example: dict = field(default_factory=dict)


def answer_side(interface: Interface) -> AnswerSide:
    return {
        "binary_classification": _binary,
        "multiclass_classification": _multiclass,
        "regression": _regression,
    }[interface.task](interface)


def answer_schema(interface: Interface, prediction: type[BaseModel]) -> type[BaseModel]:
    return create_model(
        interface.schema("answer"),
        __base__=Answer,
        predictions=(list[prediction], ...),
    )


def _binary(interface: Interface) -> AnswerSide:
    key, labels = interface.label, interface.labels
    prediction = create_model(
        interface.schema("prediction"),
        **{
            key: (str, Field(description=" or ".join(labels))),
            "probability": (float, Field(description=f"probability of `{key}`")),
            "scores": (dict[str, float], Field(description="probability of each label")),
        },
    )
    first, second = labels

    def predict(outputs: np.ndarray, body: Any) -> list[dict]:
        predictions = []
        if outputs.shape[1] == 1:  # the second label's probability
            for p in outputs[:, 0].tolist():
                scores = {first: 1 - p, second: p}
                label = second if p > 0.5 else first
                predictions.append({key: label, "probability": scores[label], "scores": scores})
            return predictions
        for row in outputs.tolist():  # a probability per label
            scores = dict(zip(labels, row, strict=True))
            label = second if row[1] > row[0] else first
            predictions.append({key: label, "probability": scores[label], "scores": scores})
        return predictions

    return AnswerSide(prediction, predict)


def _multiclass(interface: Interface) -> AnswerSide:
    key, many, labels = interface.label, interface.label_plural, interface.labels
    score = create_model(
        interface.schema("label_score"), **{key: (str, ...), "probability": (float, ...)}
    )
    prediction = create_model(interface.schema("prediction"), **{many: (list[score], ...)})
    default = min(DEFAULT_TOP_K, len(labels))
    top_k = Field(
        default,
        ge=1,
        le=len(labels),
        description=f"how many {many} to return, most probable first",
    )

    def predict(outputs: np.ndarray, body: Any) -> list[dict]:
        top = np.argsort(-outputs, axis=1, kind="stable")[:, : body.top_k]
        return [
            {many: [{key: labels[j], "probability": float(row[j])} for j in order]}
            for row, order in zip(outputs, top, strict=True)
        ]

    return AnswerSide(prediction, predict, {"top_k": (int, top_k)}, {"top_k": default})


def _regression(interface: Interface) -> AnswerSide:
    key, unit = interface.value, interface.target.unit
    prediction = create_model(
        interface.schema("prediction"), **{key: (float, ...), "unit": (str, ...)}
    )

    def predict(outputs: np.ndarray, body: Any) -> list[dict]:
        return [{key: value, "unit": unit} for value in outputs[:, 0].tolist()]

    return AnswerSide(prediction, predict)
