"""How far a classifier's probabilities can be trusted: temperature scaling (Guo et al., 2017)
fitted on held-out rows, and the expected calibration error. NumPy only: `trainer evaluate`
recomputes the figures without TensorFlow."""

from __future__ import annotations

import numpy as np

BINS = 15  # equal-width bins of the top probability, as Guo et al. count them
SHORT_WORDS = 20  # "short texts": each test text cut to its first words


def labels_of(y: np.ndarray) -> np.ndarray:
    """Class indices of training targets: 0/1 floats (binary), indices, or one-hot rows."""
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return y.argmax(axis=1)
    return (y.reshape(-1) > 0.5).astype(np.int64) if y.dtype.kind == "f" else y.reshape(-1)


def _as_classes(logits: np.ndarray) -> np.ndarray:
    """A sigmoid's logit z is the two-class softmax of (0, z)."""
    logits = np.asarray(logits, np.float64)
    return np.concatenate([np.zeros_like(logits), logits], 1) if logits.shape[1] == 1 else logits


def fit_temperature(logits: np.ndarray, labels: np.ndarray, steps: int = 50) -> float:
    """The T > 0 that minimises the mean cross-entropy of softmax(logits / T) (sigmoid for one
    column) on these rows. Newton's method on 1/T: the loss is convex in it, with derivative
    mean(E_p[z] - z_label) and second derivative mean(Var_p[z])."""
    z = _as_classes(logits)
    z_label = z[np.arange(len(z)), labels]
    inverse = 1.0
    for _ in range(steps):
        scaled = inverse * z
        p = np.exp(scaled - scaled.max(axis=1, keepdims=True))
        p /= p.sum(axis=1, keepdims=True)
        expected = (p * z).sum(axis=1)
        slope = (expected - z_label).mean()
        curvature = max(((p * z * z).sum(axis=1) - expected**2).mean(), 1e-12)
        step = slope / curvature
        inverse = max(inverse - step, inverse / 10)  # never through 0
        if abs(step) < 1e-9 * inverse:
            break
    return float(1 / inverse)


def top_probabilities(outputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the predicted class, its probability) of each row: a sigmoid column is two classes."""
    outputs = np.asarray(outputs, np.float64)
    if outputs.shape[1] == 1:
        p = outputs[:, 0]
        return (p > 0.5).astype(np.int64), np.maximum(p, 1 - p)
    return outputs.argmax(axis=1), outputs.max(axis=1)


def calibration(outputs: np.ndarray, labels: np.ndarray, suffix: str = "") -> dict[str, float]:
    """Expected calibration error (`BINS` equal-width bins (lo, hi] of the top probability: the
    rows' share in each bin × |its accuracy - its mean top probability|, summed) and the mean
    top probability."""
    predicted, top = top_probabilities(outputs)
    correct = predicted == np.asarray(labels).reshape(-1)
    bins = np.clip(np.ceil(top * BINS).astype(np.int64) - 1, 0, BINS - 1)
    gap = np.bincount(bins, correct - top, minlength=BINS)  # Σ (correct - top) per bin
    return {
        f"ece{suffix}": float(np.abs(gap).sum() / len(top)),
        f"mean_top_probability{suffix}": float(top.mean()),
    }
