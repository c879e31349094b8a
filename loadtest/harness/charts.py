"""The benchmark's charts: requests per second and p99 latency against concurrency, a panel per
model, a line per series (colour) and endpoint (line style)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from loadtest.harness.report import Results
from loadtest.harness.targets import ENDPOINTS, SERIES

COLOURS = {"off": "tab:blue", "on": "tab:orange", "workers2": "tab:green", "floor": "tab:gray",
           "plain": "tab:purple", "naive": "tab:red"}  # fmt: skip
LINES = {"typed": "-", "v2": "--", "v2-32": ":", "binary": "-."}
LIMIT_LINES = {"run": ":", "encode + run": "-."}
METRICS = {"rps": lambda p: p.rps, "p99_ms": lambda p: p.p99_ms}


def chart(results: Results, metric: str, title: str, path: Path) -> None:
    """One panel per model: `metric` ("rps" or "p99_ms") against concurrency; the throughput
    chart also draws the compute limits."""
    settings, points = results.settings, results.points
    models, concurrency = settings["models"], settings["concurrency"]
    figure, axes = plt.subplots(
        1, len(models), figsize=(max(7, 6 * len(models)), 6), squeeze=False, sharey=True,
        layout="constrained",
    )  # fmt: skip
    for axis, model in zip(axes[0], models, strict=True):
        for series, colour in COLOURS.items():
            for endpoint, line in LINES.items():
                found = sorted((p.concurrency, METRICS[metric](p)) for p in points
                               if (p.series, p.model, p.endpoint) == (series, model, endpoint))  # fmt: skip
                if found:
                    axis.plot(*zip(*found, strict=True), line, color=colour, marker="o",
                              label=f"{SERIES[series]}, {ENDPOINTS[endpoint]}")  # fmt: skip
        if metric == "rps":
            for row in results.compute_limit:
                if row.model == model:
                    axis.axhline(row.rps, color="black", linewidth=1,
                                 linestyle=LIMIT_LINES[row.kind],
                                 label=f"compute limit, {row.kind}")  # fmt: skip
        axis.set_xscale("log", base=2)
        axis.set_xticks(concurrency, [str(c) for c in concurrency])
        axis.set_yscale("log")
        axis.grid(True, which="both", alpha=0.3)
        axis.set_title(model)
        axis.set_xlabel("concurrent connections (c)")
    axes[0][0].set_ylabel(f"{title}, log scale")
    legend = {}
    for axis in axes[0]:
        legend.update(zip(*reversed(axis.get_legend_handles_labels()), strict=True))
    figure.legend(legend.values(), legend.keys(), loc="outside lower center",
                  ncol=2 * len(models), fontsize=8)  # fmt: skip
    figure.suptitle(f"{title} against concurrency (wrk, {settings['duration']} s per point)")
    figure.savefig(path, dpi=110)
    plt.close(figure)


def charts(results: Results, folder: Path) -> None:
    chart(results, "rps", "requests per second", folder / "throughput.png")
    chart(results, "p99_ms", "p99 latency (ms)", folder / "latency.png")
