"""Triton's binary tensor data extension to V2 over REST, which tritonclient uses by default.

A request with binary inputs is `Inference-Header-Content-Length: N`; its first N bytes are the
JSON request, the rest the raw data of each input that says `"parameters": {"binary_data_size":
S}`, in input order, little-endian, row-major. An answer with binary outputs is built the same
way (https://github.com/triton-inference-server/server/blob/main/docs/protocol/extension_binary_data.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from contract.numbers import read_count
from service.datatypes import from_bytes
from service.errors import BadInputError

HEADER_LENGTH = "inference-header-content-length"


def split(body: bytes, header_length: str | None) -> tuple[bytes, memoryview]:
    """The JSON part of a body and the binary data after it (none without the header)."""
    if header_length is None:
        return body, memoryview(b"")
    length = read_count(header_length)
    if length is None or length > len(body):
        raise BadInputError(
            f"'{header_length}' is not a length within the body's {len(body)} bytes",
            "Inference-Header-Content-Length",
        )
    return body[:length], memoryview(body)[length:]


def binary_size(parameters: dict | None, field: str) -> int | None:
    """An input's `binary_data_size`, or None for JSON data."""
    size = (parameters or {}).get("binary_data_size")
    if size is not None and (isinstance(size, bool) or not isinstance(size, int) or size < 0):
        raise BadInputError("binary_data_size is a whole number of bytes", f"{field}.parameters")
    return size


class BinaryData:
    """The binary part of a request, handed out input by input, in order."""

    def __init__(self, data: memoryview):
        self.data = data
        self.offset = 0

    def take(
        self, name: str, size: int, datatype: str, shape: Sequence[int], field: str
    ) -> np.ndarray:
        if self.offset + size > len(self.data):
            raise BadInputError(
                f"the body ends {self.offset + size - len(self.data)} bytes short of this "
                "input's binary data",
                field,
            )
        raw = self.data[self.offset : self.offset + size]
        self.offset += size
        return from_bytes(raw, name, datatype, shape, field, "binary_data_size is")

    def check_all_taken(self) -> None:
        if self.offset != len(self.data):
            raise BadInputError(
                f"{len(self.data) - self.offset} bytes follow the inputs' binary data",
                "body",
            )
