"""The served-accuracy benchmark (`python -m loadtest served_accuracy`): its calibration error on
hand-made cases, and a whole run on the synthetic dataset files against the committed models —
every test item answered, one row per model and version."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from loadtest.scenarios import served_accuracy
from loadtest.scenarios.served_accuracy import calibration_error


def test_calibration_error_is_the_gap_between_confidence_and_accuracy():
    top = np.array([0.9] * 10 + [0.6] * 10)
    right = np.array([True] * 9 + [False] + [True] * 6 + [False] * 4)
    assert calibration_error(top, right) == pytest.approx(0.0)
    overconfident = np.array([True] * 5 + [False] * 5 + [True] * 6 + [False] * 4)
    assert calibration_error(top, overconfident) == pytest.approx(0.5 * 0.4)


def test_a_run_on_the_synthetic_files_answers_every_test_item(
    synthetic_data_dir, tmp_path, monkeypatch
):
    out = tmp_path / "served_accuracy"
    argv = ["served_accuracy", "--data-dir", str(synthetic_data_dir), "--versions", "1",
            "--chunk", "7", "--out", str(out)]  # fmt: skip
    monkeypatch.setattr(sys, "argv", argv)
    served_accuracy.main()
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    assert [(r["model"], r["version"]) for r in results] == [("imdb", 1), ("reuters", 1)]
    assert results[0]["rows"] == 60  # the synthetic archive's test reviews
    for r in results:
        assert 0 <= r["served_accuracy"] <= 1
        assert 0 < r["mean_top_probability"] <= 1
    assert "served accuracy" in out.with_suffix(".md").read_text()
