"""The images of docker/, built once per test session (docker/build.sh) for the tests that run
them; their build times and sizes are printed at the end of the run."""

from __future__ import annotations

import pytest

from tests.deploy import images


@pytest.fixture(scope="session")
def local_base() -> bool:
    images.require_daemon()
    return images.local_base()


@pytest.fixture(scope="session")
def service_image(local_base) -> str:
    return images.build("service", local_base)


@pytest.fixture(scope="session")
def trainer_image(local_base) -> str:
    return images.build("trainer", local_base)


def pytest_terminal_summary(terminalreporter):
    if images.BUILT:
        terminalreporter.section("images built (docker/build.sh)")
        for tag, seconds, size in images.BUILT:
            terminalreporter.write_line(f"{tag}: {seconds:.0f} s, {size / 1e6:.0f} MB")
