"""Smoke test of the load test: `python -m loadtest locust --start-service` for a few seconds, every user
class answered, no failure.

Locust runs in its own process only: importing it (gevent's monkey-patching) into pytest, after
TensorFlow, crashes.
"""

from __future__ import annotations

import csv
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

from tests.needs import missing

REPO = Path(__file__).resolve().parents[2]
# The request names of the locustfile's user classes (all of them run: 13 users, 13 in weight).
REQUEST_NAMES = {
    "typed imdb",
    "typed reuters text",
    "typed reuters word_ids",
    "typed boston",
    "v2 boston",
    "v2 reuters",
    "v2 imdb",
    "v1 boston",
    "v1 reuters",
}

if importlib.util.find_spec("locust") is None:
    missing("locust is not installed (pip install -e '.[loadtest]')", "LOADTEST_REQUIRE_LOCUST")


def test_mixed_scenario_runs_every_class_without_failures(tmp_path):
    reports = tmp_path / "reports"
    command = [
        sys.executable, "-m", "loadtest", "locust", "--start-service",
        "--users", "13", "--spawn-rate", "13", "--run-time", "5s", "--reports", str(reports),
    ]  # fmt: skip
    result = subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=90,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    stats = {row["name"]: row for row in json.loads((reports / "summary.json").read_text("utf-8"))}
    assert set(stats) == REQUEST_NAMES | {"Aggregated"}, output[-4000:]
    for name in REQUEST_NAMES:
        assert stats[name]["requests"] > 0, name
        assert stats[name]["failures"] == 0, name
    with (reports / "locust_stats.csv").open(newline="", encoding="utf-8") as file:
        csv_rows = {row["Name"]: row for row in csv.DictReader(file)}
    assert set(csv_rows) == set(stats)
    assert all(row["Failure Count"] == "0" for row in csv_rows.values())
    assert (reports / "locust.html").stat().st_size > 0
