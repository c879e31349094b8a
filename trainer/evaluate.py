"""A version's test metrics recomputed from its `model.onnx`, with onnxruntime and NumPy only: this
runs where only the `serve` extra is installed, and the publish gate scores the serving version
with it."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.encoding import TextEncoder, TextEncoding, WordIds
from service.repository import ONNX_FILE, ModelConfig, read_config
from trainer import data
from trainer.publish import version_folder
from trainer.sparse import dense_batches

EPSILON = 1e-7  # Keras's clipping of probabilities in its cross-entropy losses
BATCH = 256  # rows per onnxruntime call for tabular data
# Text rows per onnxruntime call: a dense 50,000-column batch of 32 rows is 6.4 MB, written by the
# encoder and read by onnxruntime while it is still in the CPU's cache (256 rows: 51 MB, 1.3 x
# slower in all).
TEXT_BATCH = 32


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


def input_batches(
    config: ModelConfig, folder: Path, dataset: data.TextDataset | data.TabularDataset
) -> Iterator[np.ndarray]:
    """The dataset's test rows as this version's graph takes them, a batch at a time: text encoded
    with the version's own encoding and vocabulary (made dense batch by batch: all 25,000 IMDB
    reviews at once would take ~300 MB even sparse), tabular rows as they are. A text batch is
    valid until the next one is asked for (its buffer is reused)."""
    if isinstance(dataset, data.TabularDataset):
        yield from dense_batches(dataset.x_test, BATCH)
        return
    encoding = config.encoding
    if not isinstance(encoding, TextEncoding):
        raise TypeError(f"{config.name} is a text model but its encoding is {encoding.kind}")
    encoder = TextEncoder.load(encoding, folder)
    ids = WordIds.from_sequences(dataset.x_test).capped(encoding.num_words, encoding.oov_id)
    # One buffer for every batch, cleared where the last batch wrote: a fresh batch costs more in
    # page faults and zeroing than its encoding.
    buffer = np.zeros((min(TEXT_BATCH, len(ids)), encoding.dim), np.float32)
    for start in range(0, len(ids), TEXT_BATCH):
        part = ids.rows(start, start + TEXT_BATCH)
        batch = buffer[: len(part)]
        written = encoder.fill(batch, part)
        yield batch
        batch.reshape(-1)[written] = 0


def score_version(
    folder: Path, config: ModelConfig, dataset: data.TextDataset | data.TabularDataset
) -> dict[str, float]:
    outputs = run_onnx(onnx_session(folder / ONNX_FILE), input_batches(config, folder, dataset))
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
