"""SavedModel and ONNX export, and the parity check that proves the two compute the same function.

tf2onnx's `from_keras` does not work with Keras 3, so the ONNX graph is converted from a
`tf.function` whose input `TensorSpec` and output dict carry the names that the config gives.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import tensorflow as tf
import tf2onnx

from service.repository import TensorSpec

OPSET = 17  # tf2onnx 1.17 fails at opset 19 and above
TOLERANCE = 1e-5  # the largest |Keras - exported| allowed on any test output

_ONNX_TYPES = {
    "FP32": onnx.TensorProto.FLOAT,
    "FP64": onnx.TensorProto.DOUBLE,
    "INT32": onnx.TensorProto.INT32,
    "INT64": onnx.TensorProto.INT64,
}


class ExportError(Exception):
    """The exported graphs disagree with the model or its config; nothing is published."""


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


def onnx_session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_onnx(session: ort.InferenceSession, batches: Iterable[np.ndarray]) -> np.ndarray:
    (input_name,) = [i.name for i in session.get_inputs()]
    return np.concatenate([session.run(None, {input_name: batch})[0] for batch in batches])


def check_parity(
    reference: Callable[[np.ndarray], np.ndarray],
    saved_model_dir: Path,
    onnx_path: Path,
    batches: Callable[[], Iterable[np.ndarray]],
    task: str,
) -> tuple[Parity, np.ndarray]:
    """Runs every test row through the reference (the Keras model), the reloaded SavedModel and
    onnxruntime; raises `ExportError` unless both exports are within TOLERANCE of the reference and
    predict the same labels. Returns the parity figures and the ONNX outputs, for scoring."""
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
    if (
        parity.max_abs_diff_onnx > TOLERANCE
        or parity.max_abs_diff_saved_model > TOLERANCE
        or parity.labels_identical is False
    ):
        raise ExportError(f"the exported models disagree with Keras on the test set: {parity}")
    return parity, onnx_out


def predicted_labels(outputs: np.ndarray) -> np.ndarray:
    """Class index per row: a sigmoid column thresholds at 0.5, a softmax row takes its argmax."""
    if outputs.shape[-1] == 1:
        return (outputs[:, 0] > 0.5).astype(np.int64)
    return outputs.argmax(axis=-1)
