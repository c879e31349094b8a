"""TensorFlow Serving's REST API: model status, metadata and `:predict` in row or columnar format.

https://www.tensorflow.org/tfx/serving/api_rest
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from service import datatypes, inference
from service.api.rest import VersionPath, call_of, dataplane, routes, served, wire
from service.api.rest.errors import protocol_route
from service.api.rest.v2 import ERRORS, INFER_ERRORS
from service.errors import BadInputError

# Like V2: clients such as `requests.post(url, data=json.dumps(...))` send no Content-Type.
router = APIRouter(
    prefix="/v1",
    tags=["TensorFlow Serving (V1)"],
    strict_content_type=False,
    route_class=protocol_route(bad_input=400),
)


class PredictRequest(BaseModel):
    """Exactly one of `instances` (a list of rows) or `inputs` (columnar: a list of rows, or an
    object with the model's input name)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "oneOf": [
                {"required": ["instances"], "properties": {"instances": {"type": "array"}}},
                {"required": ["inputs"], "properties": {"inputs": {"type": ["array", "object"]}}},
            ]
        },
    )

    signature_name: str | None = None
    instances: list[Any] | None = None
    inputs: list[Any] | dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_format(self):
        if (self.instances is None) == (self.inputs is None):
            raise ValueError("send exactly one of 'instances' (row format) or 'inputs' (columnar)")
        return self


class PredictResponse(BaseModel):
    predictions: list[Any] | None = Field(None, description="row format answer")
    outputs: list[Any] | None = Field(None, description="columnar format answer")


def _status(request: Request, name: str, version: int | None) -> dict:
    registry = dataplane(request).registry
    versions = (
        [registry.get(name, version).version] if version else sorted(registry.models.get(name, {}))
    )
    if not versions:
        registry.get(name)  # raises the 404
    return {
        "model_version_status": [
            {
                "version": str(v),
                "state": "AVAILABLE",
                "status": {"error_code": "OK", "error_message": ""},
            }
            for v in sorted(versions, reverse=True)
        ]
    }


# The prediction routes first: routes are tried in order, and these carry the traffic.
@wire.post(
    router,
    "/models/{model}:predict",
    "/models/{model}/versions/{version:int}:predict",
    body=PredictRequest,
    answer=PredictResponse,
    response_model_exclude_none=True,
    responses=INFER_ERRORS,
)
async def predict(request: Request, model: str, version: VersionPath = None):
    loaded = served(request, model, version)
    text = await wire.read_bytes(request, wire.tensors_kind(loaded))
    body = await wire.parse(request, PredictRequest, text)
    spec = loaded.config.inputs[0]
    if body.signature_name not in (None, "", "serving_default"):
        raise BadInputError(
            f"unknown signature '{body.signature_name}'; use serving_default", "signature_name"
        )
    if not loaded.takes_rows:
        return await _predict_tensors(request, loaded, body)
    field, rows = (
        ("instances", body.instances) if body.instances is not None else ("inputs", body.inputs)
    )
    if isinstance(rows, dict):
        if set(rows) != {spec.name}:
            raise BadInputError(
                f"the model takes one input named '{spec.name}', got {sorted(rows)}", field
            )
        rows = rows[spec.name]
        field = f"inputs.{spec.name}"
    # Row format may wrap each row in an object with the input's name.
    if rows and all(isinstance(r, dict) for r in rows):
        if any(set(r) != {spec.name} for r in rows):
            raise BadInputError(
                f"each instance must be an object with one key '{spec.name}'", field
            )
        rows = [r[spec.name] for r in rows]
    array = wire.json_rows(
        request, loaded, rows, [len(rows), loaded.row_size], field, rows_only=True,
        booleans_possible=wire.may_hold_booleans(text),
    )  # fmt: skip
    result = (await dataplane(request).infer(call_of(request), loaded, array, field)).tolist()
    return wire.answer(
        request, {"predictions" if body.instances is not None else "outputs": result}
    )


async def _predict_tensors(request: Request, loaded, body: PredictRequest):
    """A model of named tensors, as TensorFlow Serving takes a signature of several inputs: each
    instance an object of the inputs' values (one input: the value itself), or columnar, an
    object of whole tensors; answered alike (one output: its values alone)."""
    names = loaded.input_names
    if body.instances is not None:
        field, instances = "instances", body.instances
        if len(names) == 1 and not (instances and isinstance(instances[0], dict)):
            columns = {names[0]: instances}
        elif all(isinstance(i, dict) and sorted(i) == sorted(names) for i in instances):
            columns = {name: [i[name] for i in instances] for name in names}
        else:
            raise BadInputError(f"each instance must be an object with the keys {names}", field)
        if loaded.sparse:
            columns = _padded(columns, loaded.row_size)
    else:
        field = "inputs"
        columns = body.inputs if isinstance(body.inputs, dict) else {names[0]: body.inputs}
        if sorted(columns) != sorted(names):
            raise BadInputError(f"the model takes the inputs {names}, got {sorted(columns)}", field)
    arrays, fields = {}, {}
    for spec in loaded.config.inputs:
        where = fields[spec.name] = f"{field}.{spec.name}" if len(names) > 1 else field
        value = columns[spec.name]
        shape = _shape_of(value, where)
        inference.check_shape(spec, shape, where)
        arrays[spec.name] = datatypes.from_json(
            value if isinstance(value, list) else [value], spec.datatype, shape, where
        )
    results = await dataplane(request).infer_tensors(call_of(request), loaded, arrays, fields)
    outputs = {
        spec.name: np.asarray(
            datatypes.to_json(results[spec.name], spec.datatype), dtype=object
        ).reshape(results[spec.name].shape)
        for spec in loaded.config.outputs
    }
    if body.instances is None:
        answer = (
            outputs.popitem()[1].tolist()
            if len(outputs) == 1
            else {name: value.tolist() for name, value in outputs.items()}
        )
        return wire.answer(request, {"outputs": answer})
    if len(outputs) == 1:
        return wire.answer(request, {"predictions": next(iter(outputs.values())).tolist()})
    count = len(next(iter(outputs.values())))
    rows = [{name: value[i].tolist() for name, value in outputs.items()} for i in range(count)]
    return wire.answer(request, {"predictions": rows})


def _shape_of(value: Any, field: str) -> list[int]:
    """The dimensions of a nested JSON list; ragged nesting is a 400."""
    if not isinstance(value, list):
        return []
    shapes = {tuple(_shape_of(item, field)) for item in value}
    if len(shapes) > 1:
        raise BadInputError("nested data is ragged", field)
    return [len(value), *(shapes.pop() if shapes else ())]


@routes(router.get, "/models/{model}", "/models/{model}/versions/{version:int}", responses=ERRORS)
async def model_status(request: Request, model: str, version: VersionPath = None):
    return _status(request, model, version)


@routes(router.get, "/models/{model}/metadata", "/models/{model}/versions/{version:int}/metadata",
        responses=ERRORS)  # fmt: skip
async def model_metadata(request: Request, model: str, version: VersionPath = None):
    loaded = served(request, model, version)

    def tensor(s) -> dict:
        return {
            "dtype": TF_DTYPES[s.datatype],
            "tensor_shape": {"dim": [{"size": str(d)} for d in s.shape]},
            "name": s.name,
        }

    return {
        "model_spec": {"name": loaded.name, "signature_name": "", "version": str(loaded.version)},
        "metadata": {
            "signature_def": {
                "signature_def": {
                    "serving_default": {
                        "inputs": {s.name: tensor(s) for s in loaded.config.inputs},
                        "outputs": {s.name: tensor(s) for s in loaded.config.outputs},
                        "method_name": "tensorflow/serving/predict",
                    }
                }
            }
        },
    }


# TensorFlow's names of the V2 datatypes, as TF Serving's metadata gives them.
TF_DTYPES = {
    "BOOL": "DT_BOOL", "UINT8": "DT_UINT8", "UINT16": "DT_UINT16", "UINT32": "DT_UINT32",
    "UINT64": "DT_UINT64", "INT8": "DT_INT8", "INT16": "DT_INT16", "INT32": "DT_INT32",
    "INT64": "DT_INT64", "FP16": "DT_HALF", "FP32": "DT_FLOAT", "FP64": "DT_DOUBLE",
    "BYTES": "DT_STRING",
}  # fmt: skip


def _padded(columns: dict[str, list], pad_id: int) -> dict[str, list]:
    """A sparse text model's instances, each with as many entries as its text has (TensorFlow
    Serving's ragged instances), padded to the longest: ids with the pad id, weights with 0."""
    ids = columns["ids"]
    if not all(isinstance(values, list) for column in columns.values() for values in column):
        return columns  # not lists of entries: the shape check says what is wrong
    for i, (entries, weights) in enumerate(zip(ids, columns.get("weights", ids), strict=True)):
        if len(weights) != len(entries):
            raise BadInputError(
                f"{len(weights)} weights for {len(entries)} ids", f"instances[{i}].weights"
            )
    width = max(map(len, ids), default=0)
    return {
        name: [v + [pad_id if name == "ids" else 0] * (width - len(v)) for v in values]
        for name, values in columns.items()
    }
