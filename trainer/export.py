"""SavedModel and ONNX export, and the parity check that proves the two compute the same function.

tf2onnx's `from_keras` does not work with Keras 3, so the ONNX graph is converted from a
`tf.function` whose input `TensorSpec`s and output dict carry the names that the config gives.
The trained models take one input and give one output; a model `trainer import` converts (a Keras
file, a SavedModel folder) may take and give several, of any datatype.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import tensorflow as tf
import tf2onnx

from contract.config import (
    CONFIG_FILE,
    NUMPY_OF_DATATYPE,
    ONNX_FILE,
    SAVED_MODEL_DIR,
    Export,
    ModelConfig,
    TensorSpec,
    read_config,
)
from trainer import data
from trainer.evaluate import TEXT_BATCH, input_batches, onnx_session
from trainer.publish import ExportError, version_folder
from trainer.sparse import batches as model_batches

OPSET = 17  # tf2onnx 1.17 fails at opset 19 and above
# The largest |Keras - exported| allowed on any test output, relative to the output where it is
# above 1: float32 carries ~7 digits, so a price near 50 ($1000s) is exact to ~4e-6, not 1e-5.
TOLERANCE = 1e-5

_ONNX_TYPES = {
    datatype: onnx.helper.np_dtype_to_tensor_dtype(np.dtype(numpy_type))
    for datatype, numpy_type in NUMPY_OF_DATATYPE.items()
    if datatype != "BYTES"
} | {"BYTES": onnx.TensorProto.STRING}

Specs = TensorSpec | Sequence[TensorSpec]  # one input (output), or several in order
# Rows for a model: an array (a model of one input) or arrays by input name.
Batch = np.ndarray | Mapping[str, np.ndarray]


@dataclass(frozen=True)
class Parity:
    rows: int
    max_abs_diff_onnx: float
    max_abs_diff_saved_model: float
    labels_identical: bool | None  # None for regression and models of no task


def _listed(specs: Specs) -> list[TensorSpec]:
    return [specs] if isinstance(specs, TensorSpec) else list(specs)


def _tf_type(datatype: str) -> tf.DType:
    return tf.string if datatype == "BYTES" else tf.as_dtype(NUMPY_OF_DATATYPE[datatype])


def _signature(specs: Specs) -> list[tf.TensorSpec]:
    return [
        tf.TensorSpec([None if d < 0 else d for d in s.shape], _tf_type(s.datatype), name=s.name)
        for s in _listed(specs)
    ]


def datatype_of(dtype) -> str:
    """The V2 datatype of a TensorFlow, Keras or NumPy dtype (tf.bool, "float32", …)."""
    dtype = tf.as_dtype(dtype)
    if dtype == tf.string:
        return "BYTES"
    for datatype, numpy_type in NUMPY_OF_DATATYPE.items():
        if datatype != "BYTES" and np.dtype(numpy_type) == np.dtype(dtype.as_numpy_dtype):
            return datatype
    raise ExportError(f"{dtype.name} tensors have no Open Inference Protocol datatype")


def keras_call(model) -> Callable:
    """A Keras model as a function of its inputs' tensors, in the order of `model.inputs`."""
    return lambda *x: model(x[0] if len(x) == 1 else list(x), training=False)


def _named(answer, outputs: list[TensorSpec]) -> dict:
    """A model's answer (one tensor; a list in the outputs' order; a dict) by output name."""
    if isinstance(answer, Mapping):
        return {spec.name: answer[spec.name] for spec in outputs}
    if not isinstance(answer, list | tuple):
        answer = [answer]
    return {spec.name: tensor for spec, tensor in zip(outputs, answer, strict=True)}


def export_saved_model(model, inputs: Specs, outputs: Specs, path: Path) -> None:
    """A SavedModel with a `serve` function and a `serving_default` signature (for TF Serving)
    named as the config names the inputs and outputs.

    Written with tf.saved_model.save from a module that tracks each backing variable once: Keras's
    own `model.export` stores every weight twice."""
    inputs, outputs = _listed(inputs), _listed(outputs)
    module = tf.Module()
    module.weights = [variable.value for variable in model.weights]
    module.serve = tf.function(keras_call(model), input_signature=_signature(inputs))
    signature = tf.function(
        lambda *x: _named(module.serve(*x), outputs), input_signature=_signature(inputs)
    )
    tf.saved_model.save(module, str(path), signatures={"serving_default": signature})


def export_onnx(model_fn: Callable, inputs: Specs, outputs: Specs, path: Path) -> None:
    """Converts `model_fn` (a function of the inputs' tensors: a Keras model, a SavedModel's
    `serve`) to ONNX at `path`."""
    inputs, outputs = _listed(inputs), _listed(outputs)
    signature = _signature(inputs)
    serve = tf.function(lambda *x: _named(model_fn(*x), outputs), input_signature=signature)
    proto, _ = tf2onnx.convert.from_function(serve, input_signature=signature, opset=OPSET)
    # tf.nest flattens the output dict in its keys' order, and so the graph lists its outputs.
    check_signature(proto, inputs, sorted(outputs, key=lambda spec: spec.name), path)
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
    reference: Callable[[Batch], object],
    saved_model_dir: Path,
    onnx_path: Path,
    batches: Callable[[], Iterable[Batch]],
    task: str | None,
    *,
    against: str = "Keras",
    on: str = "the test set",
) -> tuple[Parity, np.ndarray]:
    """Runs every row through the reference (the Keras model), the reloaded SavedModel's
    `serving_default` signature and onnxruntime; raises `ExportError` unless both exports are
    within TOLERANCE (relative above 1) of the reference on every output and predict the same
    labels. A reference answers with an array (a model of one output) or tensors by output name.
    Returns the parity figures and the ONNX graph's (first) output, for scoring."""
    session = onnx_session(onnx_path)
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]

    def feed(batch: Batch) -> dict[str, np.ndarray]:
        return dict(batch) if isinstance(batch, Mapping) else {inputs[0]: batch}

    reference_out = _gathered((reference(b) for b in batches()), outputs)
    saved_model = tf.saved_model.load(str(saved_model_dir))  # keep it: the signature needs it
    serving = saved_model.signatures["serving_default"]
    saved_out = _gathered(
        (serving(**{n: tf.constant(a) for n, a in feed(b).items()}) for b in batches()), outputs
    )
    onnx_out = _gathered(
        (dict(zip(outputs, session.run(outputs, feed(b)), strict=True)) for b in batches()), outputs
    )
    onnx_diff, onnx_within = _differences(reference_out, onnx_out, "ONNX graph")
    saved_diff, saved_within = _differences(reference_out, saved_out, "SavedModel")
    first = reference_out[outputs[0]]
    labels_identical = None
    if task not in (None, "regression"):
        labels = predicted_labels(first)
        labels_identical = bool(
            np.array_equal(labels, predicted_labels(onnx_out[outputs[0]]))
            and np.array_equal(labels, predicted_labels(saved_out[outputs[0]]))
        )
    parity = Parity(
        rows=len(first) if first.ndim else 1,
        max_abs_diff_onnx=onnx_diff,
        max_abs_diff_saved_model=saved_diff,
        labels_identical=labels_identical,
    )
    if not (onnx_within and saved_within) or parity.labels_identical is False:
        raise ExportError(f"the exported models disagree with {against} on {on}: {parity}")
    return parity, onnx_out[outputs[0]]


def _gathered(answers: Iterable, names: list[str]) -> dict[str, np.ndarray]:
    """Answers batch by batch (an array for one output, else tensors by name), joined by name."""
    parts: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for answer in answers:
        if not isinstance(answer, Mapping):
            if len(names) != 1:
                raise ExportError(f"one output answered where the graph gives {names}")
            answer = {names[0]: answer}
        missing = [name for name in names if name not in answer]
        if missing:
            raise ExportError(f"no output named {missing} in the answer (it has {list(answer)})")
        for name in names:
            parts[name].append(np.asarray(answer[name]))
    return {
        name: np.concatenate(arrays) if arrays[0].ndim else arrays[0]
        for name, arrays in parts.items()
    }


def _differences(
    reference: dict[str, np.ndarray], exported: dict[str, np.ndarray], what: str
) -> tuple[float, bool]:
    """The largest |reference - exported| over every output, and whether each is within
    TOLERANCE (relative above 1). Text outputs must be equal."""
    largest, within = 0.0, True
    for name, expected in reference.items():
        found = exported[name]
        if found.shape != expected.shape:
            raise ExportError(
                f"the {what} answers output {name} with shape {found.shape}, not {expected.shape}"
            )
        if expected.dtype.kind in "OSU" or found.dtype.kind in "OSU":
            same = [_text(v) for v in expected.ravel()] == [_text(v) for v in found.ravel()]
            largest, within = (largest, within) if same else (float("inf"), False)
            continue
        expected, found = expected.astype(np.float64), found.astype(np.float64)
        difference = np.abs(found - expected)
        largest = max(largest, float(difference.max(initial=0.0)))
        within &= bool((difference <= TOLERANCE * np.maximum(1.0, np.abs(expected))).all())
    return largest, within


def _text(value) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


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
    on the test rows (a sparse model's padded to each batch's longest row). Returns the parity
    figures and the ONNX outputs, for scoring."""
    names = [spec.name for spec in _listed(config_inputs)]
    # A sparse model's sums round by its batch's padded width: its rows go in the batches that
    # `trainer evaluate` and the gate use, which then see the very same outputs.
    rows = TEXT_BATCH if names[0] == "ids" else 1024
    return export_keras(
        model,
        config_inputs,
        config_outputs,
        folder,
        lambda: model_batches(x_test, names, rows),
        task,
    )


def export_keras(
    model,
    inputs: Specs,
    outputs: Specs,
    folder: Path,
    batches: Callable[[], Iterable[Batch]],
    task: str | None = None,
    *,
    on: str = "the test set",
) -> tuple[Parity, np.ndarray]:
    """The SavedModel and the ONNX graph of a Keras model in `folder`, checked for parity on the
    batches. Returns the parity figures and the ONNX graph's (first) output."""
    inputs, outputs = _listed(inputs), _listed(outputs)
    call = keras_call(model)
    export_saved_model(model, inputs, outputs, folder / SAVED_MODEL_DIR)
    export_onnx(call, inputs, outputs, folder / ONNX_FILE)

    def reference(batch: Batch) -> dict:
        arrays = [batch[s.name] for s in inputs] if isinstance(batch, Mapping) else [batch]
        return _named(call(*arrays), outputs)

    return check_parity(
        reference, folder / SAVED_MODEL_DIR, folder / ONNX_FILE, batches, task, on=on
    )


# `trainer import`: a model made elsewhere, exported as the trained ones are. `rows` gives the
# batches to check it on, given its inputs (the user's rows, checked, or rows made up for them).
Rows = Callable[[list[TensorSpec]], list[dict[str, np.ndarray]]]
ON_ROWS = "the rows checked"


def import_keras(path: Path, folder: Path, rows: Rows) -> Parity:
    """A Keras model file (.keras) as `saved_model/` and `model.onnx` in `folder`, checked for
    parity with the Keras model on the rows."""
    import keras

    try:
        model = keras.saving.load_model(str(path), compile=False)  # safe mode: no Python code
    except Exception as error:
        raise ExportError(f"{path} cannot be read as a Keras model: {error}") from None
    inputs, outputs = keras_signature(model, path)
    batches = rows(inputs)
    with _failing_as_export(path):
        parity, _ = export_keras(model, inputs, outputs, folder, lambda: batches, on=ON_ROWS)
    return parity


@contextmanager
def _failing_as_export(path: Path) -> Iterator[None]:
    """A model that fails to convert, or to run on the rows, is an export failure (exit 4) whose
    message names it, not a traceback."""
    try:
        yield
    except ExportError:
        raise
    except Exception as error:
        message = " ".join(re.sub(r"\x1b\[[0-9;]*m", "", str(error)).split())  # no colours
        message = message if len(message) <= 600 else message[:600] + " …"
        raise ExportError(
            f"{path}: the export failed ({type(error).__name__}: {message}); where the model "
            "cannot take made-up rows, give it some with --rows"
        ) from None


def keras_signature(model, path: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """A Keras model's inputs and outputs, named as the model names them (its Input layers, its
    output layers)."""
    try:
        inputs, outputs = list(model.inputs), list(model.outputs)
    except (AttributeError, ValueError):
        raise ExportError(
            f"{path}: the model's inputs are not known (a model built with keras.Input, functional "
            "or Sequential, names them)"
        ) from None
    names = list(getattr(model, "output_names", None) or [])
    if len(names) != len(outputs):
        names = [f"output_{number}" for number in range(len(outputs))]

    def spec(name: str, tensor) -> TensorSpec:
        shape = [-1 if d is None else int(d) for d in tensor.shape]
        return TensorSpec(name=name, datatype=datatype_of(tensor.dtype), shape=shape)

    return [spec(t.name, t) for t in inputs], [
        spec(n, t) for n, t in zip(names, outputs, strict=True)
    ]


def import_saved_model(path: Path, folder: Path, rows: Rows) -> Parity:
    """A SavedModel folder copied as `saved_model/`, its `serving_default` signature converted to
    `model.onnx` in `folder`, checked for parity with the SavedModel on the rows."""
    try:
        loaded = tf.saved_model.load(str(path))
    except Exception as error:
        raise ExportError(f"{path} cannot be read as a SavedModel: {error}") from None
    signature = loaded.signatures.get("serving_default")
    if signature is None:
        raise ExportError(
            f"{path} has no serving_default signature (it has {sorted(loaded.signatures) or 'none'}); "
            "Keras's model.export(path) writes one"
        )

    def specs(named: Mapping[str, tf.TensorSpec]) -> list[TensorSpec]:
        if any(spec.shape.rank is None for spec in named.values()):
            raise ExportError(f"{path}: the serving signature has a tensor of unknown rank")
        return [
            TensorSpec(
                name=name,
                datatype=datatype_of(spec.dtype),
                shape=[-1 if d is None else d for d in spec.shape.as_list()],
            )
            for name, spec in named.items()
        ]

    inputs = specs(signature.structured_input_signature[1])
    outputs = specs(signature.structured_outputs)
    batches = rows(inputs)
    shutil.copytree(path, folder / SAVED_MODEL_DIR)

    def call(*tensors):
        return signature(**{spec.name: t for spec, t in zip(inputs, tensors, strict=True)})

    with _failing_as_export(path):
        export_onnx(call, inputs, outputs, folder / ONNX_FILE)
        parity, _ = check_parity(
            lambda batch: call(*[tf.constant(batch[spec.name]) for spec in inputs]),
            folder / SAVED_MODEL_DIR,
            folder / ONNX_FILE,
            lambda: batches,
            None,
            against="the SavedModel",
            on=ON_ROWS,
        )
    return parity


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
        export_onnx(serve, config.inputs, config.outputs, candidate)
        parity, _ = check_parity(
            lambda batch: (
                serve(*[tf.constant(batch[s.name]) for s in config.inputs]).numpy()
                if isinstance(batch, Mapping)
                else serve(tf.constant(batch)).numpy()
            ),
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
