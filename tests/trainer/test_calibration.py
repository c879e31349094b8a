"""Temperature scaling and the expected calibration error, on cases worked out by hand."""

import numpy as np
import pytest

from trainer.calibration import calibration, fit_temperature


def test_ece_of_a_hand_made_binary_case():
    # top probabilities 0.9, 0.9 (one right, one wrong), 0.75 (right), 0.62 (wrong)
    outputs = np.array([[0.9], [0.9], [0.25], [0.62]])
    figures = calibration(outputs, np.array([1, 0, 0, 0]))
    assert figures["ece"] == pytest.approx(2 / 4 * 0.4 + 1 / 4 * 0.25 + 1 / 4 * 0.62)
    assert figures["mean_top_probability"] == pytest.approx((0.9 + 0.9 + 0.75 + 0.62) / 4)


def test_ece_of_softmax_rows_and_of_a_calibrated_bin():
    outputs = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    assert calibration(outputs, np.array([0, 1]), "_short") == pytest.approx(
        {"ece_short": 0.5 * 0.3 + 0.5 * 0.6, "mean_top_probability_short": 0.65}
    )
    # ten rows at 0.7, seven of them right: calibrated
    outputs = np.tile([[0.7, 0.3]], (10, 1))
    assert calibration(outputs, np.array([0] * 7 + [1] * 3))["ece"] == pytest.approx(0)


def nll(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    z = np.concatenate([np.zeros_like(logits), logits], 1) if logits.shape[1] == 1 else logits
    z = z / temperature
    z = z - z.max(1, keepdims=True)
    return float((np.log(np.exp(z).sum(1)) - z[np.arange(len(z)), labels]).mean())


@pytest.mark.parametrize("classes", [1, 5], ids=["sigmoid", "softmax"])
def test_the_temperature_is_the_one_the_labels_were_drawn_with(classes):
    rng = np.random.RandomState(0)
    logits = rng.normal(0, 3, (100_000, classes))
    z = np.concatenate([np.zeros_like(logits), logits], 1) if classes == 1 else logits
    p = np.exp(z / 2.0)
    p /= p.sum(1, keepdims=True)
    labels = (rng.rand(len(p), 1) > p.cumsum(1)).sum(1)  # drawn from softmax(z / 2)
    temperature = fit_temperature(logits, labels)
    assert temperature == pytest.approx(2.0, rel=0.03)
    best = nll(logits, labels, temperature)
    assert best < nll(logits, labels, temperature * 1.02)
    assert best < nll(logits, labels, temperature / 1.02)
