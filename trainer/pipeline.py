"""The trainer's three jobs, each data → model → fit → evaluate → export → publish, or part of it:

- `train`: a recipe on a dataset into a new version of the model repository;
- `evaluate`: recompute a version's test metrics from its ONNX graph and vocabulary;
- `reexport`: convert a version's SavedModel to ONNX again (e.g. with a newer tf2onnx).
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as package_version
from pathlib import Path

import numpy as np

from service.encoding import TextEncoder, TextEncoding
from service.repository import (
    CURVES_FILE,
    ONNX_FILE,
    SAVED_MODEL_DIR,
    Export,
    Metrics,
    ModelConfig,
    Training,
    read_config,
)
from trainer import data, export, publish
from trainer.fit import Inputs, SparseRows, dense_batches, fit, metric_for, plot_curves
from trainer.recipes import Recipe
from trainer.tasks import prepare

EPSILON = 1e-7  # Keras's clipping of probabilities in its cross-entropy losses


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


@dataclass(frozen=True)
class Trained:
    folder: Path
    config: ModelConfig


def train(
    recipe: Recipe,
    *,
    seed: int,
    data_dir: Path | None,
    models_dir: Path,
    version: int | None = None,
    verbose: int = 2,
) -> Trained:
    started = time.monotonic()
    dataset = recipe.dataset
    version = version or publish.next_version(models_dir, dataset)
    publish.check_free(models_dir, dataset, version)

    prepared = prepare(recipe, data_dir)
    result = fit(prepared.build_model, prepared.x_train, prepared.y_train, recipe, seed, verbose)
    model = result.model

    with publish.staging(models_dir, dataset) as folder:
        export.export_saved_model(
            model, prepared.inputs[0], prepared.outputs[0], folder / SAVED_MODEL_DIR
        )
        export.export_onnx(
            lambda x: model(x, training=False),
            prepared.inputs[0],
            prepared.outputs[0],
            folder / ONNX_FILE,
        )
        parity, outputs = export.check_parity(
            lambda x: model(x, training=False).numpy(),
            folder / SAVED_MODEL_DIR,
            folder / ONNX_FILE,
            lambda: dense_batches(prepared.x_test),
            prepared.task,
        )
        if prepared.encoder is not None:
            prepared.encoder.save(folder)
        plot_curves(
            result.histories,
            metric_for(recipe),
            result.epochs,
            f"{dataset} v{version}, recipe {recipe.name}, seed {seed}",
            folder / CURVES_FILE,
        )
        config = ModelConfig(
            name=dataset,
            version=version,
            description=prepared.description,
            task=prepared.task,
            inputs=prepared.inputs,
            outputs=prepared.outputs,
            labels=prepared.labels,
            target=prepared.target,
            encoding=prepared.encoding,
            metrics=Metrics(
                test=score(prepared.task, prepared.y_test, outputs),
                validation={k: float(v) for k, v in result.validation.items()},
            ),
            training=Training(
                recipe=recipe.name,
                hyperparameters=recipe.model_dump(exclude={"dataset", "name"}),
                seed=seed,
                epochs=result.epochs,
                data_files=prepared.files,
                library_versions=library_versions(),
                duration_s=round(time.monotonic() - started, 1),
                trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
                machine=machine(),
            ),
            export=_export_info(parity),
        )
        target = publish.publish(folder, config, models_dir)
    publish.write_index(models_dir)
    return Trained(target, config)


def test_inputs(
    config: ModelConfig, folder: Path, data_dir: Path | None
) -> tuple[Inputs, np.ndarray]:
    """The test split encoded with the version's own encoding and vocabulary, and its targets."""
    if config.name == "boston":
        loaded = data.load_boston(data_dir)
        return loaded.x_test, loaded.y_test
    loaded = data.load_imdb(data_dir) if config.name == "imdb" else data.load_reuters(data_dir)
    encoding = config.encoding
    if not isinstance(encoding, TextEncoding):
        raise TypeError(f"{config.name} is a text model but its encoding is {encoding.kind}")
    encoder = TextEncoder.load(encoding, folder)
    rows, columns, values = encoder.coordinates(data.cap_words(loaded.x_test, encoding.num_words))
    return SparseRows(rows, columns, values, (len(loaded.x_test), encoding.dim)), loaded.y_test


def evaluate(
    name: str, version: int | None, *, data_dir: Path | None, models_dir: Path
) -> tuple[ModelConfig, dict[str, float]]:
    """The version's config and its test metrics recomputed from `model.onnx`."""
    folder = version_folder(models_dir, name, version)
    config = read_config(folder)
    x_test, y_test = test_inputs(config, folder, data_dir)
    outputs = export.run_onnx(export.onnx_session(folder / ONNX_FILE), dense_batches(x_test))
    return config, score(config.task, y_test, outputs)


def reexport(
    name: str, version: int | None, *, data_dir: Path | None, models_dir: Path
) -> ModelConfig:
    """Converts the version's SavedModel to ONNX again; replaces `model.onnx` (and records it in the
    config) only if the new graph passes the signature and parity checks against the SavedModel."""
    import tensorflow as tf

    folder = version_folder(models_dir, name, version)
    config = read_config(folder)
    x_test, _ = test_inputs(config, folder, data_dir)
    saved_model = tf.saved_model.load(str(folder / SAVED_MODEL_DIR))
    serve = saved_model.serve  # valid while `saved_model` is referenced
    candidate = folder / f".{ONNX_FILE}.new"
    try:
        export.export_onnx(serve, config.inputs[0], config.outputs[0], candidate)
        parity, _ = export.check_parity(
            lambda x: serve(tf.constant(x)).numpy(),
            folder / SAVED_MODEL_DIR,
            candidate,
            lambda: dense_batches(x_test),
            config.task,
        )
        updated = config.model_copy(update={"export": _export_info(parity)})
        os.replace(candidate, folder / ONNX_FILE)
    finally:
        candidate.unlink(missing_ok=True)
    (folder / "config.json").write_text(updated.model_dump_json(indent=2) + "\n", "utf-8")
    return updated


def version_folder(models_dir: Path, name: str, version: int | None) -> Path:
    """A version's folder; the newest version where none is given."""
    if version is None:
        newest = publish.next_version(models_dir, name) - 1
        if newest == 0:
            raise publish.PublishError(f"{models_dir / name} has no versions")
        version = newest
    folder = models_dir / name / str(version)
    if not folder.is_dir():
        raise publish.PublishError(f"{folder} does not exist")
    return folder


def _export_info(parity: export.Parity) -> Export:
    return Export(
        opset=export.OPSET,
        parity_rows=parity.rows,
        max_abs_diff_onnx=parity.max_abs_diff_onnx,
        max_abs_diff_saved_model=parity.max_abs_diff_saved_model,
        labels_identical=parity.labels_identical,
    )


def library_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for name, distributions in (
        ("tensorflow", ("tensorflow-cpu", "tensorflow")),
        *((name, (name,)) for name in ("keras", "tf2onnx", "onnx", "onnxruntime", "numpy")),
    ):
        for distribution in distributions:
            try:
                found[name] = package_version(distribution)
                break
            except PackageNotFoundError:
                continue
    return found


def machine() -> str:
    """e.g. 'Linux x86_64, 2 CPUs (Intel(R) Xeon(R) …)'."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    model = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in cpuinfo.read_text().splitlines()
            if line.startswith("model name")
        ]
        model = names[0] if names else model
    return f"{platform.system()} {platform.machine()}, {cpus} CPUs ({model or 'unknown CPU'})"
