"""A version's test metrics recomputed from its `model.onnx`, with onnxruntime and NumPy only: this
runs where only the `serve` extra is installed, and the publish gate scores the serving version
with it."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np
import onnxruntime as ort

from contract.config import ONNX_FILE, ModelConfig, read_config
from contract.text import TextEncoder, TextEncoding, WordIds
from trainer import data
from trainer.ahead import ahead, mapped_ahead
from trainer.calibration import SHORT_WORDS, calibration
from trainer.publish import version_folder
from trainer.sparse import dense_batches, sparse_feed

EPSILON = 1e-7  # Keras's clipping of probabilities in its cross-entropy losses
BATCH = 256  # rows per onnxruntime call for tabular data
# Text rows per onnxruntime call: a dense 50,000-column batch of 64 rows is 12.8 MB, written by the
# encoder and read by onnxruntime while it is still in the CPU's cache (256 rows: 51 MB, slower).
TEXT_BATCH = 64


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


def onnx_session(path: Path, threads: int = 0) -> ort.InferenceSession:
    """An onnxruntime session on the CPU; `threads` for its operators (0: onnxruntime's choice,
    one per core)."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def run_onnx(
    session: ort.InferenceSession, batches: Iterable[np.ndarray | Mapping[str, np.ndarray]]
) -> np.ndarray:
    """The first output for each batch: an array for a graph of one input, else arrays by name."""
    names = [i.name for i in session.get_inputs()]

    def feed(batch):
        return batch if isinstance(batch, Mapping) else dict(zip(names, [batch], strict=True))

    return np.concatenate([session.run(None, feed(batch))[0] for batch in batches])


def input_batches(
    config: ModelConfig,
    folder: Path,
    dataset: data.TextDataset | data.TabularDataset,
    *,
    rows: int = TEXT_BATCH,
    buffers: int = 1,
) -> Iterator[np.ndarray]:
    """The dataset's test rows as this version's graph takes them, a batch at a time: text encoded
    with the version's own encoding and vocabulary, `rows` rows per batch (made dense batch by
    batch: all 25,000 IMDB reviews at once would take 5 GB dense, ~300 MB sparse), tabular rows
    as they are. Text batches are written into `buffers` buffers in turn: a batch stays valid
    until `buffers` more are asked for."""
    if isinstance(dataset, data.TabularDataset):
        yield from dense_batches(dataset.x_test, BATCH)
        return
    encoding = config.encoding
    if not isinstance(encoding, TextEncoding):
        raise TypeError(f"{config.name} is a text model but its encoding is {encoding.kind}")
    encoder = TextEncoder.load(encoding, folder)
    ids = WordIds.from_sequences(dataset.x_test).capped(encoding.num_words, encoding.oov_id)
    if encoding.form == "sparse":  # each batch padded to its longest row, encoded on 2 cores
        names = [spec.name for spec in config.inputs]

        def feed(start: int) -> dict[str, np.ndarray]:
            return sparse_feed(encoder.sparse_rows(ids.rows(start, start + rows)), names)

        yield from mapped_ahead(feed, range(0, len(ids), rows))
        return
    # Buffers reused, each cleared where its last batch wrote: a fresh batch costs more in page
    # faults and zeroing than its encoding.
    ring = [np.zeros((min(rows, len(ids)), encoding.dim), np.float32) for _ in range(buffers)]
    written: list[np.ndarray | None] = [None] * buffers
    for number, start in enumerate(range(0, len(ids), rows)):
        buffer = ring[number % buffers]
        if (last := written[number % buffers]) is not None:
            buffer.reshape(-1)[last] = 0
        part = ids.rows(start, start + rows)
        batch = buffer[: len(part)]
        written[number % buffers] = encoder.fill(batch, part)
        yield batch


def score_version(
    folder: Path, config: ModelConfig, dataset: data.TextDataset | data.TabularDataset
) -> dict[str, float]:
    """The version's test metrics: those its config records (versions made before calibration
    was measured record no calibration figures). The short texts run in the same pass as the
    others: the vocabulary is read once."""
    measured = config.metrics is not None and "ece" in config.metrics.test
    if not (measured and isinstance(dataset, data.TextDataset)):
        return score(config.task, dataset.y_test, predict_version(folder, config, dataset))
    texts = len(dataset.x_test)
    both = dataclasses.replace(dataset, x_test=dataset.x_test + short_texts(dataset).x_test)
    outputs = predict_version(folder, config, both)
    return version_metrics(config.task, dataset.y_test, outputs[:texts], outputs[texts:])


def short_texts(dataset: data.TextDataset) -> data.TextDataset:
    """Each test text cut to its first `SHORT_WORDS` words (after its start id)."""
    return dataclasses.replace(dataset, x_test=[t[: 1 + SHORT_WORDS] for t in dataset.x_test])


def version_metrics(
    task: str, y_true: np.ndarray, outputs: np.ndarray, short_outputs: np.ndarray | None = None
) -> dict[str, float]:
    """`score` of the outputs on the test rows and, given a text classifier's outputs on the
    short texts (`short_texts`), its calibration on both (`_short`: the short texts')."""
    metrics = score(task, y_true, outputs)
    if short_outputs is not None:
        metrics |= calibration(outputs, y_true)
        metrics |= calibration(short_outputs, y_true, "_short")
    return metrics


def predict_version(
    folder: Path, config: ModelConfig, dataset: data.TextDataset | data.TabularDataset
) -> np.ndarray:
    """The version's outputs on the test rows. Text rows are encoded in a thread while onnxruntime runs the
    batch before on one thread: on 2 cores, faster than running each in turn on both (and no
    slower where other processes load the cores)."""
    if isinstance(dataset, data.TabularDataset):
        batches = input_batches(config, folder, dataset)
    else:
        # one batch in use, one queued, one being written: 3 buffers
        batches = ahead(input_batches(config, folder, dataset, buffers=3))
    return run_onnx(onnx_session(folder / ONNX_FILE, threads=1), batches)


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
