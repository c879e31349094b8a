"""Every code example of the documentation, run as a reader would paste it, against a live
service: `python -m service` on free loopback ports (never a fixed one), the committed models, the
repository API's key set.

An example is a fenced ```` ```bash ```` or ```` ```python ```` block of a page of `docs/` or of
README.md (README's install commands, between its `install` markers, excepted: CI runs those).
Commands that cannot run here (Docker, a cluster, the dataset files) are ```` ```shell ````
blocks: shown, not run, and they may not talk to the service. The examples address the service as
`localhost:8000` (HTTP) and `localhost:8001` (gRPC), the defaults: these are the placeholders
the test replaces with its service's ports. A block fails when it exits non-zero (curl's
`--fail-with-body` makes an HTTP error one) or prints nothing."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.needs import missing
from tests.service.support import REPO, ServerProcess, free_port

DOCS = REPO / "docs"
README = REPO / "README.md"
HTTP, GRPC = "localhost:8000", "localhost:8001"
ADMIN_KEY = "docs-example-key"
FENCE = re.compile(r"^```(\w+)[^\n]*\n(.*?)^```$", re.MULTILINE | re.DOTALL)
INSTALL = re.compile(
    r"<!-- --8<-- \[start:install\] -->.*?<!-- --8<-- \[end:install\] -->", re.DOTALL
)
RUN = {"bash", "python"}
# What a reader must find an example of: each endpoint family, and each client.
FAMILIES = [
    "/api/imdb",
    "/api/reuters",
    "/api/boston",
    "/v2/models/boston/infer",
    "/v1/models/boston:predict",
    "/v2/models/boston\n",  # V2 model metadata: the URL ends its line
    "/v1/models/boston/metadata",
    "/v2/health/ready",
    "/v2/repository/index",
    "/v2/repository/models/boston/load",
    "/metrics",
    "content-encoding: gzip",
    "import httpx",
    "import tritonclient.http",
    "import tritonclient.grpc",
    HTTP,
    GRPC,
]


def pages() -> list[Path]:
    return [README, *sorted(DOCS.rglob("*.md"))]


def blocks(page: Path) -> list[tuple[str, str]]:
    """The page's fenced blocks, (language, code), README's install commands left out."""
    text = page.read_text("utf-8")
    if page == README:
        text = INSTALL.sub("", text)
    return FENCE.findall(text)


EXAMPLES = [
    pytest.param(language, code, id=f"{page.relative_to(REPO)}-{i}-{language}")
    for page in pages()
    for i, (language, code) in enumerate(blocks(page))
    if language in RUN
]


def test_every_endpoint_family_and_client_has_an_example():
    text = "\n".join(param.values[1] for param in EXAMPLES)
    assert [family for family in FAMILIES if family not in text] == []


def test_readme_has_one_request_and_the_install_commands_are_not_run():
    text = README.read_text("utf-8")
    assert INSTALL.search(text), "README's install commands lost their markers"
    assert [lang for lang, _ in blocks(README) if lang in RUN] == ["bash"]


def test_shown_only_blocks_do_not_talk_to_the_service():
    """A block that calls the service must be an example (and run here), not a `shell` block."""
    shown = [
        f"{page.relative_to(REPO)}: {code.splitlines()[0]}"
        for page in pages()
        for language, code in blocks(page)
        if language not in RUN and re.search(r"(?:localhost|127\.0\.0\.1):800[01]\b", code)
    ]
    assert shown == []


def test_examples_use_only_the_placeholder_ports():
    other = [
        port
        for param in EXAMPLES
        for port in re.findall(r"(?:localhost|127\.0\.0\.1):\d+", param.values[1])
        if port not in (HTTP, GRPC)
    ]
    assert other == []


@pytest.fixture(scope="module")
def service(tmp_path_factory):
    grpc_port = free_port()
    process = ServerProcess(
        tmp_path_factory.mktemp("docs"),
        SERVICE_ADMIN_API_KEY=ADMIN_KEY,
        SERVICE_GRPC_PORT=str(grpc_port),
    ).wait_ready()
    process.grpc_address = f"127.0.0.1:{grpc_port}"
    yield process
    assert process.terminate() == 0, process.output()


@pytest.mark.parametrize(("language", "code"), EXAMPLES)
def test_example_runs(service, language, code, tmp_path):
    if language == "bash" and "curl " in code and shutil.which("curl") is None:
        missing("curl is not installed (Debian: apt-get install curl)", "DOCS_REQUIRE_CURL")
    code = code.replace(HTTP, service.url.removeprefix("http://")).replace(
        GRPC, service.grpc_address
    )
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
