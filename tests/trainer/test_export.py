import keras
import numpy as np
import onnx
import pytest

from contract.config import TensorSpec
from trainer.evaluate import onnx_session
from trainer.export import (
    ExportError,
    check_parity,
    check_signature,
    export_onnx,
    export_saved_model,
)

INPUT = TensorSpec(name="features", datatype="FP32", shape=[-1, 3])
OUTPUT = TensorSpec(name="price", datatype="FP32", shape=[-1, 1])


def export_model(folder, offset: float = 0.0):
    """A small regression model whose outputs are shifted by `offset`, exported into `folder`."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((3,), name="features")
    hidden = keras.layers.Dense(4, "relu")(keras.layers.Rescaling(0.5, offset=-1.0)(inputs))
    outputs = keras.layers.Rescaling(1.0, offset=offset)(keras.layers.Dense(1)(hidden))
    model = keras.Model(inputs, outputs)
    export_saved_model(model, INPUT, OUTPUT, folder / "saved_model")
    export_onnx(lambda x: model(x, training=False), INPUT, OUTPUT, folder / "model.onnx")
    return model, folder


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    return export_model(tmp_path_factory.mktemp("export"))


def batches():
    rng = np.random.RandomState(1)
    return [rng.rand(7, 3).astype("float32") * 10 for _ in range(3)]


def test_onnx_graph_has_exactly_the_configured_inputs_and_outputs(exported):
    _, folder = exported
    session = onnx_session(folder / "model.onnx")
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [("features", 3)]
    assert [o.name for o in session.get_outputs()] == ["price"]
    opset = onnx.load(str(folder / "model.onnx")).opset_import[0].version
    assert opset == 17


def test_saved_model_has_a_named_serving_signature_and_each_weight_once(exported):
    import tensorflow as tf

    model, folder = exported
    loaded = tf.saved_model.load(str(folder / "saved_model"))
    signature = loaded.signatures["serving_default"]
    rows = batches()[0]
    answer = signature(features=tf.constant(rows))
    assert list(answer) == ["price"]
    assert np.allclose(answer["price"].numpy(), model(rows, training=False).numpy(), atol=1e-6)
    stored = tf.train.list_variables(str(folder / "saved_model" / "variables" / "variables"))
    weights = [shape for name, shape in stored if name != "_CHECKPOINTABLE_OBJECT_GRAPH"]
    assert len(weights) == len(model.weights)


def test_parity_passes_for_a_faithful_export(exported):
    model, folder = exported
    parity, outputs = check_parity(
        lambda x: model(x, training=False).numpy(),
        folder / "saved_model",
        folder / "model.onnx",
        batches,
        "regression",
    )
    assert parity.rows == 21
    assert outputs.shape == (21, 1)
    assert parity.max_abs_diff_onnx <= 1e-5
    assert parity.labels_identical is None


def test_parity_fails_when_the_export_differs(exported):
    model, folder = exported
    with pytest.raises(ExportError, match="disagree"):
        check_parity(
            lambda x: model(x, training=False).numpy() + 1e-3,
            folder / "saved_model",
            folder / "model.onnx",
            batches,
            "regression",
        )


def test_signature_check_names_the_mismatch(exported):
    _, folder = exported
    proto = onnx.load(str(folder / "model.onnx"))
    wrong = TensorSpec(name="houses", datatype="FP32", shape=[-1, 3])
    with pytest.raises(ExportError, match=r"graph inputs are \[\('features'"):
        check_signature(proto, [wrong], [OUTPUT], folder)
    with pytest.raises(ExportError, match="graph outputs"):
        check_signature(
            proto, [INPUT], [TensorSpec(name="price", datatype="FP32", shape=[-1, 2])], folder
        )


def test_parity_is_relative_for_outputs_above_one(tmp_path):
    """Prices near 1000 are exact to ~6e-5 in float32: the tolerance scales with them."""
    model, folder = export_model(tmp_path, offset=1000.0)

    def parity_with(shift: float):
        return check_parity(
            lambda x: model(x, training=False).numpy() + shift,
            folder / "saved_model",
            folder / "model.onnx",
            batches,
            "regression",
        )

    parity, _ = parity_with(5e-3)  # 5e-6 relative
    assert parity.max_abs_diff_onnx > 1e-5
    with pytest.raises(ExportError, match="disagree"):
        parity_with(2e-2)  # 2e-5 relative
