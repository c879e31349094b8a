"""The benchmark (`loadtest/benchmark.py`): the real command with tiny settings, and its pure helpers
on small inputs. No timing assertions: the numbers depend on the machine.

The command needs wrk (Debian: `apt-get install wrk`); without it those tests skip and say why,
unless LOADTEST_REQUIRE_WRK=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from loadtest import benchmark
from tests.needs import missing

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def wrk():
    if shutil.which("wrk") is None:
        missing("wrk is not installed (Debian: apt-get install wrk)", "LOADTEST_REQUIRE_WRK")


def run_benchmark(out: Path, *options: str) -> dict:
    command = [sys.executable, str(REPO / "loadtest" / "benchmark.py"), *options, "--out", str(out)]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for name in ("results.json", "throughput.png", "latency.png"):
        assert (out / "benchmark" / name).is_file(), name
    for name in ("throughput.png", "latency.png"):
        assert (out / "benchmark" / name).read_bytes().startswith(PNG_SIGNATURE), name
    return json.loads((out / "benchmark" / "results.json").read_text("utf-8"))


@pytest.mark.slow
@pytest.mark.usefixtures("wrk")
def test_benchmark_measures_every_target_without_errors(tmp_path):
    results = run_benchmark(
        tmp_path, "--models", "boston", "--concurrency", "1", "8", "--duration", "1",
        "--warmup", "0", "--no-soak",
    )  # fmt: skip
    points = results["points"]
    measured = {(p["target"], p["batching"], p["endpoint"], p["concurrency"]) for p in points}
    service = {("service", b, e, c) for b in ("off", "on") for e in ("typed", "v2") for c in (1, 8)}
    floor = {("floor", None, e, c) for e in ("typed", "v2") for c in (1, 8)}
    naive = {("naive", None, "v2", c) for c in (1, 8)}
    assert measured == service | floor | naive
    assert len(points) == len(measured)
    for p in points:
        assert p["requests"] > 0, p
        assert benchmark.error_count(p) == 0, p
        assert p["client_cpu_s"] > 0, p
        assert p["server_cpu_s"] > 0, p
    assert [row["kind"] for row in results["compute_limit"]] == ["run"]
    assert {t["target"] for t in results["targets"]} == {"a", "b", "c", "d"}
    report = (tmp_path / "benchmark.md").read_text("utf-8")
    for heading in ("## Machine", "## The load generator: wrk", "## HTTP points",
                    "## Compute limit", "## Ratios", "## Targets", "## Soak"):  # fmt: skip
        assert heading in report, heading
    assert "benchmark/throughput.png" in report
    assert "benchmark/latency.png" in report
    assert results["command"] in report


@pytest.mark.slow
@pytest.mark.usefixtures("wrk")
def test_soak_reloads_every_model_under_load(tmp_path):
    results = run_benchmark(
        tmp_path, "--models", "boston", "--concurrency", "8", "--duration", "1", "--warmup", "1",
        "--no-naive", "--soak-time", "10", "--service-checkout", str(REPO),
    )  # fmt: skip
    assert results["service_code"].startswith("commit ")  # the checkout the service ran from
    assert results["settings"]["service_checkout"] == str(REPO)
    soak = results["soak"]
    assert soak["passed"], soak
    assert {r["model"] for r in soak["reloads"]} == {"boston", "imdb", "reuters"}
    assert all(r["status"] == 200 for r in soak["reloads"])
    assert soak["total"]["requests"] > 0
    assert soak["total"]["failures"] == 0
    assert soak["locust_cpu_s"] > 0
    assert (tmp_path / "soak" / "locust.html").is_file()
    (target_d,) = [t for t in results["targets"] if t["target"] == "d"]
    assert target_d["status"] == "PASS"


WRK_LINE = {"requests": 2000, "duration_us": 2_000_000, "bytes": 1, "connect_errors": 0,
            "read_errors": 1, "write_errors": 0, "status_errors": 2, "timeouts": 0,
            "p50_us": 1500, "p95_us": 3000, "p99_us": 4000, "max_us": 9000, "mean_us": 1700.5}  # fmt: skip


def test_parse_wrk_reads_the_json_line_after_wrks_summary():
    output = "Running 2s test @ http://127.0.0.1:1\n  1 threads and 8 connections\n"
    output += "Requests/sec: 1000.00\n" + json.dumps(WRK_LINE) + "\n"
    assert benchmark.parse_wrk(output) == WRK_LINE
    with pytest.raises(ValueError, match="no result line"):
        benchmark.parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_summarize_wrk_gives_rps_milliseconds_and_errors():
    summary = benchmark.summarize_wrk(WRK_LINE)
    assert summary["rps"] == 1000
    assert summary["p50_ms"] == 1.5
    assert summary["p99_ms"] == 4
    assert summary["mean_ms"] == 1.7005
    assert summary["errors"]["status_errors"] == 2
    assert summary["error_total"] == 3


def test_busy_percent_counts_everything_but_idle_and_iowait():
    times = namedtuple("times", "user system idle iowait")
    assert benchmark.busy_percent(times(1, 1, 6, 0), times(4, 2, 8, 2)) == 50


def point(target, batching, model, endpoint, concurrency, rps) -> dict:
    return {"target": target, "batching": batching, "model": model, "endpoint": endpoint,
            "concurrency": concurrency, "rps": rps}  # fmt: skip


POINTS = [
    point("service", "off", "boston", "v2", 8, 800),
    point("service", "on", "boston", "v2", 8, 900),
    point("floor", None, "boston", "v2", 8, 1000),
    point("naive", None, "boston", "v2", 8, 30),
    point("service", "off", "imdb", "typed", 64, 100),
    point("service", "on", "imdb", "typed", 64, 300),
    point("floor", None, "imdb", "typed", 64, 1000),
]
LIMITS = [
    {"model": "boston", "kind": "run", "rps": 9000},
    {"model": "imdb", "kind": "run", "rps": 5000},
    {"model": "imdb", "kind": "encode + run", "rps": 1000},
]


def test_ratios_compare_the_service_with_each_baseline():
    rows = {
        (r["model"], r["endpoint"], r["concurrency"]): r for r in benchmark.ratios(POINTS, LIMITS)
    }
    assert set(rows) == {("boston", "v2", 8), ("imdb", "typed", 64)}
    boston = rows["boston", "v2", 8]
    assert boston["off/floor"] == 0.8
    assert boston["on/floor"] == 0.9
    assert boston["on/naive"] == 30
    assert boston["on/off"] == 900 / 800
    assert boston["on/compute"] == 0.1
    imdb = rows["imdb", "typed", 64]
    assert imdb["off/naive"] is None  # the naive server has no typed endpoint
    assert imdb["on/compute"] == 0.3  # the typed endpoint's limit is encode + run
    assert imdb["on/off"] == 3


def test_targets_take_the_better_batching_and_count_only_their_concurrency():
    soak = {"passed": False, "total": {"requests": 10, "failures": 1},
            "reloads": [{"model": "boston", "status": 200}]}  # fmt: skip
    rows = benchmark.targets(benchmark.ratios(POINTS, LIMITS), [1, 8], soak)
    by_requirement = {t["requirement"]: t for t in rows}
    a_v2 = by_requirement["Boston V2, c=8: service ≥ 0.8 × floor rps"]
    assert a_v2["status"] == "PASS"
    assert a_v2["measured"].startswith("0.90 × floor")
    assert (
        by_requirement["Boston typed, c=8: service ≥ 0.8 × floor rps"]["status"] == "not measured"
    )
    assert by_requirement["Boston V2, c=8: service ≥ 20 × naive rps"]["status"] == "PASS"
    shown = by_requirement["Boston V2, c=1: service ≥ 20 × naive rps (shown only)"]
    assert shown["status"] == "not measured"
    assert not shown["counts"]
    assert by_requirement["IMDB typed (raw text), c=64: batching on ≥ 2 × off"]["status"] == "PASS"
    assert benchmark.verdicts(rows) == {"a": "not measured", "b": "not measured", "c": "PASS",
                                        "d": "FAIL"}  # fmt: skip


@pytest.mark.parametrize(
    ("others", "kept", "runs"),
    [([3], 3, 1), ([50, 5], 5, 2), ([50, 30, 40], 30, 3)],
)
def test_a_run_disturbed_by_other_processes_is_measured_again(monkeypatch, others, kept, runs):
    measured = iter(others)
    monkeypatch.setattr(
        benchmark,
        "measure_point",
        lambda *args: {"rps": 1.0, "others_pct": next(measured), "error_total": 1},
    )
    point = benchmark.measure_cleanly(None, "", None, 8, None)
    assert point["others_pct"] == kept
    assert len(point["discarded"]) == runs - 1
    assert benchmark.error_count(point) == runs  # errors count in every run, kept or not
