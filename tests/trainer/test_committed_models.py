"""The committed model repository: every version is complete, and its recorded test metrics are
what its ONNX graph really scores on the real test set."""

import pytest

from contract.config import list_versions, read_config
from tests.conftest import MODELS
from trainer import boston, evaluate, imdb, reuters

VERSIONS = [(name, v) for name, versions in list_versions(MODELS).items() for v in versions]


def test_the_repository_holds_all_three_models():
    assert {"imdb", "reuters", "boston"} <= {name for name, _ in VERSIONS}


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_each_version_reads_and_names_its_graph_io(name, version):
    folder = MODELS / name / str(version)
    config = read_config(folder)
    session = evaluate.onnx_session(folder / "model.onnx")
    # onnxruntime names a dimension of any size (a sparse model's ids per row): the config's -1
    assert [
        (i.name, i.shape[1] if isinstance(i.shape[1], int) else -1) for i in session.get_inputs()
    ] == [(s.name, s.shape[1]) for s in config.inputs]
    assert [o.name for o in session.get_outputs()] == [s.name for s in config.outputs]
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "curves.png").is_file()


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_evaluate_reproduces_the_committed_test_metrics(real_data_dir, name, version):
    config, metrics = evaluate.evaluate(name, version, data_dir=real_data_dir, models_dir=MODELS)
    assert metrics == pytest.approx(config.metrics.test, abs=1e-4)


@pytest.mark.parametrize("module", [imdb, reuters, boston], ids=lambda m: m.__name__)
def test_newest_models_meet_their_recipes_targets(module):
    name = module.__name__.rsplit(".", 1)[-1]
    newest = max(v for n, v in VERSIONS if n == name)
    config = read_config(MODELS / name / str(newest))
    value = config.metrics.test[module.METRIC]
    target = module.TARGETS[config.training.recipe]
    assert value <= target if module.METRIC == "mae" else value >= target
