"""On the real test sets (skipped without $TRAINER_DATA_DIR): the service answers what onnxruntime
answers on the rows the trainer encodes, and the trainer and the service encode raw text alike."""

from __future__ import annotations

import json

import numpy as np
import pytest

from contract.text import TextEncoder, TextEncoding
from tests.service.support import (
    MODEL_NAMES,
    config,
    folder,
    newest,
    ort_predict,
    v2_body,
    v2_outputs,
    versions,
)
from trainer import data

ROWS = 200  # test rows per model (Boston's test set has fewer: all of them)
CHUNK = 50  # rows per request
TOLERANCE = 1e-6
ALL_VERSIONS = [(name, v) for name in MODEL_NAMES for v in versions(name)]

pytestmark = pytest.mark.real_data


@pytest.fixture(scope="module")
def raw_reviews(real_data_dir) -> list[tuple[str, int]]:
    """Raw IMDB test reviews, half negative and half positive, as trainer.data reads them."""
    test = data.read_reviews(real_data_dir / "aclImdb.tar.gz")["test"]
    return test[: ROWS // 2] + test[-ROWS // 2 :]


@pytest.fixture(scope="module")
def trainer_sequences(real_data_dir, raw_reviews) -> dict[str, list[list[int]]]:
    """Word-id sequences of test rows as the trainer builds them (uncapped Keras ids): raw IMDB
    reviews through trainer.data's full-vocabulary encoder, Reuters from its data file."""
    word_index = json.loads((real_data_dir / "imdb_word_index.json").read_text("utf-8"))
    full = len(word_index) + data.INDEX_FROM + 1
    full_encoder = TextEncoder.from_word_index(word_index, TextEncoding(num_words=full, dim=full))
    return {
        "imdb": [full_encoder.word_ids(text) for text, _ in raw_reviews],
        "reuters": [ids.tolist() for ids in data.load_reuters(real_data_dir).x_test[:ROWS]],
    }


def trainer_rows(name: str, version: int, sequences: list[list[int]]) -> np.ndarray:
    """The trainer's encoding (trainer.pipeline.test_inputs): ids capped at the version's
    vocabulary with data.cap_words, then its saved encoder's coordinates, made dense."""
    cfg = config(name, version)
    text_encoder = TextEncoder.load(cfg.encoding, folder(name, version))
    rows, columns, values = text_encoder.coordinates(
        data.cap_words(sequences, cfg.encoding.num_words)
    )
    dense = np.zeros((len(sequences), cfg.encoding.dim), dtype=np.float32)
    dense[rows, columns] = values
    return dense


@pytest.fixture(scope="module")
def boston_rows(real_data_dir) -> np.ndarray:
    return data.load_boston(real_data_dir).x_test[:ROWS]


def test_rows(name, version, trainer_sequences, boston_rows) -> np.ndarray:
    if name == "boston":
        return boston_rows
    return trainer_rows(name, version, trainer_sequences[name])


test_rows.__test__ = False  # a helper, not a test


def as_json_numbers(rows: np.ndarray):
    """Multi-hot rows are whole numbers: sent as JSON integers (smaller, exactly the same)."""
    return rows.astype(np.int64) if np.array_equal(rows, np.round(rows)) else rows


@pytest.mark.parametrize(("name", "version"), ALL_VERSIONS)
def test_v2_equals_onnxruntime_on_real_test_rows(
    client, name, version, trainer_sequences, boston_rows
):
    rows = test_rows(name, version, trainer_sequences, boston_rows)
    answers = []
    for start in range(0, len(rows), CHUNK):
        chunk = rows[start : start + CHUNK]
        body = v2_body(name, as_json_numbers(chunk), version)
        answer = client.post(f"/v2/models/{name}/versions/{version}/infer", json=body)
        assert answer.status_code == 200, answer.text[:500]
        answers.append(v2_outputs(answer.json()))
    served = np.concatenate(answers)
    expected = ort_predict(name, version, rows)
    assert served.shape == expected.shape
    assert np.abs(served - expected).max() <= TOLERANCE
    assert np.isfinite(served).all()
    assert len(np.unique(served.round(4), axis=0)) > len(rows) // 2  # real, varied answers


@pytest.mark.parametrize("version", versions("imdb"))
def test_trainer_and_service_encode_raw_reviews_alike(client, version, raw_reviews,
                                                      trainer_sequences):  # fmt: skip
    texts = [text for text, _ in raw_reviews]
    trainer_side = trainer_rows("imdb", version, trainer_sequences["imdb"])
    service_side = client.app.state.dataplane.registry.get("imdb", version).encoder.encode(texts)
    assert service_side.dtype == trainer_side.dtype
    np.testing.assert_array_equal(service_side, trainer_side)
    assert (trainer_side.sum(axis=1) > 1).all()  # the reviews' words were found

    answer = client.post(f"/api/imdb?version={version}", json={"reviews": texts})
    assert answer.status_code == 200, answer.text[:500]
    negative, positive = config("imdb", version).labels
    served = np.array([p["scores"][positive] for p in answer.json()["predictions"]])
    expected = ort_predict("imdb", version, trainer_side)[:, 0]
    assert np.abs(served - expected).max() <= TOLERANCE
    labels = [p["label"] for p in answer.json()["predictions"]]
    truth = [positive if label else negative for _, label in raw_reviews]
    assert np.mean(np.array(labels) == np.array(truth)) > 0.5  # better than a coin


def test_reuters_word_ids_equal_the_trainer_rows(client, trainer_sequences):
    sequences = trainer_sequences["reuters"]  # uncapped ids: the service caps them itself
    version = newest("reuters")
    answer = client.post("/api/reuters", json={"word_ids": sequences, "top_k": 46})
    assert answer.status_code == 200, answer.text[:500]
    labels = config("reuters", version).labels
    served = np.zeros((len(sequences), len(labels)), dtype=np.float32)
    for row, prediction in enumerate(answer.json()["predictions"]):
        for topic in prediction["topics"]:
            served[row, labels.index(topic["topic"])] = topic["probability"]
    expected = ort_predict("reuters", version, trainer_rows("reuters", version, sequences))
    assert np.abs(served - expected).max() <= TOLERANCE


def test_boston_named_features_equal_the_test_rows(client, boston_rows):
    version = newest("boston")
    names = [f.name for f in config("boston", version).encoding.features]
    houses = [dict(zip(names, map(float, row), strict=True)) for row in boston_rows]
    answer = client.post("/api/boston", json={"houses": houses})
    assert answer.status_code == 200, answer.text[:500]  # real houses are within the ranges
    served = np.array([p["price"] for p in answer.json()["predictions"]])
    expected = ort_predict("boston", version, boston_rows)[:, 0]
    assert np.abs(served - expected).max() <= TOLERANCE


@pytest.mark.slow
def test_batch_encoding_equals_the_per_text_reference_on_every_real_text(real_data_dir):
    """All 50,000 raw IMDB reviews (train and test) and every Reuters newswire decoded to text:
    `word_ids_batch` over all of them gives each text's `word_ids`, the reference."""
    corpora = {}
    for name in ("imdb", "reuters"):
        word_index = json.loads((real_data_dir / f"{name}_word_index.json").read_text("utf-8"))
        corpora[name] = data.full_vocabulary_encoder(word_index)
    reviews = data.read_reviews(real_data_dir / "aclImdb.tar.gz")
    texts = {"imdb": [text for split in reviews.values() for text, _ in split]}
    newswires = data.load_reuters(real_data_dir)
    texts["reuters"] = [
        corpora["reuters"].decode(ids) for ids in newswires.x_train + newswires.x_test
    ]
    assert (len(texts["imdb"]), len(texts["reuters"])) == (50_000, 11_228)
    for name, text_encoder in corpora.items():
        batch = text_encoder.word_ids_batch(texts[name])
        assert len(batch) == len(texts[name])
        for i, (ids, text) in enumerate(zip(batch.split(), texts[name], strict=True)):
            assert ids.tolist() == text_encoder.word_ids(text), f"{name} text {i}"
