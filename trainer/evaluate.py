"""A version's test metrics recomputed from its `model.onnx`, with onnxruntime and NumPy only: this
runs where only the `serve` extra is installed, and the publish gate scores the serving version
with it."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.encoding import TextEncoder, TextEncoding
from service.repository import ONNX_FILE, ModelConfig, read_config
from trainer import data
from trainer.publish import version_folder
from trainer.sparse import Inputs, SparseRows, dense_batches

EPSILON = 1e-7  # Keras's clipping of probabilities in its cross-entropy losses
CHUNK = 2048  # texts encoded at a time
BATCH = 256  # rows per onnxruntime call: a dense 50,000-column batch of 256 rows is 51 MB


def score(task: str, y_true: np.ndarray, outputs: np.ndarray) -> dict[str, float]:
    """Test metrics of model outputs, computed in NumPy so that anyone can recompute them."""
    if task == "regression":
        error = outputs[:, 0].astype(np.float64) - y_true
        return {"mae": float(np.abs(error).mean()), "mse": float((error**2).mean())}
    probabilities = np.clip(outputs.astype(np.float64), EPSILON, 1 - EPSILON)
    if task == "binary_classification":
        p, y = probabilities[:, 0], y_true.astype(np.float64)
        return {
            "accuracy": float(((p > 0.5) == (y > 0.5)).mean()),
            "loss": float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean()),
        }
    y = y_true.astype(np.int64)
    return {
        "accuracy": float((probabilities.argmax(axis=1) == y).mean()),
        "loss": float(-np.log(probabilities[np.arange(len(y)), y]).mean()),
    }


def onnx_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, batches: Iterable[np.ndarray]) -> np.ndarray:
    (input_name,) = [i.name for i in session.get_inputs()]
    return np.concatenate([session.run(None, {input_name: batch})[0] for batch in batches])


def encoded_test_rows(
    config: ModelConfig, folder: Path, dataset: data.TextDataset | data.TabularDataset
) -> Inputs:
    """The dataset's test rows as this version's graph takes them: text encoded with the version's
    own encoding and vocabulary, tabular rows as they are."""
    if isinstance(dataset, data.TabularDataset):
        return dataset.x_test
    encoding = config.encoding
    if not isinstance(encoding, TextEncoding):
        raise TypeError(f"{config.name} is a text model but its encoding is {encoding.kind}")
    encoder = TextEncoder.load(encoding, folder)
    rows, columns, values = [], [], []
    # In chunks: capped copies of all 25,000 IMDB reviews' word ids would cost ~150 MB at once.
    for start in range(0, len(dataset.x_test), CHUNK):
        chunk = data.cap_words(dataset.x_test[start : start + CHUNK], encoding.num_words)
        chunk_rows, chunk_columns, chunk_values = encoder.coordinates(chunk)
        rows.append(chunk_rows + start)
        columns.append(chunk_columns)
        values.append(chunk_values)
    return SparseRows(
        np.concatenate(rows),
        np.concatenate(columns),
        np.concatenate(values),
        (len(dataset.x_test), encoding.dim),
    )


def score_version(
    folder: Path, config: ModelConfig, dataset: data.TextDataset | data.TabularDataset
) -> dict[str, float]:
    outputs = run_onnx(
        onnx_session(folder / ONNX_FILE),
        dense_batches(encoded_test_rows(config, folder, dataset), BATCH),
    )
    return score(config.task, dataset.y_test, outputs)


def evaluate(
    name: str,
    version: int | None,
    *,
    data_dir: Path | None,
    models_dir: Path,
    own: data.OwnFiles | None = None,
) -> tuple[ModelConfig, dict[str, float]]:
    """The version's config and its test metrics recomputed from `model.onnx`."""
    folder = version_folder(models_dir, name, version)
    config = read_config(folder)
    dataset = data.load(name, data_dir, own, test_only=True)
    return config, score_version(folder, config, dataset)
