"""Tests that need a tool beyond the dev extra's Python packages (a browser, wrk) or an optional
package skip where it is missing, saying why; where their switch is set, as `.ci/run` sets every
one, the missing tool fails the run instead, so CI can never pass by skipping them."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

# Each switch and what it makes required (all set by .ci/run).
SWITCHES = {
    "E2E_REQUIRE_BROWSER": "Chromium and playwright, for tests/e2e",
    "LOADTEST_REQUIRE_WRK": "wrk, for the benchmark and profile tests",
    "LOADTEST_REQUIRE_LOCUST": "locust, for the load-test smoke test",
    "TESTS_REQUIRE_TRITONCLIENT": "tritonclient[http], for the V2 client tests",
    "DEPLOY_REQUIRE_TOOLS": "hadolint, kubectl and kubernetes-validate, for tests/deploy",
    "DEPLOY_REQUIRE_DOCKER": "a Docker daemon (and debootstrap, Compose v2), for the image tests",
    "DOCS_REQUIRE_CURL": "curl, for the examples of docs/ and README (tests/docs)",
    "DOCS_REQUIRE_MKDOCS": "mkdocs and mkdocs-material, for the site's build (tests/docs)",
}


def required(switch: str) -> bool:
    assert switch in SWITCHES, switch
    return os.environ.get(switch, "") not in ("", "0")


def missing(reason: str, switch: str) -> NoReturn:
    """Skips the test (or, at import, its module) because of `reason`, or fails where `switch` is
    set."""
    if required(switch):
        pytest.fail(f"{reason}, and {switch} is set", pytrace=False)
    pytest.skip(f"{reason}; set {switch}=1 to fail instead", allow_module_level=True)
