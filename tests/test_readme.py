"""The README's examples, run as a reader would paste them: every fenced block marked `example`
(```` ```bash example ````, ```` ```python example ````) against `python -m service` on a loopback
port, with the repository API's key set. A block fails when a command exits non-zero (curl's
`--fail-with-body` makes an HTTP error one), so an example that stops working fails here."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from tests.needs import missing
from tests.service.support import REPO, ServerProcess

README = REPO / "README.md"
# Where the examples expect the service; the test's own server is put in its place.
EXAMPLE_HOST = "localhost:8000"
ADMIN_KEY = "readme-example-key"
BLOCK = re.compile(r"^```(bash|python) example\n(.*?)^```$", re.MULTILINE | re.DOTALL)
EXAMPLES = BLOCK.findall(README.read_text("utf-8"))
# What a reader must find an example of: each endpoint family, and both Python clients.
FAMILIES = [
    "/api/imdb",
    "/api/reuters",
    "/api/boston",
    "/v2/models/boston/infer",
    "/v1/models/boston:predict",
    "/v2/models/boston\n",  # V2 model metadata: the URL ends its line
    "/v1/models/boston/metadata",
    "/v2/repository/models/boston/load",
    "/metrics",
    "import httpx",
    "import tritonclient.http",
]


def test_every_endpoint_family_has_an_example():
    text = "\n".join(code for _, code in EXAMPLES)
    assert [family for family in FAMILIES if family not in text] == []


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    process = ServerProcess(
        tmp_path_factory.mktemp("readme"), SERVICE_ADMIN_API_KEY=ADMIN_KEY
    ).wait_ready()
    yield process
    assert process.terminate() == 0, process.output()


@pytest.mark.parametrize(
    ("language", "code"), EXAMPLES, ids=[f"{i}-{lang}" for i, (lang, _) in enumerate(EXAMPLES)]
)
def test_example_runs(service, language, code, tmp_path):
    if language == "bash" and shutil.which("curl") is None:
        missing("curl is not installed (Debian: apt-get install curl)", "README_REQUIRE_CURL")
    code = code.replace(EXAMPLE_HOST, service.url.removeprefix("http://"))
    command = ["bash", "-euo", "pipefail", "-c", code] if language == "bash" else [sys.executable]
    result = subprocess.run(
        command,
        input=code if language == "python" else None,
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "SERVICE_ADMIN_API_KEY": ADMIN_KEY},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"
    assert result.stdout.strip(), "the example printed nothing"
