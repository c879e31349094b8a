"""The memory benchmark (`python -m loadtest memory`) at CI's size: every kind of the
largest legal request, eight at once, against a real server. Each is answered with a documented
status (none reset), and the worker's peak resident memory stays under the ceiling that the
full benchmark (up to 150 at once) reports on; idle again, it is back near its size before."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CEILING_MIB = 400
IDLE_GROWTH_MIB = 10
KINDS = {
    "v2-json", "v2-binary", "v2-json-gzip", "v2-binary-gzip", "typed-texts", "typed-word-ids",
    "v1", "grpc-raw", "grpc-typed", "headers-oversized", "headers-trickled",
}  # fmt: skip


def test_every_kind_of_largest_request_stays_under_the_ceiling(tmp_path):
    report = tmp_path / "memory.md"
    command = [sys.executable, "-m", "loadtest", "memory", "--concurrency", "8",
               "--report", str(report)]  # fmt: skip
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-4000:]
    record = json.loads(report.with_suffix(".json").read_text())
    points = record["points"]
    assert {p["kind"] for p in points} == KINDS
    for point in points:
        expected = {"headers-oversized": "431"}.get(point["kind"], "200")
        if point["kind"].startswith("grpc"):
            expected = "OK"
        assert point["statuses"] == {expected: 8}, point
        assert point["peak"] < CEILING_MIB, point
    assert "| typed-word-ids |" in report.read_text()
    # idle again, the worker gives back what the requests used (the heap's free pages)
    assert record["end_mib"] < record["idle_mib"] + IDLE_GROWTH_MIB, record
