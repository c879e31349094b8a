"""The API documentation pages, /docs (Swagger UI) and /redoc (ReDoc), in a real browser with every
request beyond loopback aborted: they must render and work from the service's own files alone (on a
machine without internet, FastAPI's default pages, which load from a CDN, are blank)."""

from __future__ import annotations

from urllib.parse import urlsplit

import httpx
import pytest

from tests.e2e.conftest import missing_browser
from tests.needs import missing

if reason := missing_browser():
    missing(f"browser tests: {reason}", "E2E_REQUIRE_BROWSER")

LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
# ReDoc's sidebar footer ("API docs by Redocly") shows its logo from Redocly's CDN; ReDoc has no
# option to leave it out, and the page works with it aborted, as the test shows.
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"


@pytest.fixture
def offline_tab(browser_context):
    """A new tab whose requests beyond loopback are aborted and recorded in `tab.outside`, and
    whose page errors are recorded in `tab.problems`."""
    tab = browser_context.new_page()
    tab.outside = []
    tab.problems = []

    def only_loopback(route):
        url = route.request.url
        if urlsplit(url).scheme in ("data", "blob") or urlsplit(url).hostname in LOOPBACK:
            route.continue_()
        else:
            tab.outside.append(url)
            route.abort()

    tab.route("**/*", only_loopback)
    tab.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
    yield tab
    tab.close()


def test_swagger_ui_lists_every_operation_and_try_it_out_answers(offline_tab, demo_server):
    spec = httpx.get(demo_server + "/openapi.json", timeout=10).json()
    operations = sum(len(methods) for methods in spec["paths"].values())
    offline_tab.goto(demo_server + "/docs")
    offline_tab.wait_for_selector(".opblock")
    assert offline_tab.locator(".opblock").count() == operations

    boston = offline_tab.locator(".opblock-post", has_text="/api/boston")
    boston.locator(".opblock-summary").click()
    boston.get_by_role("button", name="Try it out").click()
    boston.get_by_role("button", name="Execute").click()  # the body: the schema's example house
    answer = boston.locator(".live-responses-table tbody tr.response")
    answer.wait_for()
    assert answer.locator(".response-col_status").inner_text().strip() == "200"
    assert '"price"' in answer.locator(".microlight").first.inner_text()

    assert offline_tab.outside == [], f"requests beyond loopback: {offline_tab.outside}"
    assert offline_tab.problems == []


def test_redoc_renders_every_operation(offline_tab, demo_server):
    offline_tab.goto(demo_server + "/redoc")
    offline_tab.wait_for_selector("[data-section-id^='operation/']")
    spec = httpx.get(demo_server + "/openapi.json", timeout=10).json()
    for methods in spec["paths"].values():
        for operation in methods.values():
            section = f"[data-section-id='operation/{operation['operationId']}']"
            assert offline_tab.locator(section).count() == 1, operation["operationId"]
    assert set(offline_tab.outside) <= {REDOC_LOGO}, f"beyond loopback: {offline_tab.outside}"
    assert offline_tab.problems == []
