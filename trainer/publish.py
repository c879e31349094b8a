"""The model repository's side of training: the gate a new version must pass, and writing it as a
new version, never over an existing one, with the repository's README regenerated. No TensorFlow."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contract.config import (
    CURVES_FILE,
    Gate,
    ModelConfig,
    RepositoryError,
    TabularEncoding,
    Target,
    TensorSpec,
    list_versions,
    read_config,
)
from contract.text import TextEncoder, TextEncoding
from trainer.data import SHA256
from trainer.sparse import Inputs

if TYPE_CHECKING:  # only named here: the gate and evaluate must not import TensorFlow
    from trainer.fit import Fitted

DEFAULT_TOLERANCE = 0.01  # a new version may score at most 1% (relative) worse than the serving one


class PublishError(Exception):
    pass


class ExportError(Exception):
    """The exported graphs disagree with the model or its config; nothing is published."""


@dataclass(frozen=True)
class Serving:
    """What the service needs to know about a model, besides its graph: the config's description."""

    task: str
    description: str
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    encoding: TextEncoding | TabularEncoding
    labels: list[str] | None = None
    target: Target | None = None


@dataclass
class Candidate:
    """What a dataset module's `train` hands to the shared export and publish steps."""

    fitted: Fitted
    x_test: Inputs  # the test rows, encoded as the model takes them
    encoder: TextEncoder | None  # text models: saved as the version's vocabulary
    serving: Serving


class GateRefusedError(PublishError):
    """The gate kept a new version back; its staging folder stays for inspection."""

    verdict = "refused"

    def __init__(self, gate: Gate, kept: Path, message: str | None = None):
        super().__init__(
            message
            or f"not published: {gate.describe()} is worse by more than the tolerance; the "
            f"trained model is kept in {kept} for inspection; --force publishes it anyway"
        )
        self.gate, self.kept = gate, kept


class UnchangedError(GateRefusedError):
    """The candidate answers the test rows exactly as the newest version does: nothing new to
    serve (its staging folder is removed)."""

    verdict = "unchanged"

    def __init__(self, gate: Gate, kept: Path):
        super().__init__(
            gate,
            kept,
            f"not published: its predictions on the {gate.test_rows} test rows equal version "
            f"{gate.previous_version}'s exactly (the same data, recipe and seed make the same "
            "model); nothing new to serve",
        )


class OtherDataError(GateRefusedError):
    """Trained on other data than the version it would replace, without --allow-other-data."""

    verdict = "other data"

    def __init__(self, gate: Gate, kept: Path, trained_on: str, previous_trained_on: str):
        super().__init__(
            gate,
            kept,
            f"not published: trained on {trained_on}, version {gate.previous_version} on "
            f"{previous_trained_on}, and judged only on the test rows of {trained_on} "
            f"({gate.describe()}); the trained model is kept in {kept} for inspection; "
            "--allow-other-data publishes it",
        )


BOOK_DATA = "the book's dataset"


def data_source(files: dict[str, str]) -> frozenset[str]:
    """What a version was trained on, as the gate compares versions: the book's dataset where all
    its files are the book's (known by their sha256, wherever they were read from: imdb.npz and
    aclImdb.tar.gz are the same reviews), else the sha256 of the user's own files."""
    own = frozenset(sha for name, sha in files.items() if SHA256.get(Path(name).name) != sha)
    return own or frozenset({BOOK_DATA})


def describe_source(files: dict[str, str]) -> str:
    own = [Path(name).name for name, sha in files.items() if SHA256.get(Path(name).name) != sha]
    return ", ".join(own) if own else BOOK_DATA


def gate(
    metric: str,
    candidate: float,
    previous_version: int | None,
    previous: float | None,
    tolerance: float,
    force: bool,
    *,
    judged_on: dict[str, str] | None = None,
    test_rows: int | None = None,
    other_data: bool = False,
) -> Gate:
    higher_is_better = metric != "mae"
    passed = previous is None or (
        candidate >= previous * (1 - tolerance)
        if higher_is_better
        else candidate <= previous * (1 + tolerance)
    )
    return Gate(
        metric=metric,
        higher_is_better=higher_is_better,
        candidate=candidate,
        previous_version=previous_version,
        previous=previous,
        tolerance=tolerance,
        passed=passed,
        forced=force,
        judged_on=dict(judged_on or {}),
        test_rows=test_rows,
        other_data=other_data,
    )


def newest_version(models_dir: Path, name: str) -> int | None:
    if not models_dir.is_dir():
        return None
    return max(list_versions(models_dir).get(name, []), default=None)


def newest_trained_version(models_dir: Path, name: str) -> int | None:
    """The newest version the trainer trained (its config has a training record): what the gate
    compares a new one with. An imported version has no test figure of the book's data."""
    if not models_dir.is_dir():
        return None
    for version in sorted(list_versions(models_dir).get(name, []), reverse=True):
        try:
            if read_config(models_dir / name / str(version)).training is not None:
                return version
        except RepositoryError:
            continue  # a bare or broken folder: not the trainer's
    return None


def next_version(models_dir: Path, name: str) -> int:
    return (newest_version(models_dir, name) or 0) + 1


def version_folder(models_dir: Path, name: str, version: int | None) -> Path:
    """A version's folder; the newest version where none is given."""
    version = version or newest_version(models_dir, name)
    if version is None:
        raise PublishError(f"{models_dir / name} has no versions")
    folder = models_dir / name / str(version)
    if not folder.is_dir():
        raise PublishError(f"{folder} does not exist")
    return folder


def check_free(models_dir: Path, name: str, version: int) -> None:
    if (models_dir / name / str(version)).exists():
        raise PublishError(
            f"{models_dir / name / str(version)} exists; versions are never overwritten: "
            "choose another --version or leave it out to get the next one"
        )


@contextmanager
def staging(models_dir: Path, name: str) -> Iterator[Path]:
    """A scratch folder beside the model's versions. `publish` moves it into place; a version the
    gate refused stays for inspection (but one equal to the newest); anything else that stops the
    run removes it."""
    parent = models_dir / name
    parent.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix=".staging-", dir=parent))
    try:
        yield folder
    except UnchangedError:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    except GateRefusedError:
        raise
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise


def write_config(folder: Path, config: ModelConfig, passed: Gate | None) -> None:
    """The version's config, the gate's comparison in it (the service shows it in metadata); an
    imported version has none."""
    config = config.model_copy(update={"gate": passed})
    (folder / "config.json").write_text(config.model_dump_json(indent=2) + "\n", "utf-8")


def publish(folder: Path, config: ModelConfig, models_dir: Path) -> Path:
    """Moves the staged folder (config written) into place in one rename, so that a reader never
    sees half a version."""
    check_free(models_dir, config.name, config.version)
    target = models_dir / config.name / str(config.version)
    readable_by_all(folder)
    os.rename(folder, target)
    read_config(target)  # what was written is what the service will read
    return target


def readable_by_all(folder: Path) -> None:
    """Folders 0755 (mkdtemp made the staged one 0700), files 0644, whatever the umask: a service running as another user (the
    images' uid 10001, a Kubernetes pod) reads what a trainer published into a shared volume."""
    folder.chmod(0o755)
    for root, folders, files in os.walk(folder):
        for name in folders:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            os.chmod(os.path.join(root, name), 0o644)


def write_index(models_dir: Path) -> Path:
    """models/README.md: every model and version with its metrics, generated from the configs."""
    lines = [
        "# Model repository",
        "",
        "Generated by `trainer` from each version's `config.json`; do not edit by hand.",
        "Layout: `<name>/<version>/` with `model.onnx`, `saved_model/`, `config.json`, learning curves "
        f"in `{CURVES_FILE}`, and `vocabulary.json` for text models. Test metrics are recomputed from "
        "the ONNX graph by `trainer evaluate NAME --version V`. Versions published by `trainer "
        "import` (models made elsewhere) have no training record nor test metrics.",
        "",
        "| model | version | recipe | seed | test | validation | epochs | training time | machine |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, versions in list_versions(models_dir).items():
        for version in versions:
            config = read_config(models_dir / name / str(version))
            training = config.training
            if training is None:
                made = config.imported.file.replace("|", "\\|") if config.imported else "elsewhere"
                lines.append(f"| {name} | {version} | imported: {made} | — | — | — | — | — | — |")
                continue
            lines.append(
                f"| {name} | {version} | {training.recipe} | {training.seed} | "
                f"{_metrics(config.metrics.test)} | {_metrics(config.metrics.validation)} | "
                f"{training.epochs} | {training.duration_s:.0f} s | {training.machine} |"
            )
    lines.append("")
    path = models_dir / "README.md"
    path.write_text("\n".join(lines), "utf-8")
    return path


def _metrics(metrics: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.4f}" for name, value in sorted(metrics.items()))
