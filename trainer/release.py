"""The steps after training that every model shares: export and parity, the test metrics, the gate
against the newest published version, and the new version in the model repository."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from contract.config import CURVES_FILE, Gate, ModelConfig, Scores, Training, read_config
from trainer import data, export, publish
from trainer.curves import plot_curves
from trainer.evaluate import predict_version, score, short_texts, version_metrics
from trainer.provenance import library_versions, machine
from trainer.publish import Candidate
from trainer.report import LOG_FILE, TrainingLog


@dataclass(frozen=True)
class Released:
    folder: Path
    config: ModelConfig
    gate: Gate


def release(
    name: str,
    candidate: Candidate,
    dataset: data.TextDataset | data.TabularDataset,
    *,
    recipe_name: str,
    recipe: object,
    metric: str,
    seed: int,
    models_dir: Path,
    version: int,
    tolerance: float,
    force: bool,
    log: TrainingLog,
    started: float,
    allow_other_data: bool = False,
) -> Released:
    """Exports the candidate into a staging folder and publishes it as `version` if it passes
    parity and the gate; `publish.GateRefusedError` keeps the staging folder for inspection.

    The gate, against the newest published version scored on the same test rows: a candidate
    that predicts them exactly as that version does is not published (`UnchangedError`); one
    trained on other data than that version only with `allow_other_data` (`OtherDataError`); one
    that scores worse by more than `tolerance` only with `force`."""
    serving, fitted = candidate.serving, candidate.fitted
    with publish.staging(models_dir, name) as folder:
        parity, outputs = export.export_model(
            fitted.model, serving.inputs, serving.outputs, candidate.x_test, serving.task, folder
        )
        if candidate.encoder is not None:
            candidate.encoder.save(folder)
        plot_curves(
            fitted,
            metric,
            f"{name} v{version}, recipe {recipe_name}, seed {seed}",
            folder / CURVES_FILE,
        )
        (folder / LOG_FILE).write_text(log.text(), "utf-8")
        config = ModelConfig(
            name=name,
            version=version,
            description=serving.description,
            task=serving.task,
            inputs=serving.inputs,
            outputs=serving.outputs,
            labels=serving.labels,
            target=serving.target,
            encoding=serving.encoding,
            training=Training(
                recipe=recipe_name,
                hyperparameters=asdict(recipe),
                seed=seed,
                epochs=fitted.epochs,
                data_files=dataset.files,
                library_versions=library_versions(),
                duration_s=round(time.monotonic() - started, 1),
                trained_at=datetime.now(UTC).isoformat(timespec="seconds"),
                machine=machine(),
                temperature=fitted.temperature,
            ),
            export=export.export_info(parity),
        )
        short = None
        if isinstance(dataset, data.TextDataset) and serving.task != "regression":
            short = predict_version(folder, config, short_texts(dataset))
        test = version_metrics(serving.task, dataset.y_test, outputs, short)
        validation = {k: float(v) for k, v in fitted.validation.items()}
        config = config.model_copy(update={"metrics": Scores(test=test, validation=validation)})
        previous_version = publish.newest_trained_version(models_dir, name)
        previous = previous_outputs = None
        other_data = False
        if previous_version is not None:
            previous_folder = models_dir / name / str(previous_version)
            previous_config = read_config(previous_folder)
            previous_outputs = predict_version(previous_folder, previous_config, dataset)
            previous = score(serving.task, dataset.y_test, previous_outputs)[metric]
            trained_on = previous_config.training.data_files
            other_data = publish.data_source(dataset.files) != publish.data_source(trained_on)
        passed = publish.gate(
            metric,
            test[metric],
            previous_version,
            previous,
            tolerance,
            force,
            judged_on=dataset.files,
            test_rows=len(dataset.y_test),
            other_data=other_data,
        )
        publish.write_config(folder, config, passed)
        if previous_outputs is not None and np.array_equal(previous_outputs, outputs):
            raise publish.UnchangedError(passed, folder)
        if other_data and not allow_other_data:
            raise publish.OtherDataError(
                passed,
                folder,
                publish.describe_source(dataset.files),
                publish.describe_source(previous_config.training.data_files),
            )
        if not (passed.passed or force):
            raise publish.GateRefusedError(passed, folder)
        target = publish.publish(folder, config, models_dir)
    publish.write_index(models_dir)
    return Released(target, config, passed)
