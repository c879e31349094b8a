"""The protocols benchmark (`python -m loadtest protocols`), the real command for a second per
point: every point measured, no errors, a report. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.harness.payloads import rows, tensors

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("wrk")
def test_the_protocols_benchmark_runs(tmp_path):
    out = tmp_path / "protocols"
    command = [sys.executable, "-m", "loadtest", "protocols",
               "--rounds", "1", "--duration", "1", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    points = json.loads(out.with_suffix(".json").read_text())["points"]
    for model in ("imdb", "boston"):
        for kind in ("json", "binary"):
            point = points[model][kind]
            assert point["rps"] > 0, (model, kind)
            assert point["errors"] == 0, (model, kind)
    first_row = tensors("imdb", rows("imdb")[:1])  # a dense row, or a sparse one's ids
    assert points["imdb"]["binary"]["body_bytes"] > sum(a.nbytes for a in first_row.values())
    text = out.with_suffix(".md").read_text()
    assert "Binary ÷ JSON: IMDB" in text
