"""`python -m loadtest profile_service`: how samples are grouped, and one short real run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.scenarios.profile_service import group_of

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("stack", "group"),
    [
        (["run (asyncio/runners.py:118)", "app (fastapi/routing.py:438)",
          "infer (rest/v2.py:133)", "predict (service/registry.py:63)",
          "run (onnxruntime/capi/onnxruntime_inference_collection.py:406)"],
         "inference (onnxruntime)"),
        (["app (fastapi/routing.py:438)", "read (rest/wire.py:39)",
          "model_validate_json (pydantic/main.py:847)"], "body parsing and validation"),
        (["app (fastapi/routing.py:438)", "imdb_sentiment (rest/typed.py:140)",
          "word_ids (contract/text.py:138)"], "text encoding"),
        (["__call__ (rest/middleware.py:31)", "labels (prometheus_client/metrics.py:138)"],
         "request lifecycle and metrics"),
        (["__call__ (rest/middleware.py:31)", "app (fastapi/routing.py:438)",
          "matches (starlette/routing.py:251)"], "FastAPI and Starlette"),
        (["data_received (uvicorn/protocols/http/httptools_impl.py:174)"],
         "uvicorn and the service's HTTP protocol"),
        (["data_received (rest/http.py:201)", "flush (rest/http.py:107)"],
         "uvicorn and the service's HTTP protocol"),
        (["infer (rest/v2.py:133)", "read_body (service/dataplane.py:240)"],
         "handlers and data plane (checks, admission, arrays, answers)"),
        (["run (asyncio/runners.py:118)"], "event loop and other"),
    ],
)  # fmt: skip
def test_a_sample_goes_to_its_innermost_group(stack, group):
    assert group_of(stack) == group


@pytest.mark.usefixtures("wrk")
def test_a_short_profile_run(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "loadtest", "profile_service", "--seconds", "3",
         "--concurrency", "4", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = (tmp_path / "profile-boston-v2.md").read_text("utf-8")
    rows = [line for line in report.splitlines() if line.startswith("| ") and "%" in line]
    shares = [float(line.split("|")[2].strip().rstrip("%")) for line in rows]
    assert abs(sum(shares) - 100) < 1, report
    assert any(line.startswith("| inference (onnxruntime) |") for line in rows), report
    assert (tmp_path / "profile-boston-v2.txt").stat().st_size > 0
