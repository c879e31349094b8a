"""Training and evaluating on the user's own files: JSON Lines or CSV of text,label for the text
models, CSV of the 13 named columns and the price for Boston; bad files stop before training."""

import csv
import dataclasses
import json
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from contract.catalog import BOSTON_FEATURES
from contract.config import read_config
from trainer import data, imdb
from trainer.cli import EXIT_DATA, EXIT_USAGE, main

COLUMNS = [*data.BOSTON_COLUMNS, "price"]


@pytest.fixture
def reviews_jsonl(synthetic_data_dir, tmp_path):
    path = tmp_path / "reviews.jsonl"
    reviews = data.read_reviews(synthetic_data_dir / "aclImdb.tar.gz")["train"]
    with open(path, "w") as stream:
        for text, label in reviews:
            stream.write(
                json.dumps({"text": text, "label": ["negative", "positive"][label]}) + "\n"
            )
    return path


def write_houses(path, x, y):
    with open(path, "w", newline="") as stream:
        writer = csv.writer(stream)
        writer.writerow(COLUMNS)
        writer.writerows([*row, price] for row, price in zip(x.tolist(), y.tolist(), strict=True))
    return path


@pytest.fixture
def houses_csv(synthetic_data_dir, tmp_path):
    with np.load(synthetic_data_dir / "boston_housing.npz") as archive:
        x, y = archive["x"], archive["y"]
    # Into the range each column's definition allows (the synthetic houses ignore it).
    x = np.clip(
        x, [f.minimum or 0 for f in BOSTON_FEATURES], [f.maximum or 1e4 for f in BOSTON_FEATURES]
    )
    return write_houses(tmp_path / "train.csv", x[:90], y[:90]), write_houses(
        tmp_path / "test.csv", x[90:], y[90:]
    )


@pytest.mark.usefixtures("tiny_recipes")
def test_a_text_model_trains_and_evaluates_on_your_jsonl(
    synthetic_data_dir, reviews_jsonl, tmp_path, capsys
):
    common = ["--data-dir", str(synthetic_data_dir), "--train-file", str(reviews_jsonl)]
    models = tmp_path / "models"
    assert (
        main(["train", "imdb", "--recipe", "book", "--quiet", "--out", str(models), *common]) == 0
    )
    config = read_config(models / "imdb/1")
    assert config.training.data_files == {
        "imdb_word_index.json": data.sha256_of(synthetic_data_dir / "imdb_word_index.json"),
        str(reviews_jsonl): data.sha256_of(reviews_jsonl),
    }
    assert config.export.parity_rows == 12  # the last 20% of the 60 reviews
    capsys.readouterr()
    assert main(["evaluate", "imdb", "--models", str(models), *common]) == 0
    # accuracy, loss and the calibration figures (ece, mean top probability, and on short texts)
    assert capsys.readouterr().out.count(" ok") == 6


@pytest.mark.usefixtures("tiny_recipes")
def test_boston_trains_on_your_csv_and_tests_on_your_test_file(houses_csv, tmp_path, capsys):
    train_csv, test_csv = houses_csv
    models = tmp_path / "models"
    own = ["--train-file", str(train_csv), "--test-file", str(test_csv)]
    assert main(["train", "boston", "--recipe", "book", "--quiet", "--out", str(models), *own]) == 0
    config = read_config(models / "boston/1")
    assert set(config.training.data_files) == {str(train_csv), str(test_csv)}
    assert config.export.parity_rows == 30
    capsys.readouterr()
    assert main(["evaluate", "boston", "--models", str(models), "--test-file", str(test_csv)]) == 0
    assert capsys.readouterr().out.count(" ok") == 2


def test_the_held_out_share_is_the_keras_split_of_the_file(houses_csv):
    train_csv, _ = houses_csv
    own = data.OwnFiles(train=train_csv, test_share=0.2)
    first, second = data.load("boston", None, own), data.load("boston", None, own)
    assert (len(first.x_train), len(first.x_test)) == (72, 18)
    assert np.array_equal(first.x_test, second.x_test)
    rows = np.loadtxt(train_csv, delimiter=",", skiprows=1, dtype=np.float32)
    order = np.arange(90)
    np.random.RandomState(113).shuffle(order)
    assert np.array_equal(first.y_test, rows[order[72:], -1])


BAD_FILES = [
    (
        "reviews.jsonl",
        '{"text": "good", "label": "positive"}\n\n{"text": "meh", "label": "happy"}\n',
        r"reviews\.jsonl, line 3, field 'label': 'happy' is not one of the model's labels "
        r"\(negative, positive\)",
    ),
    ("reviews.jsonl", '{"text": "good", "label": "positive"}\n{"text": "x"\n', "line 2: not JSON"),
    ("reviews.csv", "text,label\ngood,positive\n,negative\n", "line 3, field 'text': missing"),
    (
        "reviews.csv",
        "review,label\ngood,positive\n",
        r"line 1: the header lacks the columns \['text'\]",
    ),
]


@pytest.mark.parametrize(("file_name", "content", "message"), BAD_FILES)
def test_a_bad_text_file_names_file_line_and_field(
    synthetic_data_dir, tmp_path, capsys, file_name, content, message
):
    path = tmp_path / file_name
    path.write_text(content)
    models = tmp_path / "models"
    options = ["--data-dir", str(synthetic_data_dir), "--train-file", str(path)]
    assert main(["train", "imdb", "--out", str(models), *options]) == EXIT_DATA
    assert re.search(message, capsys.readouterr().err)
    assert not models.exists()  # stopped before anything trained


def house(**changes):
    values = dict.fromkeys(COLUMNS, "1")
    values.update(changes)
    return values


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (house(rm="many"), r"houses\.csv, line 3, field 'rm': 'many' is not a number"),
        (house(zn="150"), r"line 3, field 'zn': 150\.0 is outside \[0\.0, 100\.0\]"),
        (house(price=""), r"line 3, field 'price': missing or empty"),
    ],
)
def test_a_bad_houses_file_names_file_line_and_field(tmp_path, record, message):
    path = tmp_path / "houses.csv"
    with open(path, "w", newline="") as stream:
        writer = csv.DictWriter(stream, COLUMNS)
        writer.writeheader()
        writer.writerows([house(), record])
    with pytest.raises(data.DataError, match=message):
        data.load("boston", None, data.OwnFiles(train=path))


def test_own_files_are_for_one_model(tmp_path, capsys):
    path = tmp_path / "houses.csv"
    with pytest.raises(SystemExit) as exit_:
        main(["train", "all", "--train-file", str(path)])
    assert exit_.value.code == EXIT_USAGE
    assert "one model, not all" in capsys.readouterr().err


def trainer_with_files_of(data_dir, argv: list[str]):
    """`main(argv)` in a fresh interpreter that accepts the synthetic files' checksums (as
    `synthetic_data_dir` does in this one): its exit code, stderr, and whether TensorFlow or
    Keras was imported."""
    checksums = {path.name: data.sha256_of(path) for path in data_dir.iterdir()}
    script = textwrap.dedent(f"""
        import sys
        from trainer import data
        from trainer.cli import main
        data.SHA256.update({checksums!r})
        code = main({argv!r})
        print(code, sorted(m for m in ("tensorflow", "keras") if m in sys.modules))
    """)
    return subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )


def write_reviews(path, labels):
    words = {"positive": "a wonderful moving film", "negative": "a dull awful film"}
    path.write_text(
        "".join(json.dumps({"text": words[label], "label": label}) + "\n" for label in labels)
    )
    return path


@pytest.mark.parametrize(
    ("train_labels", "message"),
    [
        (
            ["positive"] * 30 + ["negative"] * 4,
            "few.jsonl: too few training rows of 1 label(s) ('negative' 4) of 34; each label "
            "needs at least 10: add rows or leave the label out",
        ),
        (
            ["positive"] * 30,
            "few.jsonl: the training rows have 1 label(s) (positive); a classifier needs at "
            "least 2",
        ),
    ],
)
def test_too_few_rows_of_a_label_stop_in_one_line_before_tensorflow(
    synthetic_files, tmp_path, train_labels, message
):
    train = write_reviews(tmp_path / "few.jsonl", train_labels)
    test = write_reviews(tmp_path / "test.jsonl", ["positive", "negative"] * 5)
    options = ["--data-dir", str(synthetic_files), "--out", str(tmp_path / "models")]
    options += ["--train-file", str(train), "--test-file", str(test)]
    result = trainer_with_files_of(synthetic_files, ["train", "imdb", *options])
    assert result.stdout.splitlines()[-1] == f"{EXIT_DATA} []", result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line == f"trainer: error: {tmp_path}/{message}"
    assert not (tmp_path / "models").exists()


def test_too_few_houses_or_test_rows_exit_3_in_one_line(houses_csv, tmp_path):
    train_csv, _ = houses_csv
    lines = train_csv.read_text().splitlines()
    few = tmp_path / "few.csv"
    few.write_text("\n".join(lines[:13]) + "\n")  # 12 houses: 9 to train on, 3 to test
    tiny_test = tmp_path / "tiny-test.csv"
    tiny_test.write_text("\n".join(lines[:3]) + "\n")
    for options, message in (
        (["--train-file", str(few)], f"{few}: 9 training rows, fewer than the 20 Boston needs"),
        (
            ["--train-file", str(train_csv), "--test-file", str(tiny_test)],
            f"{tiny_test}: 2 test rows, fewer than the 5 needed to judge a model",
        ),
    ):
        command = [sys.executable, "-m", "trainer", "train", "boston", "--out", str(tmp_path / "m")]
        result = subprocess.run(
            [*command, *options],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == EXIT_DATA
        (line,) = result.stderr.strip().splitlines()
        assert line.startswith(f"trainer: error: {message}"), line
    assert not (tmp_path / "m").exists()


def test_hold_outs_scale_with_small_files_and_keep_the_book_s():
    assert data.hold_out_size(5_000, 240) == 96  # 300 own reviews, 20% of them for the test
    assert data.hold_out_size(10_000, 25_000) == 10_000  # the book's IMDB split
    assert data.hold_out_size(5_000, 25_000) == 5_000
    assert data.hold_out_size(1_000, 8_982) == 1_000  # Reuters
    assert data.hold_out_size(20, 2) == 1


@pytest.mark.usefixtures("tiny_recipes")
def test_a_recipe_holding_out_more_rows_than_a_small_file_has_still_trains(
    synthetic_data_dir, reviews_jsonl, tmp_path, monkeypatch
):
    """The best IMDB recipe holds out 5,000 reviews: on the 48 training rows of a small file it
    holds out 40% of them (before: a TensorFlow traceback, 'Dimension -4680 must be >= 0')."""
    recipe = imdb.RECIPES["best"]
    training = dataclasses.replace(recipe.training, validation_size=5_000)
    monkeypatch.setitem(imdb.RECIPES, "best", dataclasses.replace(recipe, training=training))
    models = tmp_path / "models"
    options = ["--data-dir", str(synthetic_data_dir), "--train-file", str(reviews_jsonl)]
    assert main(["train", "imdb", "--quiet", "--out", str(models), *options]) == 0
    log = (models / "imdb/1/training.log").read_text()
    assert "validation on 19 held-out rows (the recipe's 5000, scaled)" in log
