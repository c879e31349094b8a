"""Fixtures of the service tests: the app in process (lifespan run, the committed models loaded) and
the service as a real process on a loopback port."""

from __future__ import annotations

import pytest

from service.server import create_app
from tests.service.support import ServerProcess, TestClient, settings


@pytest.fixture(scope="session")
def client():
    """The service in process with default settings and the committed models."""
    with TestClient(create_app(settings())) as test_client:
        yield test_client


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    """`python -m service` on a free loopback port; yields the base URL. At the end: SIGTERM, and
    the process must exit with 0."""
    process = ServerProcess(tmp_path_factory.mktemp("server")).wait_ready()
    yield process.url
    code = process.terminate()
    assert code == 0, f"the service exited with {code} after SIGTERM:\n{process.output()}"
