"""The command line: exit codes and messages people see, never a traceback; `evaluate` without
TensorFlow."""

import subprocess
import sys
import textwrap

import pytest

from tests.conftest import MODELS
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
        (["train", "imdb", "--tolerance", "2"], "must be at least 0 and below 1"),
        (["train", "imdb", "--test-file", "t.jsonl"], "train needs --train-file"),
        (["train", "all", "--recipe", "sparse"], "a text models' recipe: train imdb or reuters"),
        (["evaluate"], "the following arguments are required: dataset"),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message):
    result = trainer(*args)
    assert result.returncode == EXIT_USAGE
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_help_shows_the_defaults():
    result = trainer("train", "--help")
    assert "(default: best)" in result.stdout
    assert "(default: 0.01)" in result.stdout
    assert "(default: None)" not in result.stdout


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


def test_evaluate_unknown_version_exits_5(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("TRAINER_DATA_DIR", raising=False)
    (tmp_path / "boston").mkdir()
    assert (
        main(["evaluate", "boston", "--models", str(tmp_path), "--version", "3"]) == EXIT_REPOSITORY
    )
    assert "does not exist" in capsys.readouterr().err


# Not in the `serve` extra (rich), or heavy: none of them may be needed to evaluate.
HEAVY = ("tensorflow", "keras", "tf2onnx", "onnx", "matplotlib", "rich")


def imports_after(argv: list[str]) -> subprocess.CompletedProcess:
    """Runs the trainer's `main(argv)` in a fresh interpreter and prints its exit code and which
    of the heavy modules it imported."""
    script = textwrap.dedent(f"""
        import sys
        from trainer.cli import main
        code = main({argv!r})
        print(code, sorted(m for m in {HEAVY!r} + ("onnxruntime",) if m in sys.modules))
    """)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def test_evaluate_runs_on_onnxruntime_and_numpy_only(tmp_path):
    """The committed Boston version scored on a CSV of houses: no TensorFlow, Keras or tf2onnx."""
    houses = tmp_path / "houses.csv"
    columns = "crim,zn,indus,chas,nox,rm,age,dis,rad,tax,ptratio,b,lstat,price"
    houses.write_text(
        f"{columns}\n0.1,10,5,0,0.5,6,50,4,4,300,16,390,8,24\n0.5,0,10,1,0.6,5,90,2,5,400,20,380,20,14\n"
    )
    result = imports_after(
        ["evaluate", "boston", "--models", str(MODELS), "--test-file", str(houses)]
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1] == "0 ['onnxruntime']"
    assert "mae" in result.stdout


def test_a_missing_version_is_reported_before_any_heavy_import(tmp_path):
    (tmp_path / "boston").mkdir()
    result = imports_after(["evaluate", "boston", "--models", str(tmp_path), "--version", "7"])
    assert result.stdout.splitlines()[-1] == f"{EXIT_REPOSITORY} []"
    assert "does not exist" in result.stderr


def test_without_a_data_directory_it_says_which_files_go_where_and_downloads_nothing():
    """No --data-dir, no $TRAINER_DATA_DIR (tests/conftest.py takes it out of the environment):
    one line naming the files and the options, before Keras (which would download) is imported."""
    result = imports_after(["train", "all"])
    assert result.stdout.splitlines()[-1] == f"{EXIT_DATA} []"
    (line,) = result.stderr.strip().splitlines()
    assert line == (
        "trainer: error: no data directory: put the Keras dataset files (imdb: aclImdb.tar.gz "
        "(or imdb.npz), imdb_word_index.json; reuters: reuters.npz, reuters_word_index.json; "
        "boston: boston_housing.npz) in one folder and pass --data-dir FOLDER or set "
        "$TRAINER_DATA_DIR=FOLDER, or add --download to let Keras download them (needs internet)"
    )


def test_own_texts_need_only_the_word_index_and_own_houses_nothing(tmp_path):
    result = trainer("train", "reuters", "--train-file", str(tmp_path / "news.jsonl"))
    assert result.returncode == EXIT_DATA
    assert "(reuters: reuters_word_index.json)" in result.stderr
    assert "Traceback" not in result.stderr
    result = trainer("train", "boston", "--train-file", str(tmp_path / "houses.csv"))
    assert result.returncode == EXIT_DATA
    assert result.stderr.strip() == f"trainer: error: {tmp_path / 'houses.csv'} does not exist"
