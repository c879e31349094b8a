"""Request bodies for the load tests, from real test-split samples: one module for the locust
scenarios and the benchmark, so that both send the same payloads.

The samples are `loadtest/samples.json` ($LOADTEST_SAMPLES; written by `loadtest/scenarios/samples.py`):
102 Boston houses, 50 IMDB reviews, 50 Reuters newswires. Tensor rows (V2, V1) are built as the
newest version of each model in the repository ($LOADTEST_MODELS, default `models/` of this
checkout) takes them: texts encoded with the model's own encoder and vocabulary, so the encoding
matches the model whose version the paths name. A text version of the dense form takes each
sample as a row of `dim` numbers; one of the sparse form (`TextEncoding.form`) as the sample's
entries (`SparseRows`), sent as `ids` (and `weights`) padded to the longest row of each body
(`tensors`). Imports no TensorFlow, no locust and nothing from `trainer` or `service`: only
`contract`, `loadtest.harness.servers` (where the repository is named: `MODELS`), NumPy and the
standard library.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from contract.config import list_versions
from contract.sparse import SparseRows
from contract.text import TextEncoder, TextEncoding
from loadtest.harness.servers import MODELS

SAMPLES = json.loads(
    Path(os.environ.get("LOADTEST_SAMPLES", Path(__file__).parents[1] / "samples.json")).read_text(
        "utf-8"
    )
)
TYPED_PATHS = {"imdb": "/api/imdb", "reuters": "/api/reuters", "boston": "/api/boston"}
# The numbers in a row of each input of the largest tensor bodies (the memory and dataplane
# benchmarks) of a sparse version, whose rows take any number of ids: a long review's n-grams, so
# that the largest bodies' rows stay within the service's `max_sparse_entries` (2**18).
SPARSE_ROW_WIDTH = 12_500
MAX_SPARSE_ENTRIES = 1 << 18  # the service's default SERVICE_MAX_SPARSE_ENTRIES
# A sample's input row: a row of numbers (Boston's features; a dense text version's row), or a
# sparse text version's entries of one row.
Row = list[float] | np.ndarray | SparseRows


@functools.cache
def model_config(name: str) -> dict:
    """The newest version's config.json of a model in the repository."""
    version = list_versions(MODELS)[name][-1]
    return json.loads((MODELS / name / str(version) / "config.json").read_text("utf-8"))


def is_text_model(name: str) -> bool:
    return model_config(name)["encoding"]["kind"] == "text"


@functools.cache
def encoder(name: str) -> TextEncoder:
    config = model_config(name)
    folder = MODELS / name / str(config["version"])
    return TextEncoder.load(TextEncoding.model_validate(config["encoding"]), folder)


def is_sparse(name: str) -> bool:
    """Whether the newest version takes its rows as ids (and weights): `TextEncoding.form`."""
    return is_text_model(name) and encoder(name).encoding.form == "sparse"


def text_rows(name: str, texts: Sequence[str]) -> Sequence[Row]:
    """Raw texts as the newest version takes them, one row each (its encoder's work on them)."""
    enc = encoder(name)
    return _as_rows(name, enc.sparse_rows(enc.word_ids_batch(texts)))


def _as_rows(name: str, entries: SparseRows) -> Sequence[Row]:
    """Encoded texts in the newest version's form: each row's entries, or the dense rows."""
    if is_sparse(name):
        return [entries[i : i + 1] for i in range(len(entries))]
    return entries.dense()


@functools.cache
def rows(name: str) -> tuple[Row, ...]:
    """One input row per sample, built once per process, as the model's newest version takes it."""
    if name == "boston":
        order = [f["name"] for f in model_config(name)["encoding"]["features"]]
        return tuple([s["house"][n] for n in order] for s in SAMPLES["boston"])
    if name == "imdb":
        return tuple(text_rows(name, [s["text"] for s in SAMPLES["imdb"]]))
    enc = encoder(name)
    limit, oov = enc.encoding.num_words, enc.encoding.oov_id
    capped = [[i if i < limit else oov for i in s["word_ids"]] for s in SAMPLES["reuters"]]
    return tuple(_as_rows(name, enc.sparse_rows(capped)))


def tensors(name: str, batch: Sequence[Row]) -> dict[str, np.ndarray]:
    """A batch of rows as the newest version's inputs, by name: dense rows as one array of their
    numbers (the wire's datatype is the input's: `datatypes`); sparse rows as `ids` and, where the
    version takes them, `weights`, padded to the batch's longest row (`SparseRows.padded`)."""
    names = [spec["name"] for spec in model_config(name)["inputs"]]
    if is_sparse(name):
        # a version of binary weighting takes the ids alone: the weights are left out
        return dict(zip(names, SparseRows.concatenate(batch).padded(), strict=False))
    return {names[0]: np.asarray(batch)}


def datatypes(name: str) -> dict[str, str]:
    """The newest version's inputs' V2 datatypes, by name."""
    return {spec["name"]: spec["datatype"] for spec in model_config(name)["inputs"]}


def row_width(name: str) -> int:
    """The numbers in a row of each input of the newest version's largest tensor bodies: a dense
    row's columns, or `SPARSE_ROW_WIDTH` ids (and weights)."""
    width = model_config(name)["inputs"][0]["shape"][-1]
    return SPARSE_ROW_WIDTH if width == -1 else width


def largest_rows(name: str, rows: int) -> int:
    """The rows of the newest version's largest legal tensor body that the body size allows
    `rows` of: as many, or, for a sparse version, as many as its ids limit takes."""
    if model_config(name)["inputs"][0]["shape"][-1] != -1:
        return rows
    return min(rows, MAX_SPARSE_ENTRIES // row_width(name))


def compact(array: np.ndarray) -> list:
    """An array's numbers, flat, for JSON, zeros written as 0 (dense text rows are mostly zeros)."""
    return [0 if v == 0 else v for v in array.ravel().tolist()]


# Typed endpoints: one sample per request.


def imdb_body(text: str) -> dict:
    return {"reviews": [text]}


def reuters_body(value: str | list[int], field: str = "newswires", top_k: int = 1) -> dict:
    """`field` is "newswires" (the value is a text) or "word_ids" (a list of word ids)."""
    return {field: [value], "top_k": top_k}


def boston_body(house: dict) -> dict:
    return {"houses": [house]}


def typed_bodies(name: str) -> list[dict]:
    """The typed endpoint's body for each sample: a review, a newswire's text, a house."""
    build = {
        "imdb": lambda sample: imdb_body(sample["text"]),
        "reuters": lambda sample: reuters_body(sample["text"]),
        "boston": lambda sample: boston_body(sample["house"]),
    }[name]
    return [build(sample) for sample in SAMPLES[name]]


# Open Inference Protocol (KServe V2) and TensorFlow Serving (V1): one row per request, the newest
# version named in the path so that the row's encoding matches the model.


def v2_path(name: str) -> str:
    return f"/v2/models/{name}/versions/{model_config(name)['version']}/infer"


def v2_body(name: str, row: Row) -> dict:
    return v2_batch_body(name, [row])


def v2_batch_body(name: str, batch: Sequence[Row]) -> dict:
    """A V2 request of several rows (`tensors`), each tensor's data flat in row-major order."""
    return {
        "inputs": [
            {
                "name": input_name,
                "shape": list(array.shape),
                "datatype": datatypes(name)[input_name],
                "data": compact(array),
            }
            for input_name, array in tensors(name, batch).items()
        ]
    }


def v2_bodies(name: str) -> list[dict]:
    return [v2_body(name, row) for row in rows(name)]


def v1_path(name: str) -> str:
    return f"/v1/models/{name}/versions/{model_config(name)['version']}:predict"


def v1_body(name: str, row: Row) -> dict:
    """A V1 request of one row: a dense row as the instance itself; a sparse one as its own
    entries, {"ids": [...], "weights": [...]} (ragged instances: the service pads them)."""
    instance = {input_name: compact(array[0]) for input_name, array in tensors(name, [row]).items()}
    return {"instances": [instance if is_sparse(name) else next(iter(instance.values()))]}
