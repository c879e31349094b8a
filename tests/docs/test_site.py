"""The documentation site: `mkdocs build --strict` (every link, anchor and nav entry checked),
offline, into a temporary folder; the settings reference generated from the code; the reports
published; README short, its figures from `reports/`; no stale paths."""

from __future__ import annotations

import html
import importlib.util
import re
import subprocess
import sys

import pytest

from service.settings import Batching, Settings, VersionPolicy
from tests.needs import missing
from tests.service.support import REPO

DOCS = REPO / "docs"
README = REPO / "README.md"
# Paths that moved: none may be named by the docs or README.
STALE = [
    "service/app.py",
    "service/api/grpc_v2.py",
    "service/api/proto",
    "service/api/v2.py",
    "service/api/tensors.py",
    "tests/test_readme.py",
    "README_REQUIRE_CURL",
]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    for module in ("mkdocs", "material"):
        if importlib.util.find_spec(module) is None:
            missing(f"{module} is not installed (the dev extra has it)", "DOCS_REQUIRE_MKDOCS")
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={"PATH": "/usr/bin:/bin", "HOME": str(out), "NO_MKDOCS_2_WARNING": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def text_of(page) -> str:
    return html.unescape(re.sub(r"<[^>]+>", "", page.read_text("utf-8")))


def test_every_page_is_built(site):
    for page in DOCS.glob("*.md"):
        name = "" if page.stem == "index" else page.stem
        assert (site / name / "index.html").is_file(), page.name


def test_the_settings_reference_lists_every_setting_of_the_code(site):
    text = text_of(site / "settings" / "index.html")
    for name in Settings.model_fields:
        assert f"SERVICE_{name.upper()}" in text, name
    for model in (Batching, VersionPolicy):
        for name in model.model_fields:
            assert name in text, name
    assert "<!-- settings-reference -->" not in text
    # Each setting has its meaning, from the code or the hook's words for it.
    rows = re.findall(
        r"<tr>(.*?)</tr>", (site / "settings" / "index.html").read_text("utf-8"), re.S
    )
    cells = [re.findall(r"<td>(.*?)</td>", row, re.S) for row in rows]
    assert [row[0] for row in cells if row and not row[-1].strip()] == []


def test_the_reports_are_published_and_linked(site):
    assert (site / "reports" / "benchmark" / "index.html").is_file()
    assert (site / "reports" / "benchmark" / "throughput.png").is_file()
    benchmarks = (site / "benchmarks" / "index.html").read_text("utf-8")
    assert 'href="../reports/benchmark/"' in benchmarks


def test_nothing_is_fetched_from_the_web(site):
    """No web fonts and no scripts or styles from elsewhere: the site works offline."""
    for page in site.rglob("*.html"):
        text = page.read_text("utf-8")
        assert "fonts.googleapis" not in text, page
        assert not re.search(r'<(?:script|link)[^>]+(?:src|href)="https?://', text), page


def test_no_stale_paths():
    found = [
        f"{page.relative_to(REPO)}: {stale}"
        for page in [README, *DOCS.rglob("*.md")]
        for stale in STALE
        if stale in page.read_text("utf-8")
    ]
    # The benchmarks are `python -m loadtest NAME` now (the harness's receiver runs as a module).
    found += [
        f"{page.relative_to(REPO)}: {command}"
        for page in [README, *DOCS.rglob("*.md")]
        for command in re.findall(r"python -m loadtest\.(?!harness\.)\S+", page.read_text("utf-8"))
    ]
    assert found == []


def test_readme_is_short_and_says_what_it_is():
    text = README.read_text("utf-8")
    assert len(text.splitlines()) <= 120
    first = " ".join(text.split("\n\n")[1].split())
    for words in ("inference server", "trainer", "REST", "gRPC", "KServe", "TensorFlow Serving"):
        assert words in first, words


def test_every_figure_in_readme_comes_from_the_report_it_links():
    """A line of README with a measured figure links a file of reports/ holding that figure."""
    text = README.read_text("utf-8")
    lines = [line for line in text.splitlines() if line.startswith("| ") and "reports/" in line]
    assert lines, "README shows no figures from reports/"
    for line in lines:
        reports = set(re.findall(r"\((reports/[^)]+)\)", line))
        measured = " ".join(line.split("|")[2:-2])  # the value column(s)
        figures = re.findall(r"\d[\d,]*(?:\.\d+)?", measured)
        assert figures, line
        sources = "".join((REPO / report).read_text("utf-8") for report in reports)
        assert [f for f in figures if f not in sources] == [], line
    # Outside those rows, no measured figures in prose (units of time, rate or memory).
    prose = [
        line
        for line in text.splitlines()
        if not line.startswith(("| ", "```", "    "))
        and re.search(r"(?<![\w$])\d[\d,.]*\s*(?:ms|s|MiB|GiB|MB|requests/s|rps|%)(?!\w)", line)
    ]
    assert prose == []
