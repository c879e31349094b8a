"""Tensor data in each V2 datatype, to and from its wire forms: JSON values, and raw bytes
(little-endian, row-major; a BYTES element as its 4-byte little-endian length, then its bytes),
as the binary tensor data extension and gRPC's raw contents carry them.

Strict: JSON true/false only for BOOL, whole numbers within range for the integer types, numbers
within range for the floating types, strings for BYTES; anything else is a 400 naming the field.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence

import numpy as np

from contract.config import NUMPY_OF_DATATYPE
from service.errors import BadInputError

# The V2 datatypes of fixed size (BYTES has none).
DATATYPES = {name: dtype for name, dtype in NUMPY_OF_DATATYPE.items() if name != "BYTES"}
_LENGTH = struct.Struct("<I")


def from_bytes(
    data: bytes | memoryview,
    name: str,
    datatype: str,
    shape: Sequence[int],
    field: str,
    what: str = "holds",
) -> np.ndarray:
    """Raw data of input `name` as an array of `shape`, or a 400 naming the field and the input
    when its size disagrees with shape × datatype."""
    if datatype == "BYTES":
        return _elements(data, name, shape, field)
    dtype = DATATYPES[datatype]
    needed = math.prod(shape) * dtype.itemsize  # Python integers: no overflow
    if len(data) != needed:
        raise BadInputError(
            f"{what} {len(data)} bytes; input '{name}' of shape {list(shape)} and datatype "
            f"{datatype} needs {needed}",
            field,
        )
    return np.frombuffer(data, dtype).reshape(shape)


def _elements(data: bytes | memoryview, name: str, shape: Sequence[int], field: str) -> np.ndarray:
    data = memoryview(data)
    count, elements, offset = math.prod(shape), [], 0
    while offset < len(data) and len(elements) < count:
        if offset + 4 > len(data):
            break
        (length,) = _LENGTH.unpack_from(data, offset)
        if offset + 4 + length > len(data):
            break
        elements.append(bytes(data[offset + 4 : offset + 4 + length]))
        offset += 4 + length
    if len(elements) != count or offset != len(data):
        raise BadInputError(
            f"input '{name}' of shape {list(shape)} needs {count} BYTES elements, each a 4-byte "
            "length and its bytes; the data does not hold exactly that",
            field,
        )
    return _object_array(texts(elements, field, f"input '{name}': "), shape)


def texts(elements, field: str, where: str = "") -> list[str]:
    """BYTES elements as onnxruntime takes a string tensor's: text (it would str() bytes)."""
    try:
        return [element.decode() for element in elements]
    except UnicodeDecodeError:
        raise BadInputError(f"{where}a BYTES element is not UTF-8 text", field) from None


def check_integers(low, high, datatype: str, field: str) -> None:
    """The lowest and highest of integer data fit `datatype`."""
    limits = np.iinfo(DATATYPES[datatype])
    if low < limits.min or high > limits.max:
        raise BadInputError(f"values beyond {datatype}'s {limits.min}..{limits.max}", field)


def to_bytes(array: np.ndarray, datatype: str) -> bytes:
    if datatype == "BYTES":
        parts = []
        for element in array.ravel().tolist():
            data = element.encode() if isinstance(element, str) else bytes(element)
            parts += [_LENGTH.pack(len(data)), data]
        return b"".join(parts)
    return array.astype(DATATYPES[datatype], copy=False).tobytes()


def from_json(data: list, datatype: str, shape: Sequence[int], field: str) -> np.ndarray:
    """JSON tensor data (flat or nested, row-major) as an array of `shape` in `datatype`."""
    values = list(_flatten(data))
    count = math.prod(shape)
    if len(values) != count:
        raise BadInputError(
            f"data holds {len(values)} elements, shape {list(shape)} needs {count}", field
        )
    if datatype == "BYTES":
        if not all(isinstance(v, str) for v in values):
            raise BadInputError("BYTES data must hold strings only", field)
        return _object_array(values, shape)
    kinds = set(map(type, values))
    if datatype == "BOOL":
        if kinds - {bool}:
            raise BadInputError("BOOL data must hold true and false only", field)
        return np.array(values, dtype=bool).reshape(shape)
    dtype = DATATYPES[datatype]
    allowed = {int} if dtype.kind in "iu" else {int, float}
    if kinds - allowed:
        what = "whole numbers" if dtype.kind in "iu" else "numbers"
        raise BadInputError(f"{datatype} data must hold {what} only", field)
    if dtype.kind in "iu":
        if values:
            check_integers(min(values), max(values), datatype, field)
        return np.array(values, dtype=dtype).reshape(shape)
    with np.errstate(over="ignore"):
        array = np.array(values, dtype=np.float64).astype(dtype)
    if not np.isfinite(array).all():
        raise BadInputError(f"values beyond {datatype}'s range", field)
    return array.reshape(shape)


def to_json(array: np.ndarray, datatype: str) -> list:
    """An output's elements, flat, as JSON values."""
    values = array.ravel().tolist()
    if datatype == "BYTES":
        return [v.decode("utf-8", "replace") if isinstance(v, bytes) else v for v in values]
    return values


def _flatten(data: list):
    for item in data:
        if isinstance(item, list):
            yield from _flatten(item)
        else:
            yield item


def _object_array(elements: list, shape: Sequence[int]) -> np.ndarray:
    array = np.empty(len(elements), dtype=object)
    array[:] = elements
    return array.reshape(shape)
