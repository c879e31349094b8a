"""SavedModel and ONNX export, and the parity check that proves the two compute the same function.

tf2onnx's `from_keras` does not work with Keras 3, so the ONNX graph is converted from a
`tf.function` whose input `TensorSpec` and output dict carry the names that the config gives.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

from contract.config import (
    CONFIG_FILE,
    ONNX_FILE,
    SAVED_MODEL_DIR,
    Export,
    ModelConfig,
    TensorSpec,
    read_config,
)
from trainer import data
from trainer.evaluate import input_batches, onnx_session, run_onnx
from trainer.publish import ExportError, version_folder
from trainer.sparse import dense_batches

OPSET = 17  # tf2onnx 1.17 fails at opset 19 and above
# The largest |Keras - exported| allowed on any test output, relative to the output where it is
# above 1: float32 carries ~7 digits, so a price near 50 ($1000s) is exact to ~4e-6, not 1e-5.
TOLERANCE = 1e-5

_ONNX_TYPES = {
    "FP32": onnx.TensorProto.FLOAT,
    "FP64": onnx.TensorProto.DOUBLE,
    "INT32": onnx.TensorProto.INT32,
    "INT64": onnx.TensorProto.INT64,
}


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff_onnx: float
    max_abs_diff_saved_model: float
    labels_identical: bool | None  # None for regression


def _signature(spec: TensorSpec) -> list[tf.TensorSpec]:
    return [tf.TensorSpec([None if d < 0 else d for d in spec.shape], tf.float32, name=spec.name)]


def export_saved_model(model, input_spec: TensorSpec, output_spec: TensorSpec, path: Path) -> None:
    """A SavedModel with a `serve` function and a `serving_default` signature (for TF Serving)
    named as the config names the input and output.

    Written with tf.saved_model.save from a module that tracks each backing variable once: Keras's
    own `model.export` stores every weight twice."""
    module = tf.Module()
    module.weights = [variable.value for variable in model.weights]
    module.serve = tf.function(
        lambda x: model(x, training=False), input_signature=_signature(input_spec)
    )
    signature = tf.function(
        lambda x: {output_spec.name: module.serve(x)}, input_signature=_signature(input_spec)
    )
    tf.saved_model.save(module, str(path), signatures={"serving_default": signature})


def export_onnx(
    model_fn: Callable, input_spec: TensorSpec, output_spec: TensorSpec, path: Path
) -> None:
    """Converts `model_fn` (a Keras model or a SavedModel's `serve`) to ONNX at `path`."""
    signature = _signature(input_spec)
    serve = tf.function(lambda x: {output_spec.name: model_fn(x)}, input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET)
    check_signature(proto, [input_spec], [output_spec], path)
    onnx.save(proto, str(path))


def check_signature(
    proto: onnx.ModelProto, inputs: list[TensorSpec], outputs: list[TensorSpec], where: Path
) -> None:
    """The graph's inputs and outputs are exactly the ones the config names: names, types, shapes."""
    onnx.checker.check_model(proto)
    for kind, found, expected in (
        ("inputs", proto.graph.input, inputs),
        ("outputs", proto.graph.output, outputs),
    ):
        actual = [_spec_of(value) for value in found]
        wanted = [(s.name, _ONNX_TYPES[s.datatype], s.shape) for s in expected]
        if actual != wanted:
            raise ExportError(f"{where}: graph {kind} are {actual}, the config names {wanted}")


def _spec_of(value: onnx.ValueInfoProto) -> tuple[str, int, list[int]]:
    tensor = value.type.tensor_type
    shape = [d.dim_value if d.HasField("dim_value") else -1 for d in tensor.shape.dim]
    return value.name, tensor.elem_type, shape


def check_parity(
    reference: Callable[[np.ndarray], np.ndarray],
    saved_model_dir: Path,
    onnx_path: Path,
    batches: Callable[[], Iterable[np.ndarray]],
    task: str,
) -> tuple[Parity, np.ndarray]:
    """Runs every test row through the reference (the Keras model), the reloaded SavedModel and
    onnxruntime; raises `ExportError` unless both exports are within TOLERANCE (relative above 1)
    of the reference and predict the same labels. Returns the parity figures and the ONNX outputs,
    for scoring."""
    reference_out = np.concatenate([np.asarray(reference(b)) for b in batches()])
    saved_model = tf.saved_model.load(str(saved_model_dir))  # keep it: `serve` needs its variables
    saved_out = np.concatenate([saved_model.serve(tf.constant(b)).numpy() for b in batches()])
    onnx_out = run_onnx(onnx_session(onnx_path), batches())
    labels = predicted_labels(reference_out)
    parity = Parity(
        rows=len(reference_out),
        max_abs_diff_onnx=float(np.abs(onnx_out - reference_out).max()),
        max_abs_diff_saved_model=float(np.abs(saved_out - reference_out).max()),
        labels_identical=None
        if task == "regression"
        else bool(
            np.array_equal(labels, predicted_labels(onnx_out))
            and np.array_equal(labels, predicted_labels(saved_out))
        ),
    )
    allowed = TOLERANCE * np.maximum(1.0, np.abs(reference_out))
    if (
        (np.abs(onnx_out - reference_out) > allowed).any()
        or (np.abs(saved_out - reference_out) > allowed).any()
        or parity.labels_identical is False
    ):
        raise ExportError(f"the exported models disagree with Keras on the test set: {parity}")
    return parity, onnx_out


def predicted_labels(outputs: np.ndarray) -> np.ndarray:
    """Class index per row: a sigmoid column thresholds at 0.5, a softmax row takes its argmax."""
    if outputs.shape[-1] == 1:
        return (outputs[:, 0] > 0.5).astype(np.int64)
    return outputs.argmax(axis=-1)


def export_info(parity: Parity) -> Export:
    return Export(
        opset=OPSET,
        parity_rows=parity.rows,
        max_abs_diff_onnx=parity.max_abs_diff_onnx,
        max_abs_diff_saved_model=parity.max_abs_diff_saved_model,
        labels_identical=parity.labels_identical,
    )


def export_model(model, config_inputs, config_outputs, x_test, task: str, folder: Path):
    """The SavedModel and the ONNX graph of a trained Keras model in `folder`, checked for parity
    on the test rows. Returns the parity figures and the ONNX outputs, for scoring."""
    export_saved_model(model, config_inputs[0], config_outputs[0], folder / SAVED_MODEL_DIR)
    export_onnx(
        lambda x: model(x, training=False), config_inputs[0], config_outputs[0], folder / ONNX_FILE
    )
    return check_parity(
        lambda x: model(x, training=False).numpy(),
        folder / SAVED_MODEL_DIR,
        folder / ONNX_FILE,
        lambda: dense_batches(x_test),
        task,
    )


def reexport(
    name: str,
    version: int | None,
    *,
    data_dir: Path | None,
    models_dir: Path,
    own: data.OwnFiles | None = None,
) -> ModelConfig:
    """Converts the version's SavedModel to ONNX again; replaces `model.onnx` (and records it in the
    config) only if the new graph passes the signature and parity checks against the SavedModel."""
    folder = version_folder(models_dir, name, version)
    config = read_config(folder)
    dataset = data.load(name, data_dir, own, test_only=True)
    saved_model = tf.saved_model.load(str(folder / SAVED_MODEL_DIR))
    serve = saved_model.serve  # valid while `saved_model` is referenced
    candidate = folder / f".{ONNX_FILE}.new"
    try:
        export_onnx(serve, config.inputs[0], config.outputs[0], candidate)
        parity, _ = check_parity(
            lambda x: serve(tf.constant(x)).numpy(),
            folder / SAVED_MODEL_DIR,
            candidate,
            lambda: input_batches(config, folder, dataset, rows=256),
            config.task,
        )
        updated = config.model_copy(update={"export": export_info(parity)})
        os.replace(candidate, folder / ONNX_FILE)
    finally:
        candidate.unlink(missing_ok=True)
    (folder / CONFIG_FILE).write_text(updated.model_dump_json(indent=2) + "\n", "utf-8")
    return updated
