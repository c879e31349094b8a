"""Request bodies for the load tests, from real test-split samples: one module for the locust
scenarios and the benchmark, so that both send the same payloads.

The samples are `loadtest/samples.json` ($LOADTEST_SAMPLES; written by `loadtest/scenarios/samples.py`):
102 Boston houses, 50 IMDB reviews, 50 Reuters newswires. Tensor rows (V2, V1) are built as the
newest version of each model in the repository ($LOADTEST_MODELS, default `models/` of this
checkout) takes them: texts encoded with the model's own encoder and vocabulary, so the encoding
matches the model whose version the paths name. Imports no TensorFlow, no locust and nothing from
`trainer`: only `contract.text`, NumPy and the standard library.
"""

from __future__ import annotations

import functools
import json
import os
from pathlib import Path

from contract.config import list_versions
from contract.text import TextEncoder, TextEncoding

REPO = Path(__file__).resolve().parents[2]
SAMPLES = json.loads(
    Path(os.environ.get("LOADTEST_SAMPLES", Path(__file__).parents[1] / "samples.json")).read_text(
        "utf-8"
    )
)
MODELS = Path(os.environ.get("LOADTEST_MODELS", REPO / "models"))
TYPED_PATHS = {"imdb": "/api/imdb", "reuters": "/api/reuters", "boston": "/api/boston"}


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


def compact(row) -> list:
    """A row for JSON, zeros written as 0 (sparse text rows are mostly zeros)."""
    return [0 if v == 0 else float(v) for v in row.tolist()]


@functools.cache
def rows(name: str) -> tuple[list, ...]:
    """One input row per sample, built once per process, as the model's newest version takes it."""
    if name == "boston":
        order = [f["name"] for f in model_config(name)["encoding"]["features"]]
        return tuple([s["house"][n] for n in order] for s in SAMPLES["boston"])
    enc = encoder(name)
    if name == "imdb":
        return tuple(compact(r) for r in enc.encode([s["text"] for s in SAMPLES["imdb"]]))
    limit, oov = enc.encoding.num_words, enc.encoding.oov_id
    capped = [[i if i < limit else oov for i in s["word_ids"]] for s in SAMPLES["reuters"]]
    return tuple(compact(r) for r in enc.vectorize(capped))


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


def v2_body(name: str, row: list) -> dict:
    return v2_batch_body(name, [row])


def v2_batch_body(name: str, batch: list[list]) -> dict:
    """A V2 request of several rows, its data flat in row-major order."""
    spec = model_config(name)["inputs"][0]
    return {
        "inputs": [
            {
                "name": spec["name"],
                "shape": [len(batch), len(batch[0])],
                "datatype": spec["datatype"],
                "data": [value for row in batch for value in row],
            }
        ]
    }


def v2_bodies(name: str) -> list[dict]:
    return [v2_body(name, row) for row in rows(name)]


def v1_path(name: str) -> str:
    return f"/v1/models/{name}/versions/{model_config(name)['version']}:predict"


def v1_body(row: list) -> dict:
    return {"instances": [row]}
