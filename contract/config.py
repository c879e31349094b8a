"""The model repository's layout and each version's config: what the trainer writes and the service
reads.

Triton's layout, `<root>/<name>/<version>/`, each version folder self-describing:

    model.onnx       the graph the service runs
    saved_model/     the same model as a TensorFlow SavedModel
    config.json      `ModelConfig`: inputs, outputs, labels, encoding, metrics, provenance
    vocabulary.json  text models: the encoder's words (and n-grams)
    curves.png       learning curves of the run that made it

A version of a model made elsewhere may have only `model.onnx`: the service completes its config
from the graph; provenance (`metrics`, `training`, `export`, `gate`) is there for the versions the
trainer made, and `imported` (with `export` where it converted the model) for the ones
`trainer import` published. Pydantic and NumPy's names of the datatypes: no TensorFlow, no
onnxruntime.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contract.endpoint import TabularEndpoint
from contract.numbers import VERSION_RULE, read_version
from contract.text import TextEncoding

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
ONNX_FILE = "model.onnx"
SAVED_MODEL_DIR = "saved_model"
CURVES_FILE = "curves.png"


class RepositoryError(Exception):
    """A model folder is missing, incomplete or inconsistent; the message names the file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# Open Inference Protocol V2's tensor datatypes.
Datatype = Literal[
    "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64",
    "FP16", "FP32", "FP64", "BYTES",
]  # fmt: skip


# ONNX's tensor element types (as onnxruntime names them) and their V2 names.
DATATYPE_OF_ONNX = {
    "tensor(bool)": "BOOL", "tensor(uint8)": "UINT8", "tensor(uint16)": "UINT16",
    "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64", "tensor(int8)": "INT8",
    "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
    "tensor(float16)": "FP16", "tensor(float)": "FP32", "tensor(double)": "FP64",
    "tensor(string)": "BYTES",
}  # fmt: skip
ONNX_OF_DATATYPE = {datatype: onnx for onnx, datatype in DATATYPE_OF_ONNX.items()}
# The V2 datatypes as NumPy's (little-endian, as the wire carries them); BYTES as Python objects
# (str or bytes), as onnxruntime takes and gives strings.
NUMPY_OF_DATATYPE: dict[str, np.dtype] = {
    name: np.dtype(code)
    for name, code in {
        "BOOL": "?", "UINT8": "<u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8",
        "INT8": "<i1", "INT16": "<i2", "INT32": "<i4", "INT64": "<i8",
        "FP16": "<f2", "FP32": "<f4", "FP64": "<f8", "BYTES": "O",
    }.items()
}  # fmt: skip


class TensorSpec(_Strict):
    """A graph input or output, with Open Inference Protocol datatype names; -1 is any size."""

    name: str
    datatype: Datatype
    shape: list[Annotated[int, Field(ge=-1)]]


class Feature(_Strict):
    """One named input column of a tabular model, with the range that is physically possible."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None


class TabularEncoding(_Strict):
    """Named features → one row in this column order; the model normalises them in its graph."""

    kind: Literal["features"] = "features"
    features: list[Feature]
    endpoint: TabularEndpoint = Field(
        TabularEndpoint(), description="How the typed endpoint (/api/{model}) names what it takes"
    )

    @model_validator(mode="after")
    def _example_fits_the_features(self) -> TabularEncoding:
        example = self.endpoint.example
        if example is None:
            return self
        if set(example) != {f.name for f in self.features}:
            raise ValueError("endpoint.example must give every feature, and only those")
        for f in self.features:
            low, high = f.minimum, f.maximum
            if (low is not None and example[f.name] < low) or (
                high is not None and example[f.name] > high
            ):
                raise ValueError(f"endpoint.example's {f.name} is beyond the feature's range")
        return self


Encoding = Annotated[TextEncoding | TabularEncoding, Field(discriminator="kind")]


class Target(_Strict):
    name: str
    description: str
    unit: str


class Scores(_Strict):
    """A version's scores, metric name → value, as Keras names them (accuracy, loss, mae, …)."""

    test: dict[str, float]
    validation: dict[str, float]


class Training(_Strict):
    """How this version was made, so that anyone can make it again."""

    recipe: str
    hyperparameters: dict
    seed: int
    epochs: int
    data_files: dict[str, str] = Field(description="file name → sha256")
    library_versions: dict[str, str]
    duration_s: float
    trained_at: str
    machine: str
    temperature: float | None = Field(
        None,
        description="temperature scaling: T fitted on the validation run's held-out outputs and "
        "folded into the output layer (its kernel and bias over T: sigmoid(z / T), softmax(z / "
        "T)); None: not calibrated",
    )


class Export(_Strict):
    """How the ONNX graph was made from the Keras model, and the parity check it passed."""

    opset: int
    parity_rows: int = Field(description="test rows run through Keras, SavedModel and ONNX")
    max_abs_diff_onnx: float
    max_abs_diff_saved_model: float
    labels_identical: bool | None = None


class Imported(_Strict):
    """Where a version that `trainer import` published came from: a model made elsewhere, checked
    on rows before it was published (no test set: no metrics, no gate)."""

    file: str = Field(description="the imported file's (or SavedModel folder's) name")
    format: Literal["keras", "saved_model", "onnx"]
    sha256: str = Field(description="of the file; of a folder: of its files' paths and contents")
    checked_rows: int = Field(description="rows the ONNX graph ran on before it was published")
    rows_file: dict[str, str] | None = Field(
        None, description="the rows given (--rows), name → sha256; None: generated from the inputs"
    )
    seed: int | None = Field(None, description="the generated rows' seed")
    library_versions: dict[str, str]
    imported_at: str


class Gate(_Strict):
    """The comparison this version passed (or was forced past) when the trainer published it: its
    test figure against the newest published version's, both scored on the same test rows."""

    metric: str
    higher_is_better: bool
    candidate: float
    previous_version: int | None = Field(description="None: the model's first version")
    previous: float | None
    tolerance: float = Field(description="relative: how much worse than `previous` is accepted")
    passed: bool
    forced: bool = False
    judged_on: dict[str, str] = Field(
        default_factory=dict,
        description="the data files (name → sha256) whose test rows both figures were scored on",
    )
    test_rows: int | None = Field(None, description="how many test rows that was")
    other_data: bool = Field(
        False,
        description="trained on other data than `previous_version`, and published only because "
        "the trainer was told to (--allow-other-data)",
    )

    @property
    def verdict(self) -> str:
        return "passed" if self.passed else ("forced" if self.forced else "refused")

    def describe(self) -> str:
        if self.previous_version is None:
            return f"{self.metric} {self.candidate:.4f}; no earlier version to compare with"
        return (
            f"{self.metric} {self.candidate:.4f} against {self.previous:.4f} of version "
            f"{self.previous_version} on the same test set (tolerance {self.tolerance:.1%})"
            + (", trained on other data" if self.other_data else "")
        )


class ModelConfig(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: int = Field(ge=1)
    description: str = ""
    platform: Literal["onnxruntime_onnx"] = "onnxruntime_onnx"
    task: Literal["binary_classification", "multiclass_classification", "regression"] | None = (
        Field(None, description="None: a model of any other kind, answered as tensors")
    )
    inputs: list[TensorSpec] = Field(min_length=1)
    outputs: list[TensorSpec] = Field(min_length=1)
    labels: list[str] | None = Field(
        None, description="Class names by output index (classification)."
    )
    target: Target | None = Field(None, description="What the output measures (regression).")
    encoding: Encoding | None = Field(
        None, description="How a typed request (texts, named features) becomes the input row"
    )
    metrics: Scores | None = None
    training: Training | None = None
    export: Export | None = None
    gate: Gate | None = Field(None, description="versions published through the trainer's gate")
    imported: Imported | None = Field(None, description="versions published by `trainer import`")
    batching: bool | None = Field(
        None,
        description="whether concurrent requests may be merged along the first dimension; None: "
        "where every input's and output's first dimension is -1 (as Triton's auto-complete)",
    )

    @property
    def batchable(self) -> bool:
        if self.batching is not None:
            return self.batching
        return all(t.shape and t.shape[0] == -1 for t in [*self.inputs, *self.outputs])

    @model_validator(mode="after")
    def _labels_fit_task(self) -> ModelConfig:
        if self.task == "regression":
            if self.target is None or self.labels is not None:
                raise ValueError("a regression model has a target and no labels")
        elif self.task is not None and (self.labels is None or len(self.labels) < 2):
            raise ValueError("a classification model names at least two labels")
        if isinstance(self.encoding, TextEncoding) and self.encoding.form == "sparse":
            if self.inputs != text_inputs(self.encoding):
                expected = [s.model_dump() for s in text_inputs(self.encoding)]
                raise ValueError(f"a sparse text model takes the inputs {expected}")
            if len(self.outputs) != 1:
                raise ValueError("a text model gives one output")
            return self
        if self.encoding is not None and len(self.inputs) != 1:
            raise ValueError("a model with an encoding takes one input")
        if isinstance(self.encoding, TabularEncoding) and self.inputs[0].shape[-1] != len(
            self.encoding.features
        ):
            raise ValueError("the input's last dimension must equal the number of features")
        if (
            isinstance(self.encoding, TextEncoding)
            and self.inputs[0].shape[-1] != self.encoding.dim
        ):
            raise ValueError("the input's last dimension must equal the encoding's dim")
        return self


def text_inputs(encoding: TextEncoding) -> list[TensorSpec]:
    """The inputs of a text model of this encoding (`TextEncoding.form`)."""
    if encoding.form == "dense":
        return [TensorSpec(name="encoded_text", datatype="FP32", shape=[-1, encoding.dim])]
    ids = TensorSpec(name="ids", datatype="INT64", shape=[-1, -1])
    if encoding.weighting == "binary":
        return [ids]
    return [ids, TensorSpec(name="weights", datatype="FP32", shape=[-1, -1])]


def read_config(folder: Path, graph: dict | None = None) -> ModelConfig:
    """The config of one version folder, checked: the files it relies on exist.

    With `graph` (the model's `inputs` and `outputs` as its ONNX graph declares them: the
    service's), a missing or partial config.json is completed, as Triton completes one: the name
    and version from the folder, the tensors from the graph; what the file says is kept (and
    checked against the graph by whoever runs it)."""
    folder = Path(folder)
    path = folder / CONFIG_FILE
    try:
        data = json.loads(path.read_bytes())
    except FileNotFoundError:
        if graph is None:
            raise RepositoryError(f"{path} is missing") from None
        data = {}
    except OSError as error:
        raise RepositoryError(f"{path} cannot be read: {error.strerror}") from None
    except ValueError as error:
        raise RepositoryError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(data, dict):
        raise RepositoryError(f"{path} is not a JSON object")
    if graph is not None:
        data = {"name": folder.parent.name, "version": folder.name, **graph, **data}
    try:
        config = ModelConfig.model_validate(data)
    except ValidationError as error:
        raise RepositoryError(f"{path} is not a valid model config:\n{error}") from None
    if config.name != folder.parent.name or str(config.version) != folder.name:
        raise RepositoryError(
            f"{path} says {config.name}/{config.version} but lives in {folder.parent.name}/{folder.name}"
        )
    needed = [ONNX_FILE]
    if isinstance(config.encoding, TextEncoding):
        needed.append(config.encoding.vocabulary_file)
    for name in needed:
        if not (folder / name).is_file():
            raise RepositoryError(f"{folder / name} is missing (named by {path})")
    return config


def list_versions(root: Path) -> dict[str, list[int]]:
    """Model name → its version numbers, ascending. A folder whose name is not a version
    (`contract.numbers.version`: "01", "²" and "١" are not) is skipped, and logged the first time
    it is seen (the repository is listed again at every poll)."""
    root = Path(root)
    if not root.is_dir():
        raise RepositoryError(f"model repository {root} does not exist")
    listing = {}
    for model in sorted(root.iterdir()):
        if not model.is_dir() or model.name.startswith("."):
            continue
        versions = []
        for folder in model.iterdir():
            if not folder.is_dir():
                continue
            number = read_version(folder.name)
            if number is not None:
                versions.append(number)
            elif folder not in _SKIPPED:
                _SKIPPED.add(folder)
                log.warning("skipped %s: a version folder's name is %s", folder, VERSION_RULE)
        listing[model.name] = sorted(versions)
    return listing


_SKIPPED: set[Path] = set()  # folders that are not versions, logged once each
