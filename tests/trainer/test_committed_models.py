"""The committed model repository: every version is complete, and its recorded test metrics are
what its ONNX graph really scores on the real test set."""

import pytest

from service.repository import list_versions, read_config
from tests.conftest import MODELS
from trainer import pipeline

VERSIONS = [(name, v) for name, versions in list_versions(MODELS).items() for v in versions]


def test_the_repository_holds_all_three_models():
    assert {"imdb", "reuters", "boston"} <= {name for name, _ in VERSIONS}


@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_each_version_reads_and_names_its_graph_io(name, version):
    from trainer.export import onnx_session

    folder = MODELS / name / str(version)
    config = read_config(folder)
    session = onnx_session(folder / "model.onnx")
    assert [(i.name, i.shape[1]) for i in session.get_inputs()] == [
        (s.name, s.shape[1]) for s in config.inputs
    ]
    assert [o.name for o in session.get_outputs()] == [s.name for s in config.outputs]
    assert (folder / "saved_model" / "saved_model.pb").is_file()
    assert (folder / "curves.png").is_file()


@pytest.mark.real_data
@pytest.mark.parametrize(("name", "version"), VERSIONS)
def test_evaluate_reproduces_the_committed_test_metrics(real_data_dir, name, version):
    config, metrics = pipeline.evaluate(name, version, data_dir=real_data_dir, models_dir=MODELS)
    assert metrics == pytest.approx(config.metrics.test, abs=1e-4)


BEST_TARGETS = {
    "imdb": ("accuracy", 0.900),
    "reuters": ("accuracy", 0.815),
    "boston": ("mae", 2.35),
}


@pytest.mark.parametrize("name", sorted(BEST_TARGETS))
def test_newest_best_models_meet_the_targets(name):
    newest = max(v for n, v in VERSIONS if n == name)
    config = read_config(MODELS / name / str(newest))
    assert config.training.recipe == "best"
    metric, target = BEST_TARGETS[name]
    value = config.metrics.test[metric]
    assert value <= target if metric == "mae" else value >= target
