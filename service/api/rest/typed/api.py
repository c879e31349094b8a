"""A model version's typed endpoint, generated from its config, and the work of every typed
route: the version looked up and leased, the body read with its schema, the model run, the
answer written."""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from functools import cached_property

from fastapi import Request
from pydantic import BaseModel

from service.admission import BodyKind
from service.api.rest import served, wire
from service.api.rest.typed.answers import Predict, answer_schema, answer_side
from service.api.rest.typed.interface import Interface, NoTypedEndpointError
from service.api.rest.typed.requests import Infer, request_side
from service.errors import NotFoundError
from service.registry import LoadedModel


@dataclass(frozen=True)
class TypedApi:
    """One model version's typed endpoint: its schemas, and how a request becomes an answer."""

    interface: Interface
    request: type[BaseModel]
    answer: type[BaseModel]
    body_kind: BodyKind
    infer: Infer
    predict: Predict

    @classmethod
    def of(cls, interface: Interface) -> TypedApi:
        answers = answer_side(interface)
        requests = request_side(interface, answers.request_fields, answers.request_example)
        answer = answer_schema(interface, answers.prediction)
        return cls(interface, requests.body, answer, requests.kind, requests.infer, answers.predict)

    def schema_names(self) -> set[str]:
        """The names its schemas take in the OpenAPI document."""
        return set(wire.schema_names([self.request], [self.answer]))

    @cached_property
    def json_schemas(self) -> dict:
        """Its request's and answer's JSON schemas, each with the models it holds in `$defs`."""
        return {
            "request": self.request.model_json_schema(),
            "answer": self.answer.model_json_schema(mode="serialization"),
        }


_APIS: weakref.WeakKeyDictionary[LoadedModel, TypedApi | NoTypedEndpointError] = (
    weakref.WeakKeyDictionary()
)


def typed_api_or_reason(model: LoadedModel) -> TypedApi | NoTypedEndpointError:
    """The loaded version's typed endpoint (made at its first use), or why it has none."""
    api = _APIS.get(model)
    if api is None:
        try:
            api = TypedApi.of(Interface.of(model.config))
        except NoTypedEndpointError as reason:
            api = reason
        _APIS[model] = api
    return api


def typed_api(model: LoadedModel) -> TypedApi:
    """The loaded version's typed endpoint, or a 404 saying why it has none."""
    api = typed_api_or_reason(model)
    if isinstance(api, NoTypedEndpointError):
        raise NotFoundError(
            f"model '{model.name}' has no typed endpoint: {api}; send it tensors "
            f"(/v2/models/{model.name}/infer)",
            "model",
        )
    return api


async def answer(request: Request, name: str, version: int | None):
    """The typed endpoint's work, whichever route took the request."""
    model = served(request, name, version)
    api = typed_api(model)
    body = await wire.read(request, api.request, api.body_kind)
    outputs = await api.infer(request, model, body)
    predictions = api.predict(outputs, body)
    return wire.answer(
        request, {"model": model.name, "version": model.version, "predictions": predictions}
    )
