"""Learning curves: loss and metric per epoch of a version's validation runs, for `curves.png`."""

from __future__ import annotations

import matplotlib
import numpy as np

from trainer.fit import Fitted

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator


def plot_curves(fitted: Fitted, metric: str, title: str, path) -> None:
    """Loss and metric per epoch, training vs validation (the mean over folds for K-fold), and the
    epoch count the final model was trained for."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for axis, name in zip(axes, ("loss", metric), strict=True):
        for prefix, label, style in (("", "training", "-"), ("val_", "validation", "--")):
            values = np.mean([h[prefix + name] for h in fitted.histories], axis=0)
            axis.plot(np.arange(1, len(values) + 1), values, style, label=label)
        axis.axvline(fitted.epochs, color="grey", linewidth=0.8, label=f"chosen: {fitted.epochs}")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.set_xlabel("epoch")
        axis.set_ylabel(name)
        axis.grid(alpha=0.3)
        axis.legend()
    suffix = f" (mean of {len(fitted.histories)} folds)" if len(fitted.histories) > 1 else ""
    figure.suptitle(title + suffix)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
