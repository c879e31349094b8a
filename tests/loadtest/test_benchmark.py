"""The benchmark (`python -m loadtest benchmark`): the real command in its quick mode, and its pure
parts on small inputs. No timing assertions: the numbers depend on the machine.

The command needs wrk (Debian: `apt-get install wrk`); without it those tests skip and say why,
unless LOADTEST_REQUIRE_WRK=1 (CI), where they fail.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest

from loadtest.harness import measure, targets
from loadtest.harness.measure import Point
from loadtest.harness.targets import Target
from loadtest.harness.wrk import Run, parse_wrk, summarize_wrk, write_workloads

REPO = Path(__file__).resolve().parents[2]
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def run_benchmark(out: Path, *options: str) -> dict:
    command = [
        sys.executable,
        "-m",
        "loadtest",
        "benchmark",
        "--quick",
        *options,
        "--out",
        str(out),
    ]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    for name in ("throughput.png", "latency.png"):
        assert (out / "benchmark" / name).read_bytes().startswith(PNG_SIGNATURE), name
    return json.loads((out / "benchmark" / "results.json").read_text("utf-8"))


@pytest.mark.slow
@pytest.mark.usefixtures("wrk")
def test_benchmark_measures_every_series_without_errors(tmp_path):
    results = run_benchmark(tmp_path, "--no-soak")
    points = results["points"]
    measured = {(p["series"], p["endpoint"], p["concurrency"]) for p in points}
    grid = {(e, c) for e in ("typed", "v2") for c in (1, 8)}
    wanted = {
        *(("off", *g) for g in grid), ("off", "v2-32", 8),
        *(("on", *g) for g in grid), ("on", "v2-32", 8), ("on", "binary", 8), ("on", "grpc", 8),
        ("on", "v2-py", 8), ("workers2", "v2", 8),
        *(("floor", *g) for g in grid), ("floor", "v2-32", 8), ("floor", "binary", 8),
        ("floor", "grpc", 8), ("floor", "v2-py", 8),
        *(("plain", *g) for g in grid),
        ("naive", "v2", 1), ("naive", "v2", 8),
    }  # fmt: skip
    assert measured == wanted
    assert len(points) == len(measured)
    for p in points:
        assert {p["model"]} == {"boston"}
        assert p["run"]["requests"] > 0, p
        assert p["error_count"] == 0, p
        assert p["client_cpu_s"] > 0, p
        assert p["server_cpu_s"] > 0, p
    assert results["metrics_status"] == 200  # /metrics still answers with two workers
    assert [row["kind"] for row in results["compute_limit"]] == ["run"]
    groups = {t["group"] for t in results["targets"]}
    assert groups == {"floor", "batching", "lone client", "32 rows", "plain", "naive", "workers",
                      "binary", "gRPC", "soak"}  # fmt: skip
    report = (tmp_path / "benchmark.md").read_text("utf-8")
    for heading in ("## Machine", "## The load generator", "## Points", "## Compute limit",
                    "## Ratios", "## Targets", "## Soak"):  # fmt: skip
        assert heading in report, heading
    assert "not pinned" in report
    assert "benchmark/throughput.png" in report
    assert results["command"] in report
    assert results["command"].startswith("python -m loadtest benchmark --duration 1 --warmup 0")


@pytest.mark.slow
@pytest.mark.usefixtures("wrk")
def test_soak_reloads_every_model_under_load_in_before_after_mode(tmp_path):
    results = run_benchmark(
        tmp_path, "--concurrency", "8", "--no-naive", "--soak-time", "10",
        "--service-checkout", str(REPO),
    )  # fmt: skip
    assert results["service_code"].startswith("commit ")  # the checkout the service ran from
    assert results["service_checkout"] == str(REPO)
    assert "**before/after**" in (tmp_path / "benchmark.md").read_text("utf-8")
    soak = results["soak"]
    assert soak["passed"], soak
    assert {r["model"] for r in soak["reloads"]} == {"boston", "imdb", "reuters"}
    assert all(r["status"] == 200 for r in soak["reloads"])
    assert soak["total"]["requests"] > 0
    assert soak["total"]["failures"] == 0
    assert soak["locust_cpu_s"] > 0
    assert (tmp_path / "soak" / "locust.html").is_file()
    (soak_target,) = [t for t in results["targets"] if t["group"] == "soak"]
    assert soak_target["status"] == "PASS"


WRK_LINE = {"requests": 2000, "duration_us": 2_000_000, "bytes": 1, "connect_errors": 0,
            "read_errors": 1, "write_errors": 0, "status_errors": 2, "timeouts": 0,
            "p50_us": 1500, "p95_us": 3000, "p99_us": 4000, "max_us": 9000, "mean_us": 1700.5}  # fmt: skip


def test_parse_wrk_reads_the_json_line_after_wrks_summary():
    output = "Running 2s test @ http://127.0.0.1:1\n  1 threads and 8 connections\n"
    output += "Requests/sec: 1000.00\n" + json.dumps(WRK_LINE) + "\n"
    assert parse_wrk(output) == WRK_LINE
    with pytest.raises(ValueError, match="no result line"):
        parse_wrk("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_summarize_wrk_gives_rps_milliseconds_and_errors():
    run = summarize_wrk(WRK_LINE)
    assert run.rps == 1000
    assert run.p50_ms == 1.5
    assert run.p99_ms == 4
    assert run.mean_ms == 1.7005
    assert run.errors == {"read_errors": 1, "status_errors": 2}
    assert run.error_total == 3


def test_the_32_row_workload_sends_32_boston_rows_on_the_unversioned_path(tmp_path):
    (workload,) = write_workloads(["boston"], tmp_path, ("v2-32",))
    assert workload.path == "/v2/models/boston/infer"
    lines = Path(workload.arguments[0]).read_text("utf-8").splitlines()
    path, body = lines[0].split("\t")
    tensor = json.loads(body)["inputs"][0]
    assert path == workload.path
    assert tensor["shape"] == [32, 13]
    assert len(tensor["data"]) == 32 * 13
    assert workload.rows == 32


def test_busy_percent_counts_everything_but_idle_and_iowait():
    times = namedtuple("times", "user system idle iowait")
    assert measure.busy_percent(times(1, 1, 6, 0), times(4, 2, 8, 2)) == 50


def point(series, model, endpoint, c, rps, p50_ms=1.0, server_cpu_s=1.0) -> Point:
    run = Run(requests=int(rps * 10), seconds=10, p50_ms=p50_ms, p95_ms=2, p99_ms=3, max_ms=4,
              mean_ms=1)  # fmt: skip
    return Point(series, model, endpoint, c, run, server_cpu_s=server_cpu_s, client_cpu_s=0.1,
                 client_wall_s=10, rss_mib=100, machine_busy_pct=50, others_pct=0, cores=2)  # fmt: skip


POINTS = [
    point("off", "boston", "v2", 1, 700, p50_ms=0.5),
    point("on", "boston", "v2", 1, 600, p50_ms=0.6),
    point("floor", "boston", "v2", 1, 1000, p50_ms=0.4),
    point("off", "boston", "v2", 8, 800),
    point("on", "boston", "v2", 8, 900, server_cpu_s=0.9),  # 0.1 ms per request
    point("floor", "boston", "v2", 8, 1000),
    point("plain", "boston", "v2", 8, 500),
    point("naive", "boston", "v2", 8, 30),
    point("on", "boston", "v2", 64, 1000),
    point("workers2", "boston", "v2", 64, 1400),
    point("off", "imdb", "typed", 64, 100),
    point("on", "imdb", "typed", 64, 300),
    point("floor", "imdb", "typed", 64, 1000),
    point("plain", "imdb", "typed", 64, 150),
    point("on", "imdb", "v2", 8, 100),
    point("on", "imdb", "binary", 8, 1200),
    point("floor", "imdb", "binary", 8, 1500),
    point("on", "boston", "grpc", 8, 600),
    point("on", "boston", "v2-py", 8, 800),
    point("floor", "boston", "grpc", 8, 1000),
    point("floor", "boston", "v2-py", 8, 2000),
]
LIMITS = [
    measure.ComputeLimit("boston", "run", 1, 1, 9000, 0.1, 0.2, 0.1, 1, 50, 2),
    measure.ComputeLimit("imdb", "run", 1, 1, 5000, 0.1, 0.2, 0.1, 1, 50, 2),
    measure.ComputeLimit("imdb", "encode + run", 1, 1, 1000, 0.1, 0.2, 0.1, 1, 50, 2),
]


def test_ratios_compare_the_service_with_each_baseline():
    rows = {(r.model, r.endpoint, r.concurrency): r.values
            for r in targets.ratios(POINTS, LIMITS)}  # fmt: skip
    assert set(rows) == {("boston", "v2", c) for c in (1, 8, 64)} | {
        ("imdb", "typed", 64), ("imdb", "v2", 8), ("imdb", "binary", 8), ("boston", "grpc", 8),
        ("boston", "v2-py", 8)}  # fmt: skip
    boston = rows["boston", "v2", 8]
    assert boston["off/floor"] == 0.8
    assert boston["on/floor"] == 0.9
    assert boston["on/plain"] == 1.8
    assert boston["on/naive"] == 30
    assert boston["on/off"] == 900 / 800
    assert boston["on/compute"] == 0.1
    assert rows["boston", "v2", 64]["workers2/on"] == 1.4
    imdb = rows["imdb", "typed", 64]
    assert imdb["off/naive"] is None  # the naive server has no typed endpoint
    assert imdb["on/compute"] == 0.3  # the typed endpoint's limit is encode + run
    assert imdb["on/off"] == 3


def test_targets_take_the_better_service_and_say_what_was_not_measured(monkeypatch):
    monkeypatch.setattr(targets, "is_sparse", lambda name: False)  # IMDB's wide dense rows
    rows = targets.targets(POINTS, 200, None, "not run")
    by = {t.requirement: t for t in rows}
    v2 = by["Boston V2 JSON, c=8: service ≥ 0.8 × floor rps"]
    assert v2.status == "PASS"
    assert v2.measured.startswith("0.90 × (off 0.80, on 0.90)")
    assert by["Boston V2 JSON, c=64: service ≥ 1.0 × floor rps"].status == "not measured"
    assert by["IMDB typed, c=64: service ≥ 0.4 × floor rps"].status == "FAIL"  # 0.3
    assert by["IMDB typed (raw text), c=64: batching on ≥ 2 × off"].status == "PASS"
    assert by["Boston V2 JSON, c=1: service ≥ 0.7 × floor rps"].status == "PASS"  # off: 0.7
    assert by["Boston V2 JSON, c=1: service p50 ≤ 1.5 × floor p50"].status == "PASS"  # 1.25
    assert by["Boston V2 JSON, c=8: server CPU ≤ 0.12 ms per request"].status == "PASS"
    plain = by["every point: service ≥ 1.5 × plain FastAPI rps"]
    assert plain.status == "PASS"
    assert plain.measured.startswith("lowest 1.80 × (boston V2 JSON, c=8), over 2 points")
    workers = by["Boston V2 JSON, c=64: SERVICE_WORKERS=2 ≥ 1.5 × one worker's rps (batching on)"]
    assert workers.status == "FAIL"  # 1.4
    binary = by["IMDB V2, c=8: binary ≥ 10 × JSON rps"]
    assert (binary.status, binary.measured) == ("PASS", "12 × JSON (the floor's binary: 15 ×)")
    grpc = by["Boston, c=8, the same asyncio client: gRPC ≥ REST V2 JSON rps"]
    assert (grpc.status, grpc.measured) == ("FAIL", "0.75 × REST (the floor's: 0.50 ×)")
    assert by["Boston V2, c=8: binary beside JSON (shown only)"].counts is False
    verdicts = targets.verdicts(rows)
    assert verdicts["floor"] == "FAIL"
    assert verdicts["lone client"] == "PASS"
    assert verdicts["soak"] == "not measured"
    assert verdicts["binary"] == "PASS"


def test_verdicts_fail_a_group_when_one_row_fails():
    rows = [Target("g", "a", "", "PASS"), Target("g", "b", "", "FAIL"),
            Target("h", "c", "", "PASS"), Target("h", "d", "", "FAIL", counts=False)]  # fmt: skip
    assert targets.verdicts(rows) == {"g": "FAIL", "h": "PASS"}


@pytest.mark.parametrize(
    ("others", "kept", "runs"),
    [([3], 3, 1), ([50, 5], 5, 2), ([50, 30], 30, 2)],
)
def test_a_run_disturbed_by_other_processes_is_measured_again(monkeypatch, others, kept, runs):
    measured = iter(others)

    def fake_point(server, load, settings, **key) -> Point:
        run = Run(requests=10, seconds=1, p50_ms=1, p95_ms=1, p99_ms=1, max_ms=1, mean_ms=1,
                  errors={"status_errors": 1})  # fmt: skip
        return Point(run=run, server_cpu_s=1, client_cpu_s=1, client_wall_s=1, rss_mib=1,
                     machine_busy_pct=1, others_pct=next(measured), cores=2, **key)  # fmt: skip

    monkeypatch.setattr(measure, "measure_point", fake_point)
    point = measure.measure_cleanly(None, None, measure.PointSettings(), series="on",
                                    model="boston", endpoint="v2", concurrency=8)  # fmt: skip
    assert point.others_pct == kept
    assert len(point.discarded) == runs - 1
    assert point.error_count == runs  # errors count in every run, kept or not


def test_binary_over_json_is_shown_only_for_a_sparse_imdb(monkeypatch):
    """A sparse version's few hundred ids make JSON cheap: binary has nothing to win there."""
    monkeypatch.setattr(targets, "is_sparse", lambda name: name == "imdb")
    by = {t.requirement: t for t in targets.targets(POINTS, 200, None, "not run")}
    assert "IMDB V2, c=8: binary ≥ 10 × JSON rps" not in by
    assert not by["IMDB V2, c=8: binary beside JSON (shown only)"].counts
