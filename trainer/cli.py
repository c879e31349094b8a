"""`trainer train | evaluate | export | import`: the command line people retrain with.

`import` publishes a model made elsewhere (a Keras file, a SavedModel, an ONNX graph) as a version.

Exit codes: 0 done, 1 evaluated metrics differ from the config, 2 bad arguments, 3 missing or corrupt
data, 4 export failed its checks, 5 model repository problem, 6 the gate kept a new version back.

Only `train`, `export` and `import` of a Keras file or a SavedModel import TensorFlow (`import` of
an ONNX graph does not); arguments, data files and versions are checked first.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import os
import sys
import time
from pathlib import Path

from contract.config import RepositoryError
from trainer import data, imported, publish
from trainer.data import DataError

DATASETS = ("imdb", "reuters", "boston")
RECIPES = ("book", "best", "sparse")
TEXT_RECIPES = ("sparse",)  # recipes of the text models only
EXIT_MISMATCH, EXIT_USAGE, EXIT_DATA, EXIT_EXPORT, EXIT_REPOSITORY, EXIT_GATE = 1, 2, 3, 4, 5, 6
METRIC_TOLERANCE = 1e-4  # evaluate vs config: room for another onnxruntime build's rounding


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 0 and below 1, got {text}")
    return value


def _model_name(text: str) -> str:
    if not imported.NAME_RULE.match(text):
        raise argparse.ArgumentTypeError(
            f"must match {imported.NAME_RULE.pattern} (lower case: a folder and a URL part), "
            f"got {text!r}"
        )
    return text


def _labels(text: str) -> list[str]:
    labels = [label.strip() for label in text.split(",")]
    if not all(labels) or len(set(labels)) != len(labels):
        raise argparse.ArgumentTypeError(f"must name each label once, none empty, got {text!r}")
    return labels


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """--help shows every option's default, except where there is none."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="trainer", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    sources = argparse.ArgumentParser(add_help=False)
    sources.add_argument(
        "--data-dir",
        help="folder with the Keras dataset files (default: $TRAINER_DATA_DIR): imdb: "
        "aclImdb.tar.gz or imdb.npz, and imdb_word_index.json; reuters: reuters.npz and "
        "reuters_word_index.json; boston: boston_housing.npz. Text models' own files use its "
        "word index",
    )
    sources.add_argument(
        "--download",
        action="store_true",
        help="without a data directory, let Keras download the files it needs (internet)",
    )
    own = sources.add_argument_group(
        "your own data (one model at a time)",
        "text models: JSON Lines (.jsonl) or CSV (.csv) with the fields text,label, labels by name; "
        "boston: CSV with the 13 named columns and price",
    )
    own.add_argument("--train-file", type=Path, help="training rows instead of the book's dataset")
    own.add_argument("--test-file", type=Path, help="test rows (default: a held-out share)")
    own.add_argument(
        "--test-share",
        type=_fraction,
        default=data.TEST_SPLIT,
        help="without --test-file: the training file's last share after a seeded (113) shuffle",
    )
    formatter = _Help

    train = commands.add_parser(
        "train", parents=[sources], formatter_class=formatter, help="train and publish new versions"
    )
    train.add_argument("dataset", choices=[*DATASETS, "all"], help="the model to train")
    train.add_argument("--recipe", choices=RECIPES, default="best", help="hyper-parameters")
    train.add_argument("--epochs", type=_positive, help="override the recipe's (maximum) epochs")
    train.add_argument("--seed", type=_non_negative, default=0, help="same seed, same model")
    train.add_argument("--out", type=Path, default=Path("models"), help="model repository")
    train.add_argument("--version", type=_positive, help="version to write (default: next free)")
    train.add_argument(
        "--tolerance",
        type=_fraction,
        default=publish.DEFAULT_TOLERANCE,
        help="the gate: how much worse (relative) than the newest version a new one may score",
    )
    train.add_argument(
        "--force", action="store_true", help="publish even if the gate refuses (recorded)"
    )
    train.add_argument(
        "--allow-other-data",
        action="store_true",
        help="publish a model trained on other data than the version it would replace, judged "
        "on its own data's test rows only (recorded)",
    )
    train.add_argument("--quiet", action="store_true", help="no progress bars")

    for name, text in (
        ("evaluate", "recompute a version's test metrics from its ONNX graph (no TensorFlow)"),
        ("export", "convert a version's SavedModel to ONNX again and check parity"),
    ):
        command = commands.add_parser(name, parents=[sources], formatter_class=formatter, help=text)
        command.add_argument("dataset", choices=[*DATASETS, "all"], help="the model")
        command.add_argument("--version", type=_positive, help="default: the newest")
        command.add_argument("--models", type=Path, default=Path("models"), help="model repository")

    bring = commands.add_parser(
        "import",
        formatter_class=formatter,
        help="publish a model made elsewhere (.keras, SavedModel folder, .onnx) as a new version",
        description="Publishes a model made elsewhere as a new version: a Keras file or a "
        "SavedModel exported to a SavedModel and ONNX and checked for parity as trained models "
        "are, an ONNX graph as it is once onnxruntime ran it. No test set: no metrics, no gate.",
    )
    bring.add_argument(
        "source",
        type=Path,
        metavar="SOURCE",
        help="a Keras model file (.keras), a SavedModel folder or a .onnx file",
    )
    bring.add_argument(
        "--name", required=True, type=_model_name, help="the model's name in the repository"
    )
    bring.add_argument("--version", type=_positive, help="version to write (default: next free)")
    bring.add_argument("--models-dir", type=Path, default=Path("models"), help="model repository")
    bring.add_argument(
        "--rows",
        type=Path,
        metavar="ROWS.npz",
        help="an .npz of arrays named by the model's inputs, to check it on (default: rows made "
        "up from the inputs' shapes and datatypes)",
    )
    bring.add_argument("--description", help="the config's description")
    bring.add_argument(
        "--labels",
        type=_labels,
        metavar="a,b,...",
        help="class names by output index, comma-separated: a,b,c",
    )
    bring.add_argument(
        "--seed", type=_non_negative, default=0, help="of the made-up rows (without --rows)"
    )
    return top


def main(argv: list[str] | None = None) -> int:
    top = parser()
    args = top.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow's start-up noise
    if args.command == "import":
        return _run(_import, args)
    own = None
    if args.command == "train" and args.recipe in TEXT_RECIPES and "boston" in _names(args):
        top.error(f"--recipe {args.recipe} is a text models' recipe: train imdb or reuters")
    if args.train_file or args.test_file:
        if args.dataset == "all":
            top.error("--train-file/--test-file train or evaluate one model, not all")
        if args.command == "train" and args.train_file is None:
            top.error("train needs --train-file to go with --test-file")
        own = data.OwnFiles(args.train_file, args.test_file, args.test_share)

    def run() -> int:
        data_dir = data.resolve_data_dir(args.data_dir)
        command = {"train": _train, "evaluate": _evaluate, "export": _export}[args.command]
        return command(args, data_dir, own)

    return _run(run)


def _run(command, *args) -> int:
    """The command's exit code; an error it raises as the exit code and message of its kind."""
    try:
        return command(*args)
    except imported.UsageError as error:
        return _fail(EXIT_USAGE, error)
    except DataError as error:
        return _fail(EXIT_DATA, error)
    except publish.ExportError as error:
        return _fail(EXIT_EXPORT, error)
    except (publish.PublishError, RepositoryError) as error:
        return _fail(EXIT_REPOSITORY, error)
    except KeyboardInterrupt:
        return _fail(130, "interrupted; nothing was published for the model in progress")


def _fail(code: int, error: object) -> int:
    print(f"trainer: error: {error}", file=sys.stderr)
    return code


def _names(args) -> tuple[str, ...]:
    return DATASETS if args.dataset == "all" else (args.dataset,)


def _train(args, data_dir, own) -> int:
    data.check_sources(_names(args), data_dir, own, args.download)  # every model's, first
    from rich.console import Console

    from trainer.report import Row, TrainingLog, progress_bars, summary

    console = Console()
    rows, refused = [], False
    for name in _names(args):
        started = time.monotonic()
        version = args.version or publish.next_version(args.out, name)
        publish.check_free(args.out, name, version)
        dataset = data.load(name, data_dir, own)  # every row checked before anything trains
        data.check_trainable(dataset, own)  # and enough of them
        module = importlib.import_module(f"trainer.{name}")  # TensorFlow, from here on
        from trainer.release import release

        recipe = module.RECIPES[args.recipe]
        if args.epochs is not None:
            training = dataclasses.replace(recipe.training, epochs=args.epochs)
            recipe = dataclasses.replace(recipe, training=training)
        progress = None if args.quiet else progress_bars(console)
        log = TrainingLog(name, progress)
        log.note(f"{name} v{version}: recipe {args.recipe}, seed {args.seed}")
        try:
            if progress is not None:
                progress.start()
            candidate = module.train(recipe, dataset, args.seed, log)
            released = release(
                name,
                candidate,
                dataset,
                recipe_name=args.recipe,
                recipe=recipe,
                metric=module.METRIC,
                seed=args.seed,
                models_dir=args.out,
                version=version,
                tolerance=args.tolerance,
                force=args.force,
                log=log,
                started=started,
                allow_other_data=args.allow_other_data,
            )
            gate, shown_version, verdict = released.gate, str(version), released.gate.verdict
            outcome, style = f"{name}: published {released.folder} ({gate.describe()})", None
        except publish.GateRefusedError as error:
            gate, shown_version, verdict, refused = error.gate, "—", error.verdict, True
            outcome, style = f"{name}: {error}", "red"
        finally:
            if progress is not None:
                progress.stop()
        console.print(outcome, style=style, markup=False)
        better = "≤" if module.METRIC == "mae" else "≥"
        rows.append(
            Row(
                model=name,
                version=shown_version,
                metric=module.METRIC,
                value=gate.candidate,
                target=f"{better} {target}"
                if (target := module.TARGETS.get(args.recipe)) and own is None
                else "—",
                previous="—"
                if gate.previous_version is None
                else f"v{gate.previous_version} {gate.previous:.4f}",
                outcome=verdict,
                seconds=time.monotonic() - started,
            )
        )
    console.print(summary(rows))
    return EXIT_GATE if refused else 0


def _evaluate(args, data_dir, own) -> int:
    folders = {
        name: publish.version_folder(
            args.models, name, args.version or publish.newest_trained_version(args.models, name)
        )
        for name in _names(args)
    }
    data.check_sources(_names(args), data_dir, own, args.download)
    from contract.config import read_config
    from trainer.evaluate import score_version

    differs = False
    for name, folder in folders.items():
        config = read_config(folder)
        if config.training is None:
            print(f"{config.name}/{config.version} was imported, not trained: no test metrics")
            continue
        dataset = data.load(name, data_dir, own, test_only=True)
        metrics = score_version(folder, config, dataset)
        # The recorded metrics are comparable where the data files are the ones it was tested on.
        comparable = dataset.files.items() <= config.training.data_files.items()
        print(f"{config.name}/{config.version} test metrics recomputed from model.onnx:")
        for metric, value in sorted(metrics.items()):
            before = config.metrics.test.get(metric)
            same = before is not None and abs(before - value) <= METRIC_TOLERANCE
            differs |= comparable and not same
            shown = "absent" if before is None else f"{before:.6f}"
            verdict = ("ok" if same else "DIFFERS") if comparable else "(recorded on other data)"
            print(f"  {metric:<10} {value:.6f}   config {shown}   {verdict}")
    return EXIT_MISMATCH if differs else 0


def _export(args, data_dir, own) -> int:
    for name in _names(args):
        publish.version_folder(args.models, name, args.version)
    data.check_sources(_names(args), data_dir, own, args.download)
    from trainer.export import reexport

    for name in _names(args):
        config = reexport(name, args.version, data_dir=data_dir, models_dir=args.models, own=own)
        print(
            f"{config.name}/{config.version}: model.onnx re-exported (opset {config.export.opset}); "
            f"parity over {config.export.parity_rows} test rows, "
            f"max |diff| {config.export.max_abs_diff_onnx:.2e}"
        )
    return 0


def _import(args) -> int:
    result = imported.import_model(
        args.source,
        name=args.name,
        version=args.version,
        models_dir=args.models_dir,
        rows_file=args.rows,
        description=args.description,
        labels=args.labels,
        seed=args.seed,
    )
    config, record = result.config, result.config.imported
    print(f"{config.name}/{config.version}: published {result.folder} from {args.source}")
    for kind, specs in (("inputs", config.inputs), ("outputs", config.outputs)):
        shown = ", ".join(f"{s.name} {s.datatype} {s.shape}" for s in specs)
        print(f"  {kind:<8} {shown}")
    rows = (
        f"{record.checked_rows} rows of {args.rows}"
        if args.rows
        else f"{record.checked_rows} made-up rows (seed {args.seed})"
    )
    if config.export is None:
        print(f"  model.onnx as given: onnxruntime loaded it and ran it on {rows}")
    else:
        made = "the Keras model" if result.format == "keras" else "the SavedModel"
        print(
            f"  exported as trained models are (opset {config.export.opset}): {made}, "
            f"saved_model/ and model.onnx agree on {rows}, max |diff| "
            f"{max(config.export.max_abs_diff_onnx, config.export.max_abs_diff_saved_model):.2e}"
        )
    print(
        "  no metric comparison: an imported model has no test set, so no gate scored it "
        "against earlier versions"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
