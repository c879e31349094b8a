"""The intra-op threads benchmark (`python -m loadtest threads`), the real command for a
moment per point: every model, batch size and thread count measured, a report. No timing
assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_threads_benchmark_runs(tmp_path):
    out = tmp_path / "threads"
    command = [sys.executable, "-m", "loadtest", "threads", "--batches", "1", "4",
               "--duration", "0.05", "--rounds", "1", "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    measured = {(r["model"].split("/")[0], r["batch"], r["threads"]) for r in results}
    assert measured == {(m, b, t) for m in ("boston", "imdb", "reuters") for b in (1, 4)
                        for t in (1, 2)}  # fmt: skip
    assert all(r["wall_us"] > 0 and r["cpu_us"] > 0 for r in results)
    text = out.with_suffix(".md").read_text()
    boston = next(r["model"] for r in results if r["model"].startswith("boston/"))
    assert f"| {boston} | 4 | 2 |" in text
    assert "## Machine" in text
