"""The request side of a typed endpoint, by the model's encoding: the body's schema, generated
from the config, and how a validated body becomes the model's input.

- text (`TextEncoding`): `{items: [text, …]}`, or where the endpoint allows it exactly one of
  `items` and `word_ids`; the texts are encoded by the data plane with the model's own encoder;
- named features (`TabularEncoding`): `{items: [{feature: number, …}, …]}`, each feature within
  its range (and the input datatype's), put in the encoding's column order.

The task adds its own fields (multiclass: `top_k`, `service.api.rest.typed.answers`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import Request
from pydantic import BaseModel, ConfigDict, Field, create_model

from service.admission import BodyKind
from service.api.rest import call_of, dataplane
from service.api.rest.typed.interface import Interface
from service.errors import BadInputError
from service.registry import LoadedModel

Infer = Callable[[Request, LoadedModel, Any], Awaitable[np.ndarray]]
WordIds = list[list[Annotated[int, Field(ge=0)]]]


@dataclass(frozen=True)
class RequestSide:
    body: type[BaseModel]
    kind: BodyKind  # what the body holds, for its memory (`service.admission`)
    infer: Infer  # the validated body → the model's output rows


def request_side(interface: Interface, task_fields: dict, task_example: dict) -> RequestSide:
    """`task_fields`: the request fields the task adds, as `create_model` takes them;
    `task_example`: their values in the document's example."""
    if interface.tabular:
        return _named_features(interface, task_fields)
    return _texts(interface, task_fields, task_example)


def _texts(interface: Interface, task_fields: dict, task_example: dict) -> RequestSide:
    items, endpoint = interface.items, interface.endpoint
    extra: dict[str, Any] = {}
    if endpoint.example is not None:
        extra["examples"] = [{items: [endpoint.example], **task_example}]
    if interface.word_ids is None:
        fields = {items: (list[str], Field(min_length=1, description=interface.items_description))}
        doc = None
    else:
        fields = {
            items: (
                list[str] | None,
                Field(None, min_length=1, description=interface.items_description),
            ),
            "word_ids": (WordIds | None, Field(None, min_length=1, description=interface.word_ids)),
        }
        extra["oneOf"] = [
            {"required": [name], "properties": {name: {"type": "array"}}}
            for name in (items, "word_ids")
        ]
        doc = f"Exactly one of `{items}` or `word_ids`."
    body = create_model(
        interface.schema("request"),
        __config__=ConfigDict(extra="forbid", strict=True, json_schema_extra=extra or None),
        __doc__=doc,
        **fields,
        **task_fields,
    )

    async def infer(request: Request, model: LoadedModel, body: Any) -> np.ndarray:
        plane, call = dataplane(request), call_of(request)
        texts = getattr(body, items)
        if interface.word_ids is not None:
            if (texts is None) == (body.word_ids is None):
                raise BadInputError(f"send exactly one of '{items}' (texts) or 'word_ids'", items)
            if texts is None:
                return await plane.infer_word_ids(call, model, body.word_ids, "word_ids")
        return await plane.infer_texts(call, model, texts, items)

    return RequestSide(body, BodyKind.TEXTS, infer)


def _named_features(interface: Interface, task_fields: dict) -> RequestSide:
    items, example = interface.items, interface.endpoint.example
    lowest, highest = _datatype_range(interface.datatype)
    # Strict: a number is a JSON number, never a string ("6.4") or a boolean (false).
    row = create_model(
        interface.schema("row"),
        __config__=ConfigDict(
            extra="forbid",
            strict=True,
            json_schema_extra=None if example is None else {"examples": [example]},
        ),
        **{
            f.name: (
                float,
                Field(
                    ge=lowest if f.minimum is None else f.minimum,
                    le=highest if f.maximum is None else f.maximum,
                    allow_inf_nan=False,
                    description=f.description + (f" ({f.unit})" if f.unit else ""),
                ),
            )
            for f in interface.features
        },
    )
    body = create_model(
        interface.schema("request"),
        __config__=ConfigDict(extra="forbid"),
        **{items: (list[row], Field(min_length=1, description=interface.items_description))},
        **task_fields,
    )
    order = [f.name for f in interface.features]

    async def infer(request: Request, model: LoadedModel, body: Any) -> np.ndarray:
        plane = dataplane(request)
        given = getattr(body, items)
        plane.check_rows(len(given), items, items)
        rows = np.array([[getattr(one, name) for name in order] for one in given])
        return await plane.infer(call_of(request), model, rows, items)

    return RequestSide(body, BodyKind.NUMBERS, infer)


def _datatype_range(datatype: str) -> tuple[float, float]:
    """The values the model's input datatype holds (float32's where it is not a number)."""
    if datatype.startswith(("INT", "UINT")):
        info = np.iinfo(getattr(np, datatype.lower()))
        return float(info.min), float(info.max)
    largest = float(
        np.finfo({"FP16": np.float16, "FP64": np.float64}.get(datatype, np.float32)).max
    )
    return -largest, largest
