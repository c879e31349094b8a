"""`trainer train` end to end on tiny synthetic data: load → fit → export → parity → gate →
publish, then `trainer evaluate` and `trainer export` on what it published."""

import json
import os
import stat

import numpy as np
import pytest

from contract.catalog import (
    BOSTON_ENDPOINT,
    BOSTON_FEATURES,
    IMDB_ENDPOINT,
    REUTERS_ENDPOINT,
    REUTERS_LABELS,
)
from contract.config import list_versions, read_config
from contract.text import TextEncoder
from tests.trainer.conftest import TINY
from trainer import boston, data, evaluate, export
from trainer.cli import EXIT_EXPORT, EXIT_GATE, EXIT_REPOSITORY, main

pytestmark = pytest.mark.usefixtures("tiny_recipes")


def train(data_dir, models_dir, name, *options):
    source = ["--data-dir", str(data_dir), "--out", str(models_dir)]
    return main(["train", name, "--seed", "7", "--quiet", *source, *options])


def test_reuters_version_is_complete_and_self_describing(synthetic_data_dir, tmp_path):
    assert train(synthetic_data_dir, tmp_path, "reuters") == 0
    folder = tmp_path / "reuters" / "1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "curves.png",
        "model.onnx",
        "saved_model",
        "training.log",
        "vocabulary.json",
    ]
    config = read_config(folder)
    assert config.labels == REUTERS_LABELS
    assert config.inputs[0].shape == [-1, config.encoding.dim]
    assert config.outputs[0].name == "probabilities"
    assert config.outputs[0].shape == [-1, 46]
    assert config.encoding.features == "ngrams"
    assert config.encoding.ngram_max == 2
    assert config.encoding.endpoint == REUTERS_ENDPOINT  # /api/reuters as its clients know it
    assert set(config.metrics.validation) == {"accuracy", "loss"}
    assert set(config.metrics.test) == {
        "accuracy",
        "loss",
        "ece",
        "mean_top_probability",
        "ece_short",
        "mean_top_probability_short",
    }
    assert config.training.recipe == "best"
    assert config.training.seed == 7
    assert config.training.hyperparameters["hidden"] == [16]
    assert config.training.hyperparameters["training"]["ensemble"] == 2
    assert set(config.training.data_files) == {"reuters.npz", "reuters_word_index.json"}
    assert {"tensorflow", "keras", "tf2onnx", "onnxruntime"} <= set(
        config.training.library_versions
    )
    assert config.export.opset == 17
    assert config.export.labels_identical is True
    assert config.export.max_abs_diff_onnx <= 1e-5
    assert not list((tmp_path / "reuters").glob(".staging-*"))


def test_the_log_has_every_epoch_of_every_phase(synthetic_data_dir, tmp_path):
    assert train(synthetic_data_dir, tmp_path, "boston") == 0
    log = (tmp_path / "boston/1/training.log").read_text()
    assert "== 3-fold validation" in log
    assert "== final fit on all 96 rows, average of 2 models" in log
    epochs = read_config(tmp_path / "boston/1").training.epochs
    # 3 folds × the recipe's epochs, then 2 ensemble members × the chosen epochs.
    folds = TINY[(boston, "best")].training
    assert log.count("\nepoch ") == folds.folds * folds.epochs + 2 * epochs
    assert "val_mae" in log


def test_evaluate_recomputes_the_configs_test_metrics(synthetic_data_dir, tmp_path, capsys):
    train(synthetic_data_dir, tmp_path, "reuters")
    config, metrics = evaluate.evaluate(
        "reuters", None, data_dir=synthetic_data_dir, models_dir=tmp_path
    )
    assert metrics == pytest.approx(config.metrics.test, abs=1e-6)
    capsys.readouterr()
    assert (
        main(
            [
                "evaluate",
                "reuters",
                "--models",
                str(tmp_path),
                "--data-dir",
                str(synthetic_data_dir),
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.count(" ok") == 6


def test_same_seed_and_data_give_the_same_model(synthetic_data_dir, tmp_path):
    for repository in ("a", "b"):
        assert train(synthetic_data_dir, tmp_path / repository, "reuters") == 0
    first, second = (read_config(tmp_path / r / "reuters/1") for r in "ab")
    assert first.metrics == second.metrics
    assert first.training.epochs == second.training.epochs
    vocabularies = [
        json.loads((tmp_path / r / "reuters/1/vocabulary.json").read_text()) for r in "ab"
    ]
    assert vocabularies[0] == vocabularies[1]


def test_new_runs_get_new_versions_and_never_overwrite(synthetic_data_dir, tmp_path, capsys):
    for seed in ("7", "8"):  # another seed: the same one would make the same model (unchanged)
        assert train(synthetic_data_dir, tmp_path, "imdb", "--recipe", "book", "--seed", seed) == 0
    assert list_versions(tmp_path) == {"imdb": [1, 2]}
    before = (tmp_path / "imdb/1/config.json").read_bytes()
    capsys.readouterr()
    options = ["--recipe", "book", "--version", "1"]
    assert train(synthetic_data_dir, tmp_path, "imdb", *options) == EXIT_REPOSITORY
    assert "versions are never overwritten" in capsys.readouterr().err
    assert (tmp_path / "imdb/1/config.json").read_bytes() == before
    index = (tmp_path / "README.md").read_text()
    assert "| imdb | 1 | book | 7 |" in index
    assert "| imdb | 2 | book | 8 |" in index


def test_the_gate_refuses_a_worse_version_keeps_it_and_force_publishes_it(
    synthetic_data_dir, tmp_path, capsys
):
    assert train(synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "3") == 0
    serving = read_config(tmp_path / "boston/1").metrics.test["mae"]
    capsys.readouterr()

    assert train(synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "1") == (
        EXIT_GATE
    )
    out = capsys.readouterr().out
    assert list_versions(tmp_path) == {"boston": [1]}
    (kept,) = (tmp_path / "boston").glob(".staging-*")
    refused = json.loads((kept / "config.json").read_text())["gate"]
    assert refused["previous_version"] == 1
    assert refused["previous"] == pytest.approx(serving)
    assert refused["candidate"] > serving * 1.01
    assert refused["passed"] is False
    assert f"against {serving:.4f} of version 1" in out.replace("\n", " ")
    assert f"mae {refused['candidate']:.4f}" in out
    assert (kept / "model.onnx").is_file()

    assert (
        train(
            synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "1", "--force"
        )
        == 0
    )
    forced = read_config(tmp_path / "boston/2").gate.model_dump()
    assert (forced["passed"], forced["forced"]) == (False, True)


def test_a_version_within_the_tolerance_passes(synthetic_data_dir, tmp_path):
    assert train(synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "3") == 0
    options = ["--recipe", "book", "--epochs", "1", "--tolerance", "0.9"]
    assert train(synthetic_data_dir, tmp_path, "boston", *options) == 0
    passed = read_config(tmp_path / "boston/2").gate.model_dump()
    assert (passed["passed"], passed["forced"], passed["tolerance"]) == (True, False, 0.9)


def test_text_model_learned_the_reviews_it_answers_as_raw_text(synthetic_data_dir, tmp_path):
    """Through the saved encoder, the model tells the synthetic test reviews apart (their cue words
    decide the label): a model that learned nothing would be right about half the time."""
    train(synthetic_data_dir, tmp_path, "imdb", "--recipe", "book")
    folder = tmp_path / "imdb/1"
    config = read_config(folder)
    assert config.labels == ["negative", "positive"]
    assert config.encoding.endpoint == IMDB_ENDPOINT
    encoder = TextEncoder.load(config.encoding, folder)
    session = evaluate.onnx_session(folder / "model.onnx")
    reviews = data.read_reviews(synthetic_data_dir / "aclImdb.tar.gz")["test"]
    rows = encoder.encode([text for text, _ in reviews])
    assert rows.shape == (len(reviews), 13)
    probabilities = session.run(None, {"encoded_text": rows})[0]
    assert probabilities.shape == (len(reviews), 1)
    accuracy = ((probabilities[:, 0] > 0.5) == np.array([label for _, label in reviews])).mean()
    assert accuracy >= 0.9, accuracy


def test_boston_graph_takes_raw_named_features_and_learned_the_prices(synthetic_data_dir, tmp_path):
    """On the synthetic test houses (prices linear in the features), the graph's error is well
    below that of always answering the mean training price."""
    train(synthetic_data_dir, tmp_path, "boston")
    config = read_config(tmp_path / "boston/1")
    assert [f.name for f in config.encoding.features] == [f.name for f in BOSTON_FEATURES]
    assert config.encoding.endpoint == BOSTON_ENDPOINT
    assert config.target.unit == "$1000s"
    assert config.labels is None
    assert set(config.metrics.test) == {"mae", "mse"}
    session = evaluate.onnx_session(tmp_path / "boston/1/model.onnx")
    assert [i.name for i in session.get_inputs()] == ["features"]
    houses = data.load_boston(synthetic_data_dir)
    prices = session.run(None, {"features": houses.x_test.astype(np.float32)})[0]
    assert prices.shape == (len(houses.x_test), 1)
    mae = np.abs(prices[:, 0] - houses.y_test).mean()
    baseline = np.abs(houses.y_train.mean() - houses.y_test).mean()
    assert mae < 0.5 * baseline, (mae, baseline)


def test_failed_parity_publishes_nothing(synthetic_data_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "TOLERANCE", -1.0)
    assert train(synthetic_data_dir, tmp_path, "boston") == EXIT_EXPORT
    assert "disagree" in capsys.readouterr().err
    assert list((tmp_path / "boston").iterdir()) == []


def test_reexport_rewrites_onnx_only_after_parity(synthetic_data_dir, tmp_path):
    train(synthetic_data_dir, tmp_path, "boston")
    trained = read_config(tmp_path / "boston/1")
    updated = export.reexport("boston", 1, data_dir=synthetic_data_dir, models_dir=tmp_path)
    assert updated.export.max_abs_diff_onnx <= 1e-5
    assert updated.metrics == trained.metrics
    _, metrics = evaluate.evaluate("boston", 1, data_dir=synthetic_data_dir, models_dir=tmp_path)
    assert metrics == pytest.approx(trained.metrics.test, abs=1e-5)


def test_a_retrain_that_predicts_exactly_as_the_newest_version_is_not_published(
    synthetic_data_dir, tmp_path, capsys
):
    options = ["--recipe", "book", "--epochs", "2"]
    assert train(synthetic_data_dir, tmp_path, "boston", *options) == 0
    capsys.readouterr()
    assert train(synthetic_data_dir, tmp_path, "boston", *options, "--force") == EXIT_GATE
    out = " ".join(capsys.readouterr().out.split())
    assert "not published: its predictions on the 24 test rows equal version 1's exactly" in out
    assert "unchanged" in out
    assert list_versions(tmp_path) == {"boston": [1]}
    assert list((tmp_path / "boston").glob(".staging-*")) == []  # nothing to inspect


def write_houses_csv(path, x, y):
    columns = [*data.BOSTON_COLUMNS, "price"]
    rows = [",".join(map(str, [*row, price])) for row, price in zip(x, y, strict=True)]
    path.write_text("\n".join([",".join(columns), *rows]) + "\n")
    return path


def test_a_model_trained_on_other_data_is_published_only_when_allowed(
    synthetic_data_dir, tmp_path, capsys
):
    """Version 1 from the book's (here: synthetic) Boston file; a retrain on the user's own CSV is
    judged on that CSV's test rows only, so it needs --allow-other-data, and says so in its config."""
    models = tmp_path / "models"
    options = ["--recipe", "book", "--epochs", "2"]
    assert train(synthetic_data_dir, models, "boston", *options) == 0
    first = read_config(models / "boston/1").gate
    assert first.judged_on == {
        "boston_housing.npz": data.sha256_of(synthetic_data_dir / "boston_housing.npz")
    }
    assert (first.test_rows, first.other_data) == (24, False)
    houses = data.load_boston(synthetic_data_dir)
    x = np.clip(  # into the range each column's definition allows (the synthetic houses ignore it)
        houses.x_train,
        [f.minimum or 0 for f in BOSTON_FEATURES],
        [f.maximum or 1e4 for f in BOSTON_FEATURES],
    )
    own = write_houses_csv(tmp_path / "houses.csv", x, houses.y_train)
    capsys.readouterr()

    own_options = [*options, "--train-file", str(own), "--force"]  # --force is not enough
    assert train(synthetic_data_dir, models, "boston", *own_options) == EXIT_GATE
    out = " ".join(capsys.readouterr().out.split())
    assert (
        "not published: trained on houses.csv, version 1 on the book's dataset, and judged only "
        "on the test rows of houses.csv" in out
    )
    assert "--allow-other-data publishes it" in out
    assert list_versions(models) == {"boston": [1]}
    (kept,) = (models / "boston").glob(".staging-*")
    assert json.loads((kept / "config.json").read_text())["gate"]["other_data"] is True

    assert train(synthetic_data_dir, models, "boston", *own_options, "--allow-other-data") == 0
    published = read_config(models / "boston/2").gate
    assert published.other_data is True
    assert published.judged_on == {str(own): data.sha256_of(own)}
    assert published.test_rows == 20  # the CSV's held-out share: 20% of its 96 rows
    assert "trained on other data" in " ".join(capsys.readouterr().out.split())


def test_the_same_data_from_another_file_of_the_book_is_not_other_data():
    from trainer import publish

    npz = {
        "imdb.npz": data.SHA256["imdb.npz"],
        "imdb_word_index.json": data.SHA256["imdb_word_index.json"],
    }
    raw = {
        "aclImdb.tar.gz": data.SHA256["aclImdb.tar.gz"],
        "imdb_word_index.json": data.SHA256["imdb_word_index.json"],
    }
    own = {
        "imdb_word_index.json": data.SHA256["imdb_word_index.json"],
        "/home/me/reviews.jsonl": "ab12",
    }
    moved = {"imdb_word_index.json": data.SHA256["imdb_word_index.json"], "reviews.jsonl": "ab12"}
    assert publish.data_source(npz) == publish.data_source(raw) == publish.data_source({})
    assert publish.data_source(own) == publish.data_source(moved) != publish.data_source(raw)
    assert publish.describe_source(own) == "reviews.jsonl"
    assert publish.describe_source(raw) == "the book's dataset"


def test_a_published_version_is_readable_by_other_users(synthetic_data_dir, tmp_path):
    """The service runs as another user than the trainer (the images' uid 10001): folders 0755,
    files 0644 even under a strict umask (mkdtemp's staging folder is 0700)."""
    old = os.umask(0o077)
    try:
        assert train(synthetic_data_dir, tmp_path, "boston") == 0
    finally:
        os.umask(old)
    folder = tmp_path / "boston" / "1"
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in [folder, *folder.rglob("*")]}
    assert {path for path, mode in modes.items() if path.is_dir() and mode != 0o755} == set()
    assert {path for path, mode in modes.items() if path.is_file() and mode != 0o644} == set()


def test_the_gate_compares_with_the_newest_trained_version_past_an_imported_one(
    synthetic_data_dir, tmp_path, capsys
):
    """A version imported under a book model's name (`trainer import`) has no test figure: the
    next training is judged against the newest version the trainer trained."""
    from tests.trainer.test_import import tiny_graph

    assert train(synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "3") == 0
    graph = tmp_path / "other.onnx"
    graph.write_bytes(tiny_graph().SerializeToString())
    assert main(["import", str(graph), "--name", "boston", "--models-dir", str(tmp_path)]) == 0
    assert list_versions(tmp_path) == {"boston": [1, 2]}
    capsys.readouterr()
    assert train(synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "1") == (
        EXIT_GATE
    )
    (kept,) = (tmp_path / "boston").glob(".staging-*")
    assert json.loads((kept / "config.json").read_text())["gate"]["previous_version"] == 1


def test_evaluate_checks_the_newest_trained_version_past_an_imported_one(
    synthetic_data_dir, tmp_path, capsys
):
    from tests.trainer.test_import import tiny_graph

    assert train(synthetic_data_dir, tmp_path, "boston", "--recipe", "book", "--epochs", "1") == 0
    graph = tmp_path / "other.onnx"
    graph.write_bytes(tiny_graph().SerializeToString())
    assert main(["import", str(graph), "--name", "boston", "--models-dir", str(tmp_path)]) == 0
    capsys.readouterr()
    options = ["--data-dir", str(synthetic_data_dir), "--models", str(tmp_path)]
    assert main(["evaluate", "boston", *options]) == 0
    assert "boston/1 test metrics recomputed" in capsys.readouterr().out
    assert main(["evaluate", "boston", "--version", "2", *options]) == 0
    assert "boston/2 was imported, not trained" in capsys.readouterr().out
