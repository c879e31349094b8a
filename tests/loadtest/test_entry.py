"""`python -m loadtest`: the one entry point lists every benchmark of `loadtest/scenarios/` and
runs each with its own options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from loadtest.__main__ import benchmarks
from tests.service.support import REPO

EXPECTED = {
    "benchmark", "dataplane", "grpc", "locust", "memory", "before_after", "profile_service",
    "protocols", "samples", "served_accuracy", "settings", "sparse_graphs", "sparse_serving", "startup", "threads", "tracing", "trainer",
}  # fmt: skip


def loadtest(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "loadtest", *args],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_help_lists_every_benchmark():
    assert set(benchmarks()) == EXPECTED
    result = loadtest("--help")
    assert result.returncode == 0, result.stderr
    listed = {line.split()[0] for line in result.stdout.splitlines() if line.startswith("  ")}
    assert listed == EXPECTED


def test_no_benchmark_or_an_unknown_one_is_a_usage_error():
    assert loadtest().returncode == 2
    result = loadtest("nonesuch")
    assert result.returncode == 2
    assert "unknown benchmark 'nonesuch'" in result.stderr


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_each_benchmark_runs_with_its_own_options(name):
    """`--help` reaches the benchmark's own parser, which names the command people type."""
    result = loadtest(name, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m loadtest {name}"), result.stdout[:200]
