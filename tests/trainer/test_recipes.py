"""The dataset modules' models and recipes: what each builds, and that `book` is the book's."""

import keras
import numpy as np
import pytest

from trainer import boston, imdb, reuters
from trainer.fit import average


@pytest.mark.parametrize(("module", "width"), [(imdb, 1), (reuters, 46)])
def test_text_models_output_probabilities(module, width):
    model = module.build_model(30, module.RECIPES["best"])
    out = model(np.random.RandomState(0).rand(5, 30).astype("float32"), training=False).numpy()
    assert out.shape == (5, width)
    assert ((out >= 0) & (out <= 1)).all()
    if width > 1:
        assert np.allclose(out.sum(axis=1), 1, atol=1e-5)


def test_average_is_one_graph_with_the_mean_of_its_members():
    members = [reuters.build_model(10, reuters.RECIPES["book"]) for _ in range(3)]
    ensemble = average(members)
    rows = np.random.RandomState(0).rand(4, 10).astype("float32")
    expected = np.mean([m(rows, training=False).numpy() for m in members], axis=0)
    assert np.allclose(ensemble(rows, training=False).numpy(), expected, atol=1e-6)
    assert ensemble.count_params() == sum(m.count_params() for m in members)


def houses(rows: int = 50) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.RandomState(0)
    return rng.uniform(1, 10, (rows, 13)).astype("float32"), rng.uniform(10, 40, rows)


def test_boston_best_logs_standardises_and_scales_to_prices_inside_the_graph():
    x, y = houses()
    recipe = boston.RECIPES["best"]
    model = boston.build_model(x, y, recipe)
    log_columns, rescaling = model.layers[1], model.layers[2]
    mask = np.isin(boston.BOSTON_COLUMNS, recipe.log_features)
    seen = np.where(mask, np.log1p(x), x)
    expected = (seen - seen.mean(axis=0)) / seen.std(axis=0)
    assert np.allclose(rescaling(log_columns(x)).numpy(), expected, atol=1e-4)
    standard_units = keras.Model(model.input, model.layers[-2].output)
    prices = standard_units(x, training=False).numpy() * y.std() + y.mean()
    assert np.allclose(model(x, training=False).numpy(), prices, rtol=1e-5, atol=1e-4)


def test_book_recipes_are_the_books():
    assert imdb.RECIPES["book"].hidden == [16, 16]
    assert imdb.RECIPES["book"].training.epochs == 4
    assert imdb.RECIPES["book"].training.batch_size == 512
    assert imdb.RECIPES["book"].features.num_words == 10_000
    assert reuters.RECIPES["book"].hidden == [64, 64]
    assert reuters.RECIPES["book"].training.epochs == 9
    assert boston.RECIPES["book"].training.folds == 4
    assert boston.RECIPES["book"].training.epochs == 80
    assert boston.RECIPES["book"].training.batch_size == 16
    assert boston.RECIPES["book"].loss == "mse"
    assert boston.RECIPES["book"].log_features == ()
