"""The whole trainer on tiny synthetic data: train → export → parity → publish → evaluate."""

import json

import numpy as np
import pytest

from service.catalog import BOSTON_FEATURES, REUTERS_LABELS
from service.encoding import TextEncoder
from service.repository import list_versions, read_config
from trainer import data, export, pipeline
from trainer.recipes import (
    HoldOut,
    KFold,
    Network,
    Optimizer,
    Recipe,
    TabularFeatures,
    TextFeatures,
)

REUTERS = Recipe(
    dataset="reuters",
    name="best",
    features=TextFeatures(num_words=100, features="ngrams", ngram_max=2, vocabulary_size=400),
    network=Network(hidden=[16], dropout=0.2),
    loss="categorical_crossentropy",
    label_smoothing=0.1,
    validation=HoldOut(
        validation_size=60, epochs=3, batch_size=32, early_stopping_patience=1, refit_on_all=True
    ),
)
IMDB = Recipe(
    dataset="imdb",
    name="book",
    features=TextFeatures(num_words=13),
    network=Network(hidden=[4]),
    optimizer=Optimizer(learning_rate=0.01),
    loss="binary_crossentropy",
    validation=HoldOut(validation_size=20, epochs=20, batch_size=8, refit_on_all=True),
)
BOSTON = Recipe(
    dataset="boston",
    name="best",
    tabular=TabularFeatures(log_features=["crim", "lstat"], standardize_target=True),
    network=Network(hidden=[8]),
    optimizer=Optimizer(name="adam", learning_rate=0.01),
    ensemble=2,
    loss="mse",
    validation=KFold(folds=3, epochs=40, batch_size=16, choose_epochs=True),
)


def train(recipe, data_dir, models_dir, **options):
    return pipeline.train(
        recipe, seed=7, data_dir=data_dir, models_dir=models_dir, verbose=0, **options
    )


def test_reuters_version_is_complete_and_self_describing(synthetic_data_dir, tmp_path):
    trained = train(REUTERS, synthetic_data_dir, tmp_path)
    folder, config = trained.folder, trained.config
    assert folder == tmp_path / "reuters" / "1"
    assert sorted(p.name for p in folder.iterdir()) == [
        "config.json",
        "curves.png",
        "model.onnx",
        "saved_model",
        "vocabulary.json",
    ]
    assert read_config(folder) == config
    assert config.labels == REUTERS_LABELS
    assert len(config.labels) == 46
    assert config.inputs[0].shape == [-1, config.encoding.dim]
    assert config.outputs[0].name == "probabilities"
    assert config.outputs[0].shape == [-1, 46]
    assert config.encoding.features == "ngrams"
    assert config.encoding.ngram_max == 2
    assert set(config.metrics.test) == {"accuracy", "loss"}
    assert set(config.metrics.validation) == {"accuracy", "loss"}
    assert config.training.recipe == "best"
    assert config.training.seed == 7
    assert config.training.hyperparameters["network"]["hidden"] == [16]
    assert set(config.training.data_files) == {"reuters.npz", "reuters_word_index.json"}
    assert {"tensorflow", "keras", "tf2onnx", "onnxruntime"} <= set(
        config.training.library_versions
    )
    assert config.export.opset == 17
    assert config.export.labels_identical is True
    assert config.export.max_abs_diff_onnx <= 1e-5
    assert not list((tmp_path / "reuters").glob(".staging-*"))


def test_evaluate_recomputes_the_configs_test_metrics(synthetic_data_dir, tmp_path):
    train(REUTERS, synthetic_data_dir, tmp_path)
    config, metrics = pipeline.evaluate(
        "reuters", None, data_dir=synthetic_data_dir, models_dir=tmp_path
    )
    assert metrics == pytest.approx(config.metrics.test, abs=1e-6)


def test_same_seed_and_data_give_the_same_model(synthetic_data_dir, tmp_path):
    first = train(REUTERS, synthetic_data_dir, tmp_path / "a").config
    second = train(REUTERS, synthetic_data_dir, tmp_path / "b").config
    assert first.metrics == second.metrics
    assert first.training.epochs == second.training.epochs
    vocabularies = [
        json.loads((tmp_path / r / "reuters/1/vocabulary.json").read_text()) for r in "ab"
    ]
    assert vocabularies[0] == vocabularies[1]


def test_new_runs_get_new_versions_and_never_overwrite(synthetic_data_dir, tmp_path):
    train(IMDB, synthetic_data_dir, tmp_path)
    train(IMDB, synthetic_data_dir, tmp_path)
    assert list_versions(tmp_path) == {"imdb": [1, 2]}
    before = (tmp_path / "imdb/1/config.json").read_bytes()
    with pytest.raises(pipeline.publish.PublishError, match="never overwritten"):
        train(IMDB, synthetic_data_dir, tmp_path, version=1)
    assert (tmp_path / "imdb/1/config.json").read_bytes() == before
    index = (tmp_path / "README.md").read_text()
    assert "| imdb | 1 | book | 7 |" in index
    assert "| imdb | 2 | book | 7 |" in index


def test_text_model_learned_the_reviews_it_answers_as_raw_text(synthetic_data_dir, tmp_path):
    """Through the saved encoder, the model tells the synthetic test reviews apart (their cue words
    decide the label): a model that learned nothing would be right about half the time."""
    folder = train(IMDB, synthetic_data_dir, tmp_path).folder
    config = read_config(folder)
    assert config.labels == ["negative", "positive"]
    encoder = TextEncoder.load(config.encoding, folder)
    session = export.onnx_session(folder / "model.onnx")
    reviews = data.read_reviews(synthetic_data_dir / "aclImdb.tar.gz")["test"]
    texts, labels = [text for text, _ in reviews], [label for _, label in reviews]
    rows = encoder.encode(texts)
    assert rows.shape == (len(texts), 13)
    probabilities = session.run(None, {"encoded_text": rows})[0]
    assert probabilities.shape == (len(texts), 1)
    accuracy = ((probabilities[:, 0] > 0.5) == np.array(labels)).mean()
    assert accuracy >= 0.9, accuracy


def test_boston_graph_takes_raw_named_features_and_learned_the_prices(synthetic_data_dir, tmp_path):
    """On the synthetic test houses (prices linear in the features), the graph's error is well
    below that of always answering the mean training price."""
    trained = train(BOSTON, synthetic_data_dir, tmp_path)
    config = trained.config
    assert [f.name for f in config.encoding.features] == [f.name for f in BOSTON_FEATURES]
    assert config.target.unit == "$1000s"
    assert config.labels is None
    assert set(config.metrics.test) == {"mae", "mse"}
    session = export.onnx_session(trained.folder / "model.onnx")
    assert [i.name for i in session.get_inputs()] == ["features"]
    houses = data.load_boston(synthetic_data_dir)
    prices = session.run(None, {"features": houses.x_test.astype(np.float32)})[0]
    assert prices.shape == (len(houses.x_test), 1)
    mae = np.abs(prices[:, 0] - houses.y_test).mean()
    baseline = np.abs(houses.y_train.mean() - houses.y_test).mean()
    assert mae < 0.5 * baseline, (mae, baseline)


def test_failed_parity_publishes_nothing(synthetic_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(export, "TOLERANCE", -1.0)
    with pytest.raises(export.ExportError, match="disagree"):
        train(BOSTON, synthetic_data_dir, tmp_path)
    assert list((tmp_path / "boston").iterdir()) == []


def test_reexport_rewrites_onnx_only_after_parity(synthetic_data_dir, tmp_path):
    trained = train(BOSTON, synthetic_data_dir, tmp_path)
    updated = pipeline.reexport("boston", 1, data_dir=synthetic_data_dir, models_dir=tmp_path)
    assert updated.export.max_abs_diff_onnx <= 1e-5
    assert updated.metrics == trained.config.metrics
    _, metrics = pipeline.evaluate("boston", 1, data_dir=synthetic_data_dir, models_dir=tmp_path)
    assert metrics == pytest.approx(trained.config.metrics.test, abs=1e-5)
