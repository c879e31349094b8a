"""The command line: exit codes and messages people see, never a traceback."""

import subprocess
import sys

import pytest

from trainer.cli import EXIT_DATA, EXIT_REPOSITORY, EXIT_USAGE, main


def trainer(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "trainer", *args], capture_output=True, text=True, timeout=120
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "mnist"], "invalid choice: 'mnist'"),
        (["train", "imdb", "--recipe", "fast"], "invalid choice: 'fast'"),
        (["train", "imdb", "--epochs", "0"], "must be a positive integer"),
        (["train", "imdb", "--seed", "-1"], "must be a non-negative integer"),
        (["evaluate"], "the following arguments are required: dataset"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = trainer(*args)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_data_dir_exits_3_naming_it(tmp_path):
    result = trainer("train", "boston", "--data-dir", str(tmp_path / "nowhere"))
    assert result.returncode == EXIT_DATA
    assert (
        f"data directory {tmp_path / 'nowhere'} (from --data-dir) does not exist" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_missing_data_file_exits_3_naming_it(tmp_path):
    result = trainer("train", "boston", "--data-dir", str(tmp_path), "--out", str(tmp_path / "m"))
    assert result.returncode == EXIT_DATA
    assert "boston_housing.npz is missing" in result.stderr
    assert "Traceback" not in result.stderr


def test_train_then_evaluate_then_refuse_to_overwrite(synthetic_data_dir, tmp_path, capsys):
    repository = str(tmp_path / "models")
    data = ["--data-dir", str(synthetic_data_dir)]
    train = ["train", "boston", "--recipe", "book", "--epochs", "2", "--quiet", "--out", repository]
    assert main([*train, *data]) == 0
    assert "published" in capsys.readouterr().out
    assert main(["evaluate", "boston", "--models", repository, *data]) == 0
    assert capsys.readouterr().out.count(" ok") == 2
    assert main([*train, "--version", "1", *data]) == EXIT_REPOSITORY
    assert "versions are never overwritten" in capsys.readouterr().err


def test_evaluate_unknown_version_exits_5(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAINER_DATA_DIR", raising=False)
    (tmp_path / "boston").mkdir()
    assert (
        main(["evaluate", "boston", "--models", str(tmp_path), "--version", "3"]) == EXIT_REPOSITORY
    )
    assert "does not exist" in capsys.readouterr().err
