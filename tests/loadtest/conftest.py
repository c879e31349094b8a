"""What the load-testing tests share: wrk, which the benchmarks drive (Debian: `apt-get install
wrk`). Without it those tests skip and say why, unless LOADTEST_REQUIRE_WRK=1 (CI), where they
fail."""

from __future__ import annotations

import shutil

import pytest

from tests.needs import missing


@pytest.fixture
def wrk():
    if shutil.which("wrk") is None:
        missing("wrk is not installed (Debian: apt-get install wrk)", "LOADTEST_REQUIRE_WRK")
