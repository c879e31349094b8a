"""The OpenAPI document says exactly what the service accepts and answers: schemathesis, in its own
process, generates requests from the document against a real server and checks every answer
(bounded: a few examples per operation, a fixed seed).

Every check runs on every operation, but one: "schema-valid requests are accepted" cannot hold
for the tensor routes, where what a valid tensor is depends on the model named in the path (its
input's name, datatype and width: `GET /v2/models/{model}` says them, and the routes' documents
refer to it). That check runs on all the other operations."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.support import ServerProcess

KEY = "fuzz-key"
TENSOR_ROUTES = r"(/infer|:predict)$"


def schemathesis(url: str, report: Path, *selection: str) -> subprocess.CompletedProcess:
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{url}/openapi.json",
        "--max-examples", "10", "--seed", "11", "--workers", "1", "--no-color",
        "--request-timeout", "30", "--phases", "examples,coverage,fuzzing,stateful",
        "-H", f"Authorization: Bearer {KEY}", "--report", "junit",
        "--report-junit-path", str(report), *selection,
    ]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_the_openapi_document_is_true(tmp_path):
    process = ServerProcess(tmp_path, SERVICE_ADMIN_API_KEY=KEY).wait_ready()
    try:
        runs = {
            "every check but positive acceptance": schemathesis(
                process.url, tmp_path / "all.xml",
                "--checks", "all", "--exclude-checks", "positive_data_acceptance",
            ),
            "positive acceptance, but on the tensor routes": schemathesis(
                process.url, tmp_path / "positive.xml",
                "--checks", "positive_data_acceptance", "--exclude-path-regex", TENSOR_ROUTES,
            ),
        }  # fmt: skip
    finally:
        code = process.terminate()
    for name, run in runs.items():
        assert run.returncode == 0, f"{name}:\n{run.stdout[-20000:]}\n{run.stderr[-3000:]}"
        assert " passed" in run.stdout
    assert code == 0, process.output()
