"""How a model's typed endpoint, `POST /api/{model}`, names what it takes and what it answers: the
words a person reads in its requests, its answers and the OpenAPI document.

Part of a model's encoding in its config (`TextEncoding.endpoint`, `TabularEncoding.endpoint`).
The service generates the endpoint from the config: the features (names, descriptions, units,
ranges) or the text field, the labels, the task (binary classification → label, probability and
scores; multiclass → the `top_k` most probable labels; regression → the value and its unit). Every
field here is optional: without them, a model gets generic names made unique by its own name
(`BostonRequest`, `rows`, `label`); the book models name theirs (`contract.catalog`), so that
their endpoints stay as their clients know them. Pure pydantic.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, model_validator

Word = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]  # a JSON field or a route's name
SchemaName = Annotated[str, Field(pattern=r"^[A-Z][A-Za-z0-9]*$")]
RESERVED_FIELDS = ("word_ids", "top_k")  # fields of the request that the service names itself


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SchemaNames(_Strict):
    """The names of the endpoint's schemas in the OpenAPI document; by default the model's name in
    CamelCase and the role (`BostonRequest`, `BostonRow`, `BostonPrediction`, …)."""

    request: SchemaName | None = Field(None, description="the request body")
    row: SchemaName | None = Field(None, description="tabular: one row of named features")
    prediction: SchemaName | None = Field(None, description="one prediction of the answer")
    label_score: SchemaName | None = Field(
        None, description="multiclass: one label with its probability"
    )
    answer: SchemaName | None = Field(None, description="the answer")


class Endpoint(_Strict):
    """What every typed endpoint names, whatever its encoding."""

    name: Word = Field(
        "predict",
        description="the endpoint's name after the model's (`boston_price`): the OpenAPI "
        "operation's id and summary",
    )
    description: str | None = Field(
        None, description="what the endpoint does, in a sentence; default: the model's description"
    )
    items: Word = Field(description="the request's field that lists the inputs")
    items_description: str | None = Field(None, description="what `items` holds")
    label: Word = Field(
        "label",
        description="classification: the answer's name of a label (multiclass: plus s, the "
        "list of the most probable ones)",
    )
    value: Word | None = Field(
        None, description="regression: the answer's name of the value; default: the target's name"
    )
    schemas: SchemaNames = SchemaNames()

    @model_validator(mode="after")
    def _names_are_free(self) -> Endpoint:
        if self.items in RESERVED_FIELDS:
            raise ValueError(f"items may not be {self.items!r}: the service names that field")
        if self.value == "unit":
            raise ValueError("value may not be 'unit': the answer gives the unit under that name")
        return self


class TextEndpoint(Endpoint):
    """The typed endpoint of a model that takes raw texts."""

    items: Word = "texts"
    example: str | None = Field(None, description="a text, the OpenAPI document's example")
    word_ids: bool = Field(
        False, description="whether a request may send its texts as word ids instead (`word_ids`)"
    )
    word_ids_description: str | None = Field(
        None, description="what `word_ids` holds; default: the encoding's numbering of words"
    )


class TabularEndpoint(Endpoint):
    """The typed endpoint of a model that takes rows of named features."""

    items: Word = "rows"
    example: dict[str, float] | None = Field(
        None, description="one row, every feature by name: the OpenAPI document's example"
    )
