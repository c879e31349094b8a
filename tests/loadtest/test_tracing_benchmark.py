"""The tracing benchmark (`python -m loadtest tracing`), the real command for a second per
service: off, on and the code before, each measured without errors; spans exported only where
tracing is on. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("wrk")
def test_the_tracing_benchmark_runs(tmp_path):
    out = tmp_path / "tracing"
    command = [sys.executable, "-m", "loadtest", "tracing", "--rounds", "1",
               "--duration", "1", "--warmup", "1", "--before", "HEAD", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    points = json.loads(out.with_suffix(".json").read_text())["points"]
    assert set(points) == {"off", "on", "before (HEAD)"}
    for name, point in points.items():
        assert point["rps"] > 0, name
        assert point["errors"] == 0, name
    assert points["off"]["spans"] == 0
    assert points["before (HEAD)"]["spans"] == 0
    # a request's 4 spans (request, decode, queue, inference), warm-up requests' too: none dropped
    assert points["on"]["spans"] >= 4 * points["on"]["requests"] > 0
    assert "server CPU ms/request" in out.with_suffix(".md").read_text()
