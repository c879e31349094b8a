"""The settings benchmark (`python -m loadtest settings`), the real command for a second
per run: both services measured at the point, each with its own settings, a report. No timing
assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.usefixtures("wrk")
def test_the_settings_benchmark_compares_two_services(tmp_path):
    out = tmp_path / "settings"
    command = [sys.executable, "-m", "loadtest", "settings",
               "--a", "SERVICE_INTRA_OP_THREADS=2", "--points", "boston:v2:4",
               "--rounds", "1", "--duration", "1", "--warmup", "1", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    (point,) = json.loads(out.with_suffix(".json").read_text())["results"]
    assert (point["model"], point["endpoint"], point["concurrency"]) == ("boston", "v2", 4)
    for server in ("a", "b"):
        assert point[server]["rps"] > 0, server
        assert point[server]["cpu_ms"] > 0, server
        assert point[server]["errors"] == 0, server
    text = out.with_suffix(".md").read_text()
    assert "A: `SERVICE_INTRA_OP_THREADS=2`; B: the defaults" in text
    # Each service really ran with its own settings: their start-up lines say so.
    logs = out.parent / "settings-work"
    assert "2 intra-op threads" in (logs / "a.log").read_text()
    assert "1 intra-op threads" in (logs / "b.log").read_text()
