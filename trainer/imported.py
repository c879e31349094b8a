"""`trainer import`: a model made elsewhere (a Keras file, a SavedModel folder, an ONNX graph)
published as a new version of the model repository, the way the service serves it.

A Keras file or a SavedModel is exported as a trained model is (`trainer.export`: `saved_model/`
and `model.onnx`, opset 17, the same parity check); TensorFlow is imported for those two alone,
inside `import_model`. An ONNX graph is published as it is, once onnxruntime has loaded it and
run it on rows. The rows are the user's (`--rows`, an .npz of arrays named by the model's inputs)
or made up from the inputs' shapes and datatypes, seeded. The config's inputs and outputs are
read from the ONNX graph. There is no test set: no metrics, no gate, no task (answered as tensors).
"""

from __future__ import annotations

import hashlib
import re
import shutil
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from contract.config import (
    DATATYPE_OF_ONNX,
    NUMPY_OF_DATATYPE,
    ONNX_FILE,
    Imported,
    ModelConfig,
    TensorSpec,
)
from trainer import publish
from trainer.provenance import library_versions
from trainer.publish import ExportError

NAME_RULE = re.compile(r"^[a-z][a-z0-9_-]*$")  # as `ModelConfig.name`: a folder and a URL part
# Generated rows: how many (the batch dimension), the size of any other dimension of any size,
# integers drawn from 0 to INTEGERS - 1 (small: ids into an embedding), and rows per parity batch.
ROWS = 32
OTHER_DIM = 4
INTEGERS = 5
PARITY_BATCH = 16
WORDS = np.array(["alpha", "beta", "gamma", "delta", "epsilon"], dtype=object)  # BYTES inputs


class UsageError(Exception):
    """SOURCE, --rows or --labels cannot be used as given (exit 2); nothing is published."""


@dataclass(frozen=True)
class Result:
    folder: Path
    config: ModelConfig
    format: str


def source_format(source: Path) -> str:
    """keras, saved_model or onnx, from the file's suffix or the folder's saved_model.pb."""
    if not source.exists():
        raise UsageError(f"{source} does not exist")
    if source.is_dir():
        if (source / "saved_model.pb").is_file():
            return "saved_model"
        raise UsageError(f"{source} is a folder without saved_model.pb: not a SavedModel")
    formats = {".keras": "keras", ".onnx": "onnx"}
    if source.suffix.lower() not in formats:
        raise UsageError(
            f"{source}: SOURCE is a Keras model file (.keras), a SavedModel folder or an ONNX "
            "graph (.onnx)"
            + ("; save a legacy .h5 model as .keras" if source.suffix == ".h5" else "")
        )
    return formats[source.suffix.lower()]


def read_rows(path: Path) -> dict[str, np.ndarray]:
    """The arrays of an .npz archive, by name (no pickled objects)."""
    if not path.is_file():
        raise UsageError(f"{path} (--rows) does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
        if not isinstance(loaded, np.lib.npyio.NpzFile):
            raise ValueError("one array, not an .npz archive of arrays named by the inputs")
        with loaded:
            rows = {name: loaded[name] for name in loaded.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UsageError(f"{path} (--rows) cannot be read as an .npz archive: {error}") from None
    if not rows:
        raise UsageError(f"{path} (--rows) holds no arrays")
    return rows


def check_rows(
    given: dict[str, np.ndarray], inputs: list[TensorSpec], where: Path
) -> dict[str, np.ndarray]:
    """The given arrays as the model's inputs take them: every input named, each array of the
    input's rank and fixed sizes, of its datatype (or one that casts to it within its kind: float64
    to FP32, int32 to INT64), the same number of rows in each."""
    names = [spec.name for spec in inputs]
    unknown = [name for name in given if name not in names]
    missing = [name for name in names if name not in given]
    if unknown or missing:
        problems = [f"{name!r} is not an input of the model" for name in unknown]
        problems += [f"no array for the input {name!r}" for name in missing]
        raise UsageError(
            f"{where} (--rows): {'; '.join(problems)} (the model's inputs: {', '.join(names)})"
        )
    feeds = {}
    for spec in inputs:
        array = given[spec.name]
        if array.ndim != len(spec.shape) or any(
            size >= 0 and size != found
            for size, found in zip(spec.shape, array.shape, strict=False)
        ):
            raise UsageError(
                f"{where} (--rows): {spec.name!r} has shape {list(array.shape)}; the model's "
                f"input takes {spec.shape} (-1: any size)"
            )
        feeds[spec.name] = _as_datatype(array, spec, where)
    batched = {spec.name: feeds[spec.name].shape[0] for spec in inputs if _batched(spec)}
    if len(set(batched.values())) > 1:
        raise UsageError(f"{where} (--rows): the arrays have different numbers of rows: {batched}")
    if 0 in batched.values():
        raise UsageError(f"{where} (--rows): no rows")
    return feeds


def _as_datatype(array: np.ndarray, spec: TensorSpec, where: Path) -> np.ndarray:
    if spec.datatype == "BYTES":
        if array.dtype.kind in "SU":
            return array.astype(object)
    else:
        wanted = np.dtype(NUMPY_OF_DATATYPE[spec.datatype])
        if array.dtype == wanted:
            return array
        if np.can_cast(array.dtype, wanted, "same_kind") and not (
            wanted.kind == "b" and array.dtype.kind != "b"
        ):
            return array.astype(wanted)
    raise UsageError(
        f"{where} (--rows): {spec.name!r} holds {array.dtype}; the model's input takes "
        f"{spec.datatype}"
    )


def make_rows(inputs: list[TensorSpec], seed: int) -> dict[str, np.ndarray]:
    """Rows for the inputs: ROWS along a batch dimension of any size, OTHER_DIM along any other;
    floats standard normal, integers 0 to INTEGERS - 1, booleans and words at random."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for spec in inputs:
        shape = [
            (ROWS if axis == 0 else OTHER_DIM) if size < 0 else size
            for axis, size in enumerate(spec.shape)
        ]
        numpy_type = NUMPY_OF_DATATYPE[spec.datatype]
        if spec.datatype == "BOOL":
            array = rng.random(shape) < 0.5
        elif spec.datatype == "BYTES":
            array = rng.choice(WORDS, size=shape)
        elif spec.datatype.startswith(("INT", "UINT")):
            array = rng.integers(0, INTEGERS, size=shape)
        else:
            array = rng.standard_normal(shape)
        feeds[spec.name] = np.asarray(array).astype(numpy_type)
    return feeds


def _batched(spec: TensorSpec) -> bool:
    return bool(spec.shape) and spec.shape[0] == -1


def row_count(feeds: dict[str, np.ndarray], inputs: list[TensorSpec]) -> int:
    """Rows along the batch dimension (1 for a model without one)."""
    counts = [len(feeds[spec.name]) for spec in inputs if _batched(spec)]
    return counts[0] if counts else 1


def batches(feeds: dict[str, np.ndarray], inputs: list[TensorSpec]) -> list[dict[str, np.ndarray]]:
    """The rows in batches of PARITY_BATCH where every input has a batch dimension, else whole."""
    if not inputs or not all(_batched(spec) for spec in inputs):
        return [feeds]
    rows = row_count(feeds, inputs)
    return [
        {name: array[start : start + PARITY_BATCH] for name, array in feeds.items()}
        for start in range(0, rows, PARITY_BATCH)
    ]


def graph_specs(session, source: Path) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The inputs and outputs of an onnxruntime session as the config names them: V2 datatypes,
    -1 for a dimension of any size (symbolic or unknown)."""

    def spec(node, kind: str) -> TensorSpec:
        datatype = DATATYPE_OF_ONNX.get(node.type)
        if datatype is None:
            raise ExportError(
                f"{source}: the {kind} {node.name!r} is a {node.type}, which no Open Inference "
                "Protocol datatype names (tensors of numbers, booleans or strings only)"
            )
        shape = [size if isinstance(size, int) and size >= 0 else -1 for size in node.shape or []]
        return TensorSpec(name=node.name, datatype=datatype, shape=shape)

    return (
        [spec(node, "input") for node in session.get_inputs()],
        [spec(node, "output") for node in session.get_outputs()],
    )


def check_onnx(path: Path, source: Path, feeds_for: Callable) -> int:
    """Loads the graph in onnxruntime and runs it once on the rows; returns how many rows."""
    from trainer.evaluate import onnx_session

    try:
        session = onnx_session(path)
    except Exception as error:
        raise ExportError(f"{source} cannot be loaded by onnxruntime: {error}") from None
    inputs, _ = graph_specs(session, source)
    feeds = feeds_for(inputs)
    try:
        session.run(None, feeds)
    except Exception as error:
        raise ExportError(
            f"{source}: onnxruntime loaded the graph but could not run it on the rows: {error}"
        ) from None
    return row_count(feeds, inputs)


def sha256_of(path: Path) -> str:
    """Of a file's bytes; of a folder's files, each relative path and its bytes, in order."""
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for file in files:
        if path.is_dir():
            digest.update(file.relative_to(path).as_posix().encode("utf-8") + b"\0")
        with file.open("rb") as stream:
            for block in iter(lambda: stream.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def import_model(
    source: Path,
    *,
    name: str,
    version: int | None,
    models_dir: Path,
    rows_file: Path | None = None,
    description: str | None = None,
    labels: list[str] | None = None,
    seed: int = 0,
) -> Result:
    """Checks SOURCE and publishes it as `name`'s version `version` (default: the next free one);
    raises `UsageError`, `publish.ExportError` or `publish.PublishError`, and then publishes
    nothing. Everything but the model itself is checked before TensorFlow is imported."""
    if not NAME_RULE.match(name):
        raise UsageError(f"the name {name!r} is not {NAME_RULE.pattern}")
    if labels is not None and (not all(labels) or len(set(labels)) != len(labels)):
        raise UsageError(f"--labels must name each label once, none empty: {labels}")
    format_ = source_format(source)
    given = read_rows(rows_file) if rows_file is not None else None
    version = version or publish.next_version(models_dir, name)
    publish.check_free(models_dir, name, version)

    def feeds_for(inputs: list[TensorSpec]) -> dict[str, np.ndarray]:
        if given is None:
            return make_rows(inputs, seed)
        return check_rows(given, inputs, rows_file)

    with _staging(models_dir, name) as folder:
        if format_ == "onnx":
            shutil.copyfile(source, folder / ONNX_FILE)  # what is served is what was checked
            export_record, checked_rows = None, check_onnx(folder / ONNX_FILE, source, feeds_for)
        else:
            from trainer import export  # TensorFlow, from here on

            convert = export.import_keras if format_ == "keras" else export.import_saved_model
            parity = convert(source, folder, lambda inputs: batches(feeds_for(inputs), inputs))
            export_record, checked_rows = export.export_info(parity), parity.rows
        from trainer.evaluate import onnx_session

        inputs, outputs = graph_specs(onnx_session(folder / ONNX_FILE), source)
        config = ModelConfig(
            name=name,
            version=version,
            description=description or f"{source.name}, imported with trainer import",
            inputs=inputs,
            outputs=outputs,
            labels=labels,
            export=export_record,
            imported=Imported(
                file=source.name,
                format=format_,
                sha256=sha256_of(source),
                checked_rows=checked_rows,
                rows_file=None if rows_file is None else {rows_file.name: sha256_of(rows_file)},
                seed=seed if rows_file is None else None,
                library_versions=library_versions(),
                imported_at=datetime.now(UTC).isoformat(timespec="seconds"),
            ),
        )
        publish.write_config(folder, config, None)
        target = publish.publish(folder, config, models_dir)
    publish.write_index(models_dir)
    return Result(target, config, format_)


@contextmanager
def _staging(models_dir: Path, name: str) -> Iterator[Path]:
    """`publish.staging`; where the model is new and nothing is published, its folder goes too."""
    new_model = not (models_dir / name).exists()
    try:
        with publish.staging(models_dir, name) as folder:
            yield folder
    except BaseException:
        if new_model:
            with suppress(OSError):
                (models_dir / name).rmdir()
        raise
