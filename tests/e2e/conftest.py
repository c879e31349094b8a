"""Fixtures of the browser tests: the service as a real process on loopback, and Debian's Chromium
driven by Playwright (headless, a fresh profile, nothing reached beyond loopback)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.service.support import ServerProcess

CHROMIUM = Path(os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium"))
SCREENS = Path(os.environ.get("E2E_SCREENS", "/tmp/demo-screens"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not CHROMIUM.is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    return None


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory):
    """`python -m service` with the committed models on a free loopback port; its base URL."""
    process = ServerProcess(tmp_path_factory.mktemp("demo-server")).wait_ready()
    yield process.url
    code = process.terminate()
    assert code == 0, f"the service exited with {code} after SIGTERM:\n{process.output()}"


@pytest.fixture(scope="module")
def browser_context(tmp_path_factory):
    """One headless Chromium with a fresh user-data-dir; its default context. Module-scoped: while
    Playwright's sync API is open it holds an asyncio loop in this thread, which would break later
    tests that call asyncio.run()."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1280, "height": 900},
        )
        context.set_default_timeout(10_000)
        yield context
        context.close()


def open_demo(browser_context, url: str):
    """A new tab with the demo page of the service at `url` loaded (its forms built from the
    service's schemas); the tab's `problems` collects page errors and console errors."""
    tab = browser_context.new_page()
    problems: list[str] = []
    tab.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    tab.on(
        "console",
        lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None,
    )
    tab.goto(url + "/")
    tab.wait_for_selector("body[data-ready=true]")
    tab.problems = problems
    return tab


@pytest.fixture
def page(browser_context, demo_server):
    """A new tab with the demo page of the committed models loaded."""
    tab = open_demo(browser_context, demo_server)
    yield tab
    tab.close()


@pytest.fixture
def screenshot(tmp_path):
    """screenshot(page or locator, name): a PNG (a page: all of it) in the test's tmp dir, copied
    to /tmp/demo-screens for a person to look at."""

    def take(target, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        if hasattr(target, "set_viewport_size"):  # a page, not a locator
            target.screenshot(path=str(path), full_page=True)
        else:
            target.screenshot(path=str(path))
        SCREENS.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, SCREENS / path.name)
        return path

    return take
