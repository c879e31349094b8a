"""`trainer train | evaluate | export`: the command line people retrain with.

Exit codes: 0 done, 1 evaluated metrics differ from the config, 2 bad arguments, 3 missing or corrupt
data, 4 export failed its checks, 5 model repository problem.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from trainer.recipes import DATASETS, RECIPES

EXIT_MISMATCH, EXIT_USAGE, EXIT_DATA, EXIT_EXPORT, EXIT_REPOSITORY = 1, 2, 3, 4, 5
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


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="trainer", description=__doc__.split("\n")[0])
    commands = top.add_subparsers(dest="command", required=True)
    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument(
        "--data-dir",
        help="folder with the Keras dataset files (default: $TRAINER_DATA_DIR; "
        "without either, Keras downloads them)",
    )

    train = commands.add_parser("train", parents=[data_dir], help="train and publish new versions")
    train.add_argument("dataset", choices=[*DATASETS, "all"])
    train.add_argument("--recipe", choices=RECIPES, default="best")
    train.add_argument("--epochs", type=_positive, help="override the recipe's (maximum) epochs")
    train.add_argument("--seed", type=_non_negative, default=0)
    train.add_argument("--out", type=Path, default=Path("models"), help="model repository")
    train.add_argument("--version", type=_positive, help="version to write (default: next free)")
    train.add_argument("--quiet", action="store_true", help="no per-epoch progress")

    for name, text in (
        ("evaluate", "recompute a version's test metrics from its ONNX graph"),
        ("export", "convert a version's SavedModel to ONNX again and check parity"),
    ):
        command = commands.add_parser(name, parents=[data_dir], help=text)
        command.add_argument("dataset", choices=[*DATASETS, "all"])
        command.add_argument("--version", type=_positive, help="default: the newest")
        command.add_argument("--models", type=Path, default=Path("models"), help="model repository")
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # Imported here so that `--help` and argument errors answer at once, without TensorFlow.
    from service.repository import RepositoryError
    from trainer.data import DataError, resolve_data_dir
    from trainer.export import ExportError
    from trainer.publish import PublishError

    try:
        data_dir = resolve_data_dir(args.data_dir)
        return {"train": _train, "evaluate": _evaluate, "export": _export}[args.command](
            args, data_dir
        )
    except DataError as error:
        return _fail(EXIT_DATA, error)
    except ExportError as error:
        return _fail(EXIT_EXPORT, error)
    except (PublishError, RepositoryError) as error:
        return _fail(EXIT_REPOSITORY, error)
    except KeyboardInterrupt:
        return _fail(130, "interrupted; nothing was published for the model in progress")


def _fail(code: int, error: object) -> int:
    print(f"trainer: error: {error}", file=sys.stderr)
    return code


def _train(args, data_dir) -> int:
    from trainer.pipeline import train
    from trainer.recipes import recipe_for

    datasets = DATASETS if args.dataset == "all" else (args.dataset,)
    verbose = 0 if args.quiet else (1 if sys.stdout.isatty() else 2)
    started = time.monotonic()
    for dataset in datasets:
        print(f"== {dataset}: recipe {args.recipe}, seed {args.seed}", flush=True)
        recipe = recipe_for(dataset, args.recipe)
        if args.epochs is not None:
            recipe = recipe.with_epochs(args.epochs)
        trained = train(
            recipe,
            seed=args.seed,
            data_dir=data_dir,
            models_dir=args.out,
            version=args.version,
            verbose=verbose,
        )
        config = trained.config
        print(
            f"== {dataset}: published {trained.folder} in {config.training.duration_s:.0f} s; "
            f"test {_format(config.metrics.test)}; validation {_format(config.metrics.validation)}; "
            f"ONNX parity max |diff| {config.export.max_abs_diff_onnx:.2e}",
            flush=True,
        )
    print(f"== done in {time.monotonic() - started:.0f} s", flush=True)
    return 0


def _evaluate(args, data_dir) -> int:
    from trainer.pipeline import evaluate

    differs = False
    for dataset in DATASETS if args.dataset == "all" else (args.dataset,):
        config, metrics = evaluate(dataset, args.version, data_dir=data_dir, models_dir=args.models)
        recorded = config.metrics.test
        print(f"{config.name}/{config.version} test metrics recomputed from model.onnx:")
        for name, value in sorted(metrics.items()):
            before = recorded.get(name)
            same = before is not None and abs(before - value) <= METRIC_TOLERANCE
            differs |= not same
            shown = "absent" if before is None else f"{before:.6f}"
            print(f"  {name:<10} {value:.6f}   config {shown}   {'ok' if same else 'DIFFERS'}")
    return EXIT_MISMATCH if differs else 0


def _export(args, data_dir) -> int:
    from trainer.pipeline import reexport

    for dataset in DATASETS if args.dataset == "all" else (args.dataset,):
        config = reexport(dataset, args.version, data_dir=data_dir, models_dir=args.models)
        print(
            f"{config.name}/{config.version}: model.onnx re-exported (opset {config.export.opset}); "
            f"parity over {config.export.parity_rows} test rows, "
            f"max |diff| {config.export.max_abs_diff_onnx:.2e}"
        )
    return 0


def _format(metrics: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:.4f}" for k, v in sorted(metrics.items()))


if __name__ == "__main__":
    sys.exit(main())
