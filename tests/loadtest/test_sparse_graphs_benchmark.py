"""The sparse-graph benchmark (`python -m loadtest sparse_graphs`), the real command for a tenth of
a second per point: every way of writing the IMDB network's first layer as a gather-and-sum
answers what the dense graph answers, at today's vocabulary and at a ten times wider one. No
timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_sparse_forms_answer_as_the_dense_graph(tmp_path):
    out = tmp_path / "sparse_graphs"
    command = [sys.executable, "-m", "loadtest", "sparse_graphs", "--rounds", "1", "--duration",
               "0.05", "--vocabularies", "50000", "500000", "--batches", "1", "3",
               "--out", str(out)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    results = json.loads(out.with_suffix(".json").read_text())["results"]
    forms = {(r["form"], r["vocabulary"], r["batch"]) for r in results}
    assert len(forms) == len(results) == 2 * (1 + 4 * 2)  # dense at 50,000 only; 4 sparse × 2
    for r in results:
        assert r["max_abs_diff"] <= 1e-5, r
        assert r["us_per_row"] > 0, r
    assert "gather-matmul" in out.with_suffix(".md").read_text()
