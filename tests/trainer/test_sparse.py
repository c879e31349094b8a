"""The sparse form: an embedding bag that is Dense over the dense row, padding that weighs
nothing, the naive-Bayes scale and the temperature folded exactly, and sparse versions trained,
exported and evaluated end to end on tiny synthetic data."""

import dataclasses

import keras
import numpy as np
import onnx
import pytest

from contract.config import list_versions, read_config
from contract.sparse import SparseRows
from contract.text import TextEncoder
from trainer import evaluate, export, imdb, reuters
from trainer.bag import bags, naive_bayes_ratio
from trainer.cli import EXIT_GATE, main
from trainer.export import export_keras
from trainer.fit import divide_output_layer, logits
from trainer.sparse import sparse_feed

DIM = 30


def random_rows(rows: int = 9, seed: int = 0) -> SparseRows:
    """Rows of 0 to 8 distinct columns with positive values; one row is empty."""
    rng = np.random.RandomState(seed)
    dense = np.where(rng.rand(rows, DIM) < 0.15, rng.rand(rows, DIM) + 0.5, 0).astype(np.float32)
    dense[3] = 0
    r, c = np.nonzero(dense)
    return SparseRows(r, c, dense[r, c], dense.shape)


def sparse_model(recipe, scale=None, module=reuters) -> keras.Model:
    keras.utils.set_random_seed(0)
    model = module.build_model(DIM, recipe, scale)
    # Non-zero everywhere, so that a pad row or a bias that leaked in would show.
    for weight in model.weights:
        if weight.trainable:
            weight.assign(np.random.RandomState(1).normal(size=weight.shape).astype(np.float32))
    return model


def dense_twin(model: keras.Model, recipe, module=reuters) -> keras.Model:
    """The dense form of the same network with the same weights: the bag's table without its
    pad row as the first Dense layer's kernel."""
    features = dataclasses.replace(
        recipe.features, form="dense", naive_bayes=False, l2_normalize=False
    )
    dense = module.build_model(DIM, dataclasses.replace(recipe, features=features))
    (bag,) = bags(model)
    first, *rest = [layer for layer in dense.layers if layer.weights]
    table = keras.ops.convert_to_numpy(bag.table)
    if bag.scale is not None:
        table = table * bag.scale[:, None]
    first.set_weights([table[:DIM], keras.ops.convert_to_numpy(bag.bias)])
    for target, source in zip(
        rest, [layer for layer in model.layers if layer.weights and layer is not bag], strict=True
    ):
        target.set_weights(source.get_weights())
    return dense


def dense_rows(rows: SparseRows, recipe) -> np.ndarray:
    """The rows as the dense form takes them: normalised where the sparse model normalises."""
    x = rows.dense()
    if recipe.features.l2_normalize:
        x = x / np.sqrt((x * x).sum(axis=1, keepdims=True) + 1e-12)
    return x


REUTERS = reuters.RECIPES["sparse"]  # weighted (log_count_idf): ids and weights, Dense 128
IMDB = imdb.RECIPES["sparse"]  # binary: ids only, linear, naive-Bayes scale
PLAIN = dataclasses.replace(  # weighted, the rows as they come
    REUTERS, features=dataclasses.replace(REUTERS.features, l2_normalize=False)
)


def answer(model, rows: SparseRows, width: int | None = None) -> np.ndarray:
    ids, weights = rows.padded(width)
    names = [t.name for t in model.inputs]
    feed = [{"ids": ids, "weights": weights}[n] for n in names]
    return keras.ops.convert_to_numpy(model(feed[0] if len(feed) == 1 else feed, training=False))


@pytest.mark.parametrize("folded", [False, True])
@pytest.mark.parametrize("recipe", [PLAIN, REUTERS], ids=["plain", "l2-normalized"])
def test_the_bag_is_dense_over_the_dense_row(recipe, folded):
    model, rows = sparse_model(recipe), random_rows()
    if folded:
        bags(model)[0].fold()
    dense = dense_twin(model, recipe)
    expected = keras.ops.convert_to_numpy(dense(dense_rows(rows, recipe), training=False))
    assert np.allclose(answer(model, rows), expected, atol=1e-6)
    assert not np.allclose(answer(model, rows)[3], answer(model, rows)[0])  # not all alike


@pytest.mark.parametrize(
    ("recipe", "scale"),
    [(PLAIN, None), (REUTERS, None), (IMDB, None), (IMDB, np.linspace(0.5, 2, DIM))],
    ids=["weighted", "weighted-l2-normalized", "binary", "binary-scaled"],
)
@pytest.mark.parametrize("folded", [False, True])
def test_padding_weighs_nothing(recipe, scale, folded):
    module = imdb if recipe is IMDB else reuters
    model, rows = sparse_model(recipe, scale, module), random_rows()
    if folded:
        bags(model)[0].fold()
    narrow = answer(model, rows)
    assert np.allclose(answer(model, rows, width=narrow.shape[0] + 40), narrow, atol=1e-6)
    alone = np.concatenate([answer(model, rows[i : i + 1]) for i in range(len(rows))])
    assert np.allclose(alone, narrow, atol=1e-6)  # a row padded to another row's length


def test_the_scale_folds_into_the_table_exactly():
    scale = np.random.RandomState(2).uniform(-3, 3, DIM).astype(np.float32)
    model, rows = sparse_model(IMDB, scale, imdb), random_rows()
    trained = answer(model, rows)
    (bag,) = bags(model)
    table = keras.ops.convert_to_numpy(bag.table).copy()
    bag.fold()
    assert np.array_equal(keras.ops.convert_to_numpy(bag.table)[:DIM], table[:DIM] * scale[:, None])
    assert not keras.ops.convert_to_numpy(bag.table)[DIM].any()  # the pad row
    assert np.allclose(answer(model, rows), trained, atol=1e-6)
    # what the binary model answers is sigmoid(Σ scale[column] × table[column] + bias)
    binary = (rows.dense() > 0).astype(np.float32)
    logit = binary @ (table[:DIM, 0] * scale) + keras.ops.convert_to_numpy(bag.bias)[0]
    assert np.allclose(answer(model, rows)[:, 0], 1 / (1 + np.exp(-logit)), atol=1e-6)


def test_naive_bayes_ratio_of_a_hand_made_case():
    # column 0 in both positive rows, column 1 in the negative row, column 2 nowhere
    rows = SparseRows(np.array([0, 1, 2]), np.array([0, 0, 1]), np.ones(3, np.float32), (3, 3))
    ratio = naive_bayes_ratio(rows, np.array([1.0, 1.0, 0.0]))
    p, q = np.array([3, 1, 1]) / 5, np.array([1, 2, 1]) / 4
    assert np.allclose(ratio, np.log(p / q))


@pytest.mark.parametrize(
    ("module", "recipe"), [(imdb, IMDB), (reuters, REUTERS)], ids=["sigmoid", "softmax"]
)
def test_the_temperature_divides_the_logits(module, recipe):
    """sigmoid(z / T) and softmax(z / T), folded into the output layer: IMDB's is the bag."""
    model, rows = sparse_model(recipe, None, module), random_rows()
    ids, weights = rows.padded()
    feed = ids if len(model.inputs) == 1 else (ids, weights)
    z = logits(model, [(feed, None)]) / 2.5
    divide_output_layer(model, 2.5)
    if module is imdb:
        expected = 1 / (1 + np.exp(-z))
    else:
        expected = np.exp(z - z.max(1, keepdims=True))
        expected /= expected.sum(1, keepdims=True)
    assert np.allclose(answer(model, rows), expected, atol=1e-6)


def test_the_exported_graph_gathers_and_agrees_with_the_dense_form(tmp_path):
    from contract.config import TensorSpec

    model, rows = sparse_model(REUTERS), random_rows()
    bags(model)[0].fold()
    inputs = [
        TensorSpec(name="ids", datatype="INT64", shape=[-1, -1]),
        TensorSpec(name="weights", datatype="FP32", shape=[-1, -1]),
    ]
    output = TensorSpec(name="probabilities", datatype="FP32", shape=[-1, 46])
    batches = [sparse_feed(rows[:4], ["ids", "weights"]), sparse_feed(rows[4:], ["ids", "weights"])]
    parity, outputs = export_keras(
        model, inputs, output, tmp_path, lambda: batches, "multiclass_classification"
    )
    assert parity.max_abs_diff_onnx <= 1e-5
    assert parity.max_abs_diff_saved_model <= 1e-5
    dense = dense_twin(model, REUTERS)
    assert np.allclose(outputs, dense(dense_rows(rows, REUTERS), training=False), atol=1e-6)
    ops = [node.op_type for node in onnx.load(str(tmp_path / "model.onnx")).graph.node]
    normalized = ["Mul", "ReduceSum", "Add", "Sqrt", "Div"]  # w / sqrt(Σ w² + ε)
    bag = ["Gather", "Unsqueeze", "MatMul", "Squeeze", "Add", "Relu"]  # [n, 1, k] @ [n, k, 128]
    assert sorted(ops) == sorted([*normalized, *bag, "MatMul", "Add", "Softmax"])


def train(data_dir, models_dir, name):
    options = ["--recipe", "sparse", "--seed", "7", "--quiet"]
    return main(["train", name, *options, "--data-dir", str(data_dir), "--out", str(models_dir)])


@pytest.mark.usefixtures("tiny_recipes")
def test_a_sparse_binary_version_takes_ids_only_and_sums_its_gathered_rows(
    synthetic_data_dir, tmp_path, capsys
):
    assert train(synthetic_data_dir, tmp_path, "imdb") == 0
    folder = tmp_path / "imdb/1"
    config = read_config(folder)
    assert config.encoding.form == "sparse"
    assert config.encoding.gathered_width == 1  # a linear bag: one float an id
    assert [(s.name, s.datatype, s.shape) for s in config.inputs] == [("ids", "INT64", [-1, -1])]
    assert config.training.temperature > 0
    assert config.export.max_abs_diff_onnx <= 1e-5
    assert config.export.labels_identical
    assert {"ece", "ece_short", "mean_top_probability_short"} <= set(config.metrics.test)
    graph = onnx.load(str(folder / "model.onnx")).graph
    assert [node.op_type for node in graph.node] == ["Gather", "ReduceSum", "Add", "Sigmoid"]
    # The service's feed: the encoder's rows, padded; a row padded wider answers the same.
    encoder = TextEncoder.load(config.encoding, folder)
    rows = encoder.sparse_rows(encoder.word_ids_batch(["good great", "awful bad plot", "the"]))
    session = evaluate.onnx_session(folder / "model.onnx")
    narrow = session.run(None, {"ids": rows.padded()[0]})[0]
    assert np.array_equal(session.run(None, {"ids": rows.padded(50)[0]})[0], narrow)
    assert narrow[0, 0] > 0.5 > narrow[1, 0]
    capsys.readouterr()
    models, data = ["--models", str(tmp_path)], ["--data-dir", str(synthetic_data_dir)]
    assert main(["evaluate", "imdb", *models, *data]) == 0
    assert capsys.readouterr().out.count(" ok") == 6


@pytest.mark.usefixtures("tiny_recipes")
def test_a_sparse_ensemble_is_deterministic_weighted_and_re_exports(synthetic_data_dir, tmp_path):
    for repository in ("a", "b"):
        assert train(synthetic_data_dir, tmp_path / repository, "reuters") == 0
    first, second = (read_config(tmp_path / r / "reuters/1") for r in "ab")
    assert first.metrics == second.metrics
    assert first.training.temperature == second.training.temperature
    # a third run answers the test rows bit for bit as the first: nothing new to publish
    assert train(synthetic_data_dir, tmp_path / "a", "reuters") == EXIT_GATE
    assert list_versions(tmp_path / "a") == {"reuters": [1]}
    assert [s.name for s in first.inputs] == ["ids", "weights"]
    assert first.encoding.gathered_width == 2 * first.training.hyperparameters["hidden"][0]
    graph = onnx.load(str(tmp_path / "a/reuters/1/model.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert ops.count("Gather") == 2  # one per member
    assert ops.count("MatMul") == 2 + 2  # each member's bag and output layer
    updated = export.reexport("reuters", 1, data_dir=synthetic_data_dir, models_dir=tmp_path / "a")
    assert updated.export.max_abs_diff_onnx <= 1e-5
    _, metrics = evaluate.evaluate(
        "reuters", 1, data_dir=synthetic_data_dir, models_dir=tmp_path / "a"
    )
    assert metrics == pytest.approx(first.metrics.test, abs=1e-6)
