"""What a model's typed endpoint is generated from: the parts of its config that a person sees
(task, labels or target, the encoding's features or text field, the endpoint's words), with every
default the config leaves open resolved here, in one place."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from contract.config import Feature, ModelConfig, TabularEncoding, Target
from contract.endpoint import TabularEndpoint, TextEndpoint
from contract.text import TextEncoding

Task = Literal["binary_classification", "multiclass_classification", "regression"]
# The schema name of each role where the config names none: the model's name in CamelCase, then
# this (`BostonRequest`); the label's score is named after the label (`BostonLabelScore`).
DEFAULT_SUFFIXES = {
    "request": "Request",
    "row": "Row",
    "prediction": "Prediction",
    "answer": "Answer",
}
_IDENTIFIER = re.compile(r"^[a-z][a-z0-9_]*$")


class NoTypedEndpointError(Exception):
    """The model has no typed endpoint; the message says why."""


@dataclass(frozen=True)
class Interface:
    """One model version's typed endpoint, as its config describes it."""

    model: str
    task: Task
    endpoint: TextEndpoint | TabularEndpoint
    description: str = ""
    labels: tuple[str, ...] = ()
    target: Target | None = None
    features: tuple[Feature, ...] = ()  # tabular: the input row's columns, in order
    datatype: str = "FP32"  # the input's: what a feature's value must fit
    word_ids: str | None = None  # text: what `word_ids` holds, where a request may send them

    @classmethod
    def of(cls, config: ModelConfig) -> Interface:
        """The interface of a config, or `NoTypedEndpointError` saying why it has none."""
        encoding = config.encoding
        if encoding is None:
            raise NoTypedEndpointError("its config has no encoding (named features or text)")
        if config.task is None:
            raise NoTypedEndpointError("its config names no task")
        columns = config.outputs[0].shape[-1] if config.outputs[0].shape else -1
        if config.task == "binary_classification" and (
            len(config.labels) != 2 or columns not in (1, 2)
        ):
            raise NoTypedEndpointError(
                "a binary classifier's typed endpoint needs two labels, 1 or 2 outputs"
            )
        if config.task == "multiclass_classification" and columns != len(config.labels):
            raise NoTypedEndpointError(
                "its first output's last dimension is not the number of labels"
            )
        common = {
            "model": config.name,
            "task": config.task,
            "endpoint": encoding.endpoint,
            "description": config.description,
            "labels": tuple(config.labels or ()),
            "target": config.target,
            "datatype": config.inputs[0].datatype,
        }
        if isinstance(encoding, TabularEncoding):
            return cls(**common, features=tuple(encoding.features))
        return cls(**common, word_ids=_word_ids_description(encoding))

    @property
    def tabular(self) -> bool:
        return isinstance(self.endpoint, TabularEndpoint)

    @property
    def route_name(self) -> str:
        """`boston_price`: the OpenAPI operation's id (with the path) and summary."""
        return f"{self.model}_{self.endpoint.name}"

    @property
    def summary(self) -> str:
        """What the endpoint does, in a sentence."""
        return self.endpoint.description or self.description or f"Predictions of {self.model}"

    @property
    def items(self) -> str:
        return self.endpoint.items

    @property
    def items_description(self) -> str:
        if self.endpoint.items_description:
            return self.endpoint.items_description
        if self.tabular:
            return f"{self.items.capitalize()} with the {len(self.features)} named features"
        return f"Raw {self.items}"

    @property
    def label(self) -> str:
        """Classification: the answer's name of one label."""
        return self.endpoint.label

    @property
    def label_plural(self) -> str:
        """Multiclass: the answer's name of the list of labels."""
        return plural(self.endpoint.label)

    @property
    def value(self) -> str:
        """Regression: the answer's name of the value; the target's name where it is one."""
        if self.endpoint.value:
            return self.endpoint.value
        name = self.target.name if self.target else ""
        return name if _IDENTIFIER.match(name) and name != "unit" else "value"

    def schema(self, role: str) -> str:
        """The schema name of `role` (a field of `SchemaNames`) in the OpenAPI document."""
        named = getattr(self.endpoint.schemas, role)
        if named:
            return named
        if role == "label_score":
            return f"{camel(self.model)}{camel(self.label)}Score"
        return camel(self.model) + DEFAULT_SUFFIXES[role]


def _word_ids_description(encoding: TextEncoding) -> str | None:
    endpoint = encoding.endpoint
    if not endpoint.word_ids:
        return None
    return endpoint.word_ids_description or (
        f"Or {endpoint.items} already encoded as word ids ({encoding.start_id} = start, "
        f"{encoding.oov_id} = out of vocabulary, word rank + {encoding.index_from}); ids beyond "
        "the model's vocabulary count as out of vocabulary"
    )


def camel(name: str) -> str:
    """`boston-2_houses` → `Boston2Houses`."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[-_]", name))


def plural(noun: str) -> str:
    """English plural of a lower-case noun: topic → topics, category → categories, class → classes."""
    if re.search(r"[^aeiou]y$", noun):
        return noun[:-1] + "ies"
    if re.search(r"(s|x|z|ch|sh)$", noun):
        return noun + "es"
    return noun + "s"
