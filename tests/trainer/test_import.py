"""`trainer import`: a model made elsewhere (a Keras file, a SavedModel folder, an ONNX graph)
published as a new version whose config is read from its graph; anything wrong publishes nothing.

The Keras and SavedModel tests convert with TensorFlow, as `trainer train` does (a few seconds
each); the ONNX ones do not import it."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import textwrap
import warnings

import numpy as np
import pytest
from onnx import TensorProto, helper, save_model

from contract.config import TensorSpec, list_versions, read_config
from trainer import export
from trainer.cli import EXIT_EXPORT, EXIT_REPOSITORY, EXIT_USAGE, main
from trainer.evaluate import onnx_session

IDS = TensorSpec(name="ids", datatype="INT64", shape=[-1, 3])
FLAG = TensorSpec(name="flag", datatype="BOOL", shape=[-1, 1])


def two_headed_model():
    """Two inputs (INT64 ids through an Embedding of 5, a BOOL flag cast to float), two heads."""
    import keras

    keras.utils.set_random_seed(0)
    ids = keras.Input((3,), dtype="int64", name="ids")
    flag = keras.Input((1,), dtype="bool", name="flag")
    words = keras.layers.Flatten()(keras.layers.Embedding(5, 2)(ids))
    hidden = keras.layers.Concatenate()([words, keras.ops.cast(flag, "float32")])
    score = keras.layers.Dense(1, name="score")(hidden)
    probs = keras.layers.Dense(2, activation="softmax", name="probs")(hidden)
    return keras.Model([ids, flag], [score, probs])


def rows(count: int = 7) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {
        "ids": rng.integers(0, 5, (count, 3)).astype(np.int64),
        "flag": rng.random((count, 1)) < 0.5,
    }


def keras_answers(model, feeds) -> dict[str, np.ndarray]:
    score, probs = model([feeds["ids"], feeds["flag"]], training=False)
    return {"score": np.asarray(score), "probs": np.asarray(probs)}


def onnx_answers(folder, feeds) -> dict[str, np.ndarray]:
    session = onnx_session(folder / "model.onnx")
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def model():
    return two_headed_model()


@pytest.fixture(scope="module")
def keras_file(model, tmp_path_factory):
    path = tmp_path_factory.mktemp("source") / "pair.keras"
    with warnings.catch_warnings():  # Keras's own saving, under NumPy 2
        warnings.filterwarnings("ignore", "__array__ implementation", DeprecationWarning)
        model.save(path)
    return path


@pytest.fixture(scope="module")
def keras_import(keras_file, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    assert main(["import", str(keras_file), "--name", "pair", "--models-dir", str(models)]) == 0
    return models


def test_a_keras_file_is_exported_as_trained_models_are(model, keras_file, keras_import):
    folder = keras_import / "pair" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.onnx", "saved_model"]
    config = read_config(folder)
    assert config.inputs == [IDS, FLAG]
    assert {o.name: (o.datatype, o.shape) for o in config.outputs} == {
        "score": ("FP32", [-1, 1]),
        "probs": ("FP32", [-1, 2]),
    }
    none = (config.task, config.training, config.metrics, config.gate, config.labels)
    assert none == (None, None, None, None, None)
    assert config.export.opset == export.OPSET
    assert config.export.parity_rows == 32  # made-up rows: ids 0-4 fit the Embedding of 5
    assert config.export.max_abs_diff_onnx <= 1e-5
    assert config.imported.format == "keras"
    assert config.imported.file == "pair.keras"
    assert config.imported.sha256 == sha256(keras_file)
    assert (config.imported.seed, config.imported.rows_file) == (0, None)
    assert "| pair | 1 | imported: pair.keras |" in (keras_import / "README.md").read_text()

    feeds = rows()
    expected = keras_answers(model, feeds)
    for name, answer in onnx_answers(folder, feeds).items():
        np.testing.assert_allclose(answer, expected[name], rtol=0, atol=1e-5)


def test_the_keras_files_saved_model_serves_its_outputs_by_name(model, keras_import):
    import tensorflow as tf

    loaded = tf.saved_model.load(str(keras_import / "pair" / "1" / "saved_model"))
    feeds = rows()
    answer = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in feeds.items()})
    expected = keras_answers(model, feeds)
    assert sorted(answer) == ["probs", "score"]
    for name, value in answer.items():
        np.testing.assert_allclose(value.numpy(), expected[name], rtol=0, atol=1e-5)


def test_a_saved_model_folder_is_converted_and_checked_on_the_rows_given(model, tmp_path):
    """Keras's own export (outputs output_0, output_1), checked on the user's rows: ids given as
    int32 are cast to the input's INT64."""
    source = tmp_path / "exported"
    model.export(str(source), verbose=False)
    given = tmp_path / "rows.npz"
    feeds = rows(9)
    np.savez(given, ids=feeds["ids"].astype(np.int32), flag=feeds["flag"])
    models = tmp_path / "models"
    argv = ["import", str(source), "--name", "pair", "--models-dir", str(models)]
    assert main([*argv, "--rows", str(given), "--version", "3"]) == 0

    folder = models / "pair" / "3"
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    config = read_config(folder)
    assert sorted(config.inputs, key=lambda s: s.name) == [FLAG, IDS]
    assert [(o.name, o.datatype, o.shape) for o in config.outputs] == [
        ("output_0", "FP32", [-1, 1]),
        ("output_1", "FP32", [-1, 2]),
    ]
    assert config.export.parity_rows == 9
    assert config.imported.format == "saved_model"
    assert config.imported.rows_file == {"rows.npz": sha256(given)}
    assert config.imported.seed is None
    expected = keras_answers(model, feeds)
    answers = onnx_answers(folder, feeds)
    np.testing.assert_allclose(answers["output_0"], expected["score"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(answers["output_1"], expected["probs"], rtol=0, atol=1e-5)


def test_a_parity_failure_exits_4_and_publishes_nothing(keras_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(export, "TOLERANCE", -1.0)  # no difference is small enough
    argv = ["import", str(keras_file), "--name", "pair", "--models-dir", str(tmp_path)]
    assert main(argv) == EXIT_EXPORT
    assert "the exported models disagree with Keras on the rows checked" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def tiny_graph(offset: float = 1.0):
    """FP16 x and UINT8 pixels, symbolic batch: x + offset (FP16) and the pixels as FP32."""
    graph = helper.make_graph(
        [
            helper.make_node("Add", ["x", "offset"], ["shifted"]),
            helper.make_node("Cast", ["pixels"], ["levels"], to=TensorProto.FLOAT),
        ],
        "tiny",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT16, ["batch", 3]),
            helper.make_tensor_value_info("pixels", TensorProto.UINT8, ["batch", 2, 2]),
        ],
        [
            helper.make_tensor_value_info("shifted", TensorProto.FLOAT16, ["batch", 3]),
            helper.make_tensor_value_info("levels", TensorProto.FLOAT, ["batch", 2, 2]),
        ],
        [helper.make_tensor("offset", TensorProto.FLOAT16, [1], [offset])],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    proto.ir_version = 8
    return proto


@pytest.fixture
def onnx_file(tmp_path):
    path = tmp_path / "tiny.onnx"
    save_model(tiny_graph(), str(path))
    return path


def import_onnx(path, models, *extra: str) -> int:
    return main(["import", str(path), "--name", "tiny", "--models-dir", str(models), *extra])


def test_an_onnx_graph_is_published_as_it_is(onnx_file, tmp_path, capsys):
    models = tmp_path / "models"
    extra = ("--labels", "low,high", "--description", "A tiny graph")
    assert import_onnx(onnx_file, models, *extra) == 0
    folder = models / "tiny" / "1"
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.onnx"]
    assert (folder / "model.onnx").read_bytes() == onnx_file.read_bytes()
    config = read_config(folder)
    assert config.inputs == [
        TensorSpec(name="x", datatype="FP16", shape=[-1, 3]),
        TensorSpec(name="pixels", datatype="UINT8", shape=[-1, 2, 2]),
    ]
    assert config.outputs == [
        TensorSpec(name="shifted", datatype="FP16", shape=[-1, 3]),
        TensorSpec(name="levels", datatype="FP32", shape=[-1, 2, 2]),
    ]
    assert (config.labels, config.description) == (["low", "high"], "A tiny graph")
    assert (config.task, config.export, config.training) == (None, None, None)
    assert config.imported.format == "onnx"
    assert config.imported.sha256 == sha256(onnx_file)
    assert config.imported.checked_rows == 32
    out = capsys.readouterr().out
    assert "tiny/1: published" in out
    assert "onnxruntime loaded it and ran it on 32 made-up rows (seed 0)" in out
    assert "no metric comparison: an imported model has no test set" in out
    assert json.loads((folder / "config.json").read_text())["task"] is None


def test_an_onnx_import_never_imports_tensorflow(onnx_file, tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from trainer.cli import main
        code = main(["import", {str(onnx_file)!r}, "--name", "tiny", "--models-dir",
                     {str(tmp_path / "models")!r}])
        print(code, sorted(m for m in ("tensorflow", "keras", "tf2onnx") if m in sys.modules))
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert result.stdout.splitlines()[-1] == "0 []", result.stderr
    assert list_versions(tmp_path / "models") == {"tiny": [1]}


def test_an_existing_version_is_never_overwritten(onnx_file, tmp_path, capsys):
    models = tmp_path / "models"
    assert import_onnx(onnx_file, models, "--version", "1") == 0
    published = (models / "tiny" / "1" / "model.onnx").read_bytes()
    other = tmp_path / "other.onnx"
    save_model(tiny_graph(offset=2.0), str(other))

    assert import_onnx(other, models, "--version", "1") == EXIT_REPOSITORY
    assert "exists; versions are never overwritten" in capsys.readouterr().err
    assert (models / "tiny" / "1" / "model.onnx").read_bytes() == published
    assert import_onnx(other, models) == 0  # the next free version
    assert sorted(p.name for p in (models / "tiny").iterdir()) == ["1", "2"]
    assert (models / "tiny" / "2" / "model.onnx").read_bytes() == other.read_bytes()


@pytest.mark.parametrize("name", ["Tiny", "1tiny", "ti ny", "tiny/2", ""])
def test_a_bad_name_exits_2(onnx_file, tmp_path, capsys, name):
    with pytest.raises(SystemExit) as exit_:
        main(["import", str(onnx_file), "--name", name, "--models-dir", str(tmp_path / "m")])
    assert exit_.value.code == EXIT_USAGE
    assert "argument --name: must match ^[a-z][a-z0-9_-]*$" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize(
    ("arrays", "message"),
    [
        (
            {"x": np.zeros((4, 3), np.float16), "pixel": np.zeros((4, 2, 2), np.uint8)},
            "'pixel' is not an input of the model; no array for the input 'pixels' "
            "(the model's inputs: x, pixels)",
        ),
        (
            {"x": np.zeros((4, 5), np.float16), "pixels": np.zeros((4, 2, 2), np.uint8)},
            "'x' has shape [4, 5]; the model's input takes [-1, 3] (-1: any size)",
        ),
        (
            {"x": np.zeros((4, 3), np.float16), "pixels": np.zeros((4, 2, 2), np.float32)},
            "'pixels' holds float32; the model's input takes UINT8",
        ),
        (
            {"x": np.zeros((4, 3), np.float16), "pixels": np.zeros((5, 2, 2), np.uint8)},
            "the arrays have different numbers of rows: {'x': 4, 'pixels': 5}",
        ),
    ],
    ids=["name", "shape", "datatype", "rows"],
)
def test_rows_that_do_not_fit_the_inputs_exit_2_naming_them(
    onnx_file, tmp_path, capsys, arrays, message
):
    given = tmp_path / "rows.npz"
    np.savez(given, **arrays)
    models = tmp_path / "models"
    assert import_onnx(onnx_file, models, "--rows", str(given)) == EXIT_USAGE
    assert capsys.readouterr().err == f"trainer: error: {given} (--rows): {message}\n"
    assert list(models.iterdir()) == []  # not even the model's folder


def test_rows_that_fit_are_run(onnx_file, tmp_path, capsys):
    given = tmp_path / "rows.npz"
    np.savez(given, x=np.ones((5, 3), np.float32), pixels=np.zeros((5, 2, 2), np.uint8))
    assert import_onnx(onnx_file, tmp_path / "models", "--rows", str(given)) == 0
    assert f"ran it on 5 rows of {given}" in capsys.readouterr().out


def test_a_missing_or_unreadable_source_publishes_nothing(tmp_path, capsys):
    models = tmp_path / "models"
    assert import_onnx(tmp_path / "absent.onnx", models) == EXIT_USAGE
    assert f"{tmp_path / 'absent.onnx'} does not exist" in capsys.readouterr().err
    notes = tmp_path / "notes.txt"
    notes.write_text("not a model")
    assert import_onnx(notes, models) == EXIT_USAGE
    assert "SOURCE is a Keras model file (.keras), a SavedModel folder" in capsys.readouterr().err
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not a graph")
    assert import_onnx(broken, models) == EXIT_EXPORT
    assert f"{broken} cannot be loaded by onnxruntime" in capsys.readouterr().err
    assert not models.exists() or list(models.iterdir()) == []


def test_an_unreadable_keras_file_exits_4(tmp_path, capsys):
    broken = tmp_path / "broken.keras"
    broken.write_bytes(b"not a zip")
    assert (
        main(["import", str(broken), "--name", "b", "--models-dir", str(tmp_path / "m")])
        == EXIT_EXPORT
    )
    assert f"{broken} cannot be read as a Keras model" in capsys.readouterr().err
    assert list((tmp_path / "m").iterdir()) == []
