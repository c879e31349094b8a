import numpy as np
import pytest

from trainer.models import average, price_regressor, text_classifier
from trainer.recipes import RECIPE_BOOK, Network


@pytest.mark.parametrize(("classes", "width"), [(2, 1), (46, 46)])
def test_text_classifier_outputs_probabilities(classes, width):
    model = text_classifier(30, classes, Network(hidden=[8, 4], dropout=0.5, l2=1e-4))
    out = model(np.random.RandomState(0).rand(5, 30).astype("float32"), training=False).numpy()
    assert out.shape == (5, width)
    assert ((out >= 0) & (out <= 1)).all()
    if classes > 2:
        assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_average_is_one_graph_with_the_mean_of_its_members():
    members = [text_classifier(10, 46, Network(hidden=[8])) for _ in range(3)]
    ensemble = average(members)
    rows = np.random.RandomState(0).rand(4, 10).astype("float32")
    expected = np.mean([m(rows, training=False).numpy() for m in members], axis=0)
    assert np.allclose(ensemble(rows, training=False).numpy(), expected, atol=1e-6)
    assert ensemble.count_params() == sum(m.count_params() for m in members)


def test_log_columns_and_target_scaling_live_in_the_graph():
    mask = np.array([1.0, 0.0], dtype="float32")
    model = price_regressor(
        np.zeros(2, "float32"), np.ones(2, "float32"), Network(hidden=[]), mask, 20.0, 5.0
    )
    kernel, bias = model.layers[-2].get_weights()
    raw = np.array([[np.e - 1, 3.0]], dtype="float32")
    expected = (np.array([[1.0, 3.0]]) @ kernel + bias) * 5.0 + 20.0
    assert np.allclose(model(raw, training=False).numpy(), expected, atol=1e-5)


def test_price_regressor_standardises_raw_features_inside_the_graph():
    mean = np.array([10.0, -3.0], dtype="float32")
    variance = np.array([4.0, 9.0], dtype="float32")
    model = price_regressor(mean, variance, Network(hidden=[]))
    dense = model.layers[-1]
    kernel, bias = dense.get_weights()
    raw = np.array([[12.0, 3.0]], dtype="float32")
    expected = ((raw - mean) / np.sqrt(variance)) @ kernel + bias
    assert np.allclose(model(raw, training=False).numpy(), expected, atol=1e-6)


def test_book_recipes_are_the_books():
    imdb = RECIPE_BOOK[("imdb", "book")]
    assert imdb.network.hidden == [16, 16]
    assert imdb.validation.epochs == 4
    assert imdb.validation.batch_size == 512
    assert imdb.features.num_words == 10_000
    reuters = RECIPE_BOOK[("reuters", "book")]
    assert reuters.network.hidden == [64, 64]
    assert reuters.validation.epochs == 9
    boston = RECIPE_BOOK[("boston", "book")]
    assert boston.validation.folds == 4
    assert boston.validation.epochs == 80
    assert boston.validation.batch_size == 16
    assert boston.loss == "mse"
