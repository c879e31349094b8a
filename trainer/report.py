"""What people watch while the trainer runs: one progress bar per model and phase, every epoch's
metrics in the version's `training.log`, and the final table. rich, no TensorFlow."""

from __future__ import annotations

from dataclasses import dataclass

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

LOG_FILE = "training.log"


def progress_bars(console: Console) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("epochs"),
        TimeElapsedColumn(),
        console=console,
    )


class TrainingLog:
    """One model's run: its phases' progress bars (none where `progress` is None) and log lines."""

    def __init__(self, model: str, progress: Progress | None):
        self.model = model
        self.progress = progress
        self.lines: list[str] = []

    def phase(self, title: str, epochs: int) -> Phase:
        self.lines.append(f"== {title}")
        task = None
        if self.progress is not None:
            task = self.progress.add_task(f"{self.model}: {title}", total=epochs)
        return Phase(self, task)

    def note(self, text: str) -> None:
        self.lines.append(f"-- {text}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


@dataclass
class Phase:
    log: TrainingLog
    task: int | None

    def note(self, text: str) -> None:
        self.log.note(text)

    def epoch_done(self, epoch: int, metrics: dict[str, float]) -> None:
        shown = ", ".join(f"{name} {float(value):.4f}" for name, value in sorted(metrics.items()))
        self.log.lines.append(f"epoch {epoch}: {shown}")
        if self.task is not None:
            self.log.progress.update(self.task, advance=1)

    def done(self) -> None:
        """Ends the bar where the phase ended: early stopping may end it before its last epoch."""
        if self.task is not None:
            (task,) = [t for t in self.log.progress.tasks if t.id == self.task]
            if task.completed < task.total:
                self.log.progress.update(
                    self.task,
                    total=task.completed,
                    description=f"{task.description}, stopped at {task.completed:.0f} of {task.total:.0f}",
                )


@dataclass(frozen=True)
class Row:
    """One model's line of the final table."""

    model: str
    version: str  # "3", or "refused" when the gate kept it back
    metric: str
    value: float
    target: str  # e.g. "≥ 0.900"
    previous: str  # the serving version's figure on the same test set, e.g. "v2 0.9072"
    outcome: str  # published / forced / refused
    seconds: float


def summary(rows: list[Row]) -> Table:
    table = Table(title="trainer: results on the test set")
    for column in ("model", "version", "metric", "target", "previous version", "gate", "time"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row.model,
            row.version,
            f"{row.metric} {row.value:.4f}",
            row.target,
            row.previous,
            row.outcome,
            f"{row.seconds:.0f} s",
        )
    return table
