"""The demo page at `/` in a real browser (Debian's Chromium, driven by Playwright) against the
service on loopback: each model's form gives what the API gives for the same input, errors are
shown in plain words, the keyboard works, and nothing overflows a phone-sized screen; every loaded
model is listed, takes tensors in the V2 form, and gets a typed form where its config has an
encoding."""

from __future__ import annotations

import json
import re
import shutil

import httpx
import pytest

from contract.catalog import BOSTON_FEATURES
from contract.config import read_config
from contract.endpoint import TabularEndpoint, TextEndpoint
from service.api.rest.typed import EXAMPLE_HOUSE
from tests.e2e.conftest import missing_browser, open_demo
from tests.needs import missing
from tests.service.support import (
    HOUSES,
    NEWSWIRES,
    REVIEWS,
    ServerProcess,
    copy_repository,
    derive_model,
    house_rows,
)

if reason := missing_browser():
    missing(f"browser tests: {reason}", "E2E_REQUIRE_BROWSER")

META = re.compile(r"^model (\w+) v(\d+) · \d+\.\d ms · \d+ ms round trip$")


def percent(p: float) -> str:
    """As the page writes a probability (JavaScript's toFixed(1) of p × 100)."""
    return f"{p * 100:.1f} %"


def api(server: str, path: str, body: dict, version: str = "") -> dict:
    params = {"version": version} if version else None
    response = httpx.post(server + path, json=body, params=params, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def check_meta(output, answer: dict) -> None:
    text = output.get_by_test_id("meta").inner_text()
    match = META.match(text)
    assert match, text
    assert match.groups() == (answer["model"], str(answer["version"]))


def test_page_is_served_with_its_assets_and_links_to_docs(page, demo_server):
    assert page.title() == "dlwp-serving demo"
    assert page.locator("a[href='/docs']").count() >= 1
    for asset in ("/static/demo.css", "/static/demo.js"):
        assert httpx.get(demo_server + asset).status_code == 200
    assert page.problems == []


@pytest.mark.parametrize("version", ["", "1"], ids=["newest", "v1"])
def test_imdb_form_shows_the_api_answer(page, demo_server, screenshot, version):
    page.get_by_label("Movie review (English)").fill(REVIEWS[0])
    page.locator("#imdb-version").select_option(version)
    page.get_by_role("button", name="Get the sentiment").click()
    output = page.locator("#imdb-output")
    output.get_by_test_id("meta").wait_for()

    answer = api(demo_server, "/api/imdb", {"reviews": [REVIEWS[0]]}, version)
    prediction = answer["predictions"][0]
    assert output.get_by_test_id("label").inner_text() == prediction["label"]
    assert output.get_by_test_id("probability").inner_text() == percent(prediction["probability"])
    bars = output.locator(".bars li")
    assert bars.locator(".name").all_inner_texts() == list(prediction["scores"])
    assert bars.locator(".pct").all_inner_texts() == [
        percent(p) for p in prediction["scores"].values()
    ]
    check_meta(output, answer)
    if version:
        assert answer["version"] == int(version)
    screenshot(page.locator("#imdb"), f"imdb-{version or 'newest'}")
    assert page.problems == []


def test_reuters_form_shows_the_top_topics_in_order(page, demo_server, screenshot):
    page.get_by_label("Newswire text").fill(NEWSWIRES[1])
    page.get_by_label("Topics to show").fill("5")
    page.get_by_role("button", name="Get the topics").click()
    output = page.locator("#reuters-output")
    output.get_by_test_id("meta").wait_for()

    answer = api(demo_server, "/api/reuters", {"newswires": [NEWSWIRES[1]], "top_k": 5})
    topics = answer["predictions"][0]["topics"]
    rows = output.get_by_test_id("topics").locator("li")
    assert rows.locator(".name").all_inner_texts() == [t["topic"] for t in topics]
    assert rows.locator(".pct").all_inner_texts() == [percent(t["probability"]) for t in topics]
    meters = rows.locator("meter")
    assert meters.count() == 5
    values = [float(v) for v in meters.evaluate_all("ms => ms.map(m => m.value)")]
    assert values == pytest.approx([t["probability"] for t in topics], abs=1e-6)
    check_meta(output, answer)
    screenshot(page.locator("#reuters"), "reuters")
    assert page.problems == []


def test_boston_form_matches_the_catalog_and_starts_with_the_first_house(page):
    inputs = page.locator("#boston-fields input")
    assert inputs.evaluate_all("xs => xs.map(x => x.name)") == [f.name for f in BOSTON_FEATURES]
    for feature in BOSTON_FEATURES:
        field = page.locator(f"#boston-{feature.name}")
        label = page.locator(f"label[for='boston-{feature.name}']").inner_text()
        assert feature.description in label
        if feature.unit:
            assert f"({feature.unit})" in label
        assert float(field.input_value()) == EXAMPLE_HOUSE[feature.name]
        assert field.get_attribute("step") == "any"
        assert field.get_attribute("type") == "number"
        for attr, bound in (("min", feature.minimum), ("max", feature.maximum)):
            value = field.get_attribute(attr)
            assert (value is None) if bound is None else (float(value) == bound), (attr, feature)


@pytest.mark.parametrize("house", [0, 1], ids=["first-house", "changed"])
def test_boston_form_shows_the_api_price(page, demo_server, screenshot, house):
    values = HOUSES[house]
    for name, value in values.items():
        page.locator(f"#boston-{name}").fill(repr(value))
    page.get_by_role("button", name="Predict the price").click()
    output = page.locator("#boston-output")
    output.get_by_test_id("meta").wait_for()

    answer = api(demo_server, "/api/boston", {"houses": [values]})
    price = answer["predictions"][0]["price"]
    assert output.get_by_test_id("price").inner_text() == f"{price:.2f}"
    assert answer["predictions"][0]["unit"] in output.inner_text()
    check_meta(output, answer)
    screenshot(page.locator("#boston"), f"boston-{house}")
    assert page.problems == []


@pytest.mark.parametrize(
    ("model", "field", "value", "body", "expected"),
    [
        (
            "boston",
            "#boston-rm",
            "0",
            {"houses": [{**EXAMPLE_HOUSE, "rm": 0}]},
            "rm: Input should be greater than or equal to 1",
        ),
        (
            "reuters",
            "#reuters-top-k",
            "0",
            {"newswires": [NEWSWIRES[0]], "top_k": 0},
            "top_k: Input should be greater than or equal to 1",
        ),
    ],
    ids=["boston-rm-0", "reuters-top-k-0"],
)
def test_a_validation_error_is_shown_in_plain_words(
    page, demo_server, screenshot, model, field, value, body, expected
):
    if model == "reuters":
        page.get_by_label("Newswire text").fill(NEWSWIRES[0])
    page.locator(field).fill(value)
    page.locator(f"#{model}-form button[type=submit]").click()
    output = page.locator(f"#{model}-output")
    output.get_by_text(expected).wait_for()
    assert output.is_visible()
    assert output.get_attribute("role") == "alert"
    assert "did not accept this input" in output.inner_text()
    assert "Traceback" not in output.inner_text()
    assert page.locator(field).get_attribute("aria-invalid") == "true"
    # The same words as the service's own answer.
    response = httpx.post(f"{demo_server}/api/{model}", json=body, timeout=10)
    assert response.status_code == 422
    assert expected.endswith(response.json()["details"][0]["reason"])
    screenshot(page.locator(f"#{model}"), f"{model}-error")


def test_an_unreachable_service_is_said_so(page, screenshot):
    page.route("**/api/imdb", lambda route: route.abort())
    page.get_by_role("button", name="Get the sentiment").click()
    output = page.locator("#imdb-output")
    output.get_by_text("Could not reach the service").wait_for()
    assert output.get_attribute("role") == "alert"
    screenshot(page.locator("#imdb"), "imdb-network-error")


def test_an_empty_review_is_refused_before_sending(page):
    page.get_by_label("Movie review (English)").fill("   ")
    page.get_by_role("button", name="Get the sentiment").click()
    page.locator("#imdb-output").get_by_text("Type or paste a review first.").wait_for()


def test_the_forms_work_from_the_keyboard(page, demo_server):
    page.get_by_label("Movie review (English)").fill(REVIEWS[1])
    page.get_by_label("Movie review (English)").focus()
    button = page.get_by_role("button", name="Get the sentiment")
    for _ in range(5):
        page.keyboard.press("Tab")
        if button.evaluate("b => b === document.activeElement"):
            break
    assert button.evaluate("b => b === document.activeElement"), "Tab never reached the button"
    page.keyboard.press("Enter")
    output = page.locator("#imdb-output")
    output.get_by_test_id("meta").wait_for()
    answer = api(demo_server, "/api/imdb", {"reviews": [REVIEWS[1]]})
    assert output.get_by_test_id("label").inner_text() == answer["predictions"][0]["label"]

    # Space on a focused button submits too.
    page.get_by_role("button", name="Predict the price").focus()
    page.keyboard.press("Space")
    page.locator("#boston-output").get_by_test_id("price").wait_for()


def test_a_phone_screen_shows_everything_without_horizontal_scrolling(page, screenshot):
    page.set_viewport_size({"width": 390, "height": 844})
    for name in ("Get the sentiment", "Get the topics", "Predict the price"):
        page.get_by_role("button", name=name).click()
    for model in ("imdb", "reuters", "boston"):
        page.locator(f"#{model}-output").get_by_test_id("meta").wait_for()
    screenshot(page, "phone")
    width = page.evaluate("document.scrollingElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    assert page.problems == []


def test_the_desktop_page(page, screenshot):
    for name in ("Get the sentiment", "Get the topics", "Predict the price"):
        page.get_by_role("button", name=name).click()
    for model in ("imdb", "reuters", "boston"):
        page.locator(f"#{model}-output").get_by_test_id("meta").wait_for()
    screenshot(page, "desktop")
    assert page.evaluate("document.scrollingElement.scrollWidth") <= 1280


# --- every loaded model: the list, the tensor form, the forms generated for other models -------


def v2_infer(server: str, model: str, body: dict) -> dict:
    response = httpx.post(f"{server}/v2/models/{model}/infer", json=body, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def shown_data(cell: str) -> list[float]:
    """The numbers of an output's data cell, "[1.5, 2, …]"."""
    return [float(x) for x in cell.strip("[]").replace(", …", "").split(", ")]


def test_every_loaded_model_is_listed(page, demo_server):
    loaded = httpx.get(f"{demo_server}/api", timeout=10).json()["models"]
    rows = page.locator("#models-table tbody tr")
    assert rows.locator("th").all_inner_texts() == [m["name"] for m in loaded]
    assert rows.locator("td:nth-child(2)").all_inner_texts() == [
        ", ".join(f"v{v}" for v in m["versions"]) for m in loaded
    ]
    for model in loaded:  # the book models' own forms, and tensors for each
        row = rows.filter(has_text=model["name"])
        assert (
            row.get_by_role("link", name="Typed form").get_attribute("href") == f"#{model['name']}"
        )
        assert row.get_by_role("button", name=f"Send tensors to {model['name']}").is_visible()


def test_the_tensor_form_prefills_from_the_metadata_and_sends_v2(page, demo_server, screenshot):
    page.get_by_role("button", name="Send tensors to boston").click()
    editor = page.get_by_label("Inference request (JSON)")
    assert editor.evaluate("e => e === document.activeElement")
    (tensor,) = json.loads(editor.input_value())["inputs"]
    assert tensor == {"name": "features", "datatype": "FP32", "shape": [1, 13], "data": [0] * 13}

    row = house_rows(HOUSES[:1]).ravel().tolist()
    body = {"inputs": [{**tensor, "data": row}]}
    editor.fill(json.dumps(body))
    page.get_by_role("button", name="Send the tensors").click()
    output = page.locator("#tensors-output")
    output.get_by_test_id("meta").wait_for()

    answer = v2_infer(demo_server, "boston", body)
    (expected,) = answer["outputs"]
    cells = output.get_by_test_id("outputs").locator("tbody tr").first.locator("th, td")
    assert cells.all_inner_texts()[:3] == [expected["name"], expected["datatype"], "[1,1]"]
    assert shown_data(cells.nth(3).inner_text()) == pytest.approx(expected["data"], abs=1e-6)
    check_meta(output, {"model": answer["model_name"], "version": answer["model_version"]})
    screenshot(page.locator("#tensors"), "tensors-boston")
    assert page.problems == []


def test_the_tensor_form_shows_what_the_service_refused(page):
    page.get_by_role("button", name="Send tensors to boston").click()
    editor = page.get_by_label("Inference request (JSON)")
    editor.fill('{"inputs": [')
    page.get_by_role("button", name="Send the tensors").click()
    output = page.locator("#tensors-output")
    output.get_by_text("The request is not valid JSON.").wait_for()
    assert editor.get_attribute("aria-invalid") == "true"

    bad = {"name": "features", "datatype": "FP32", "shape": [1, 12], "data": [0] * 12}
    editor.fill(json.dumps({"inputs": [bad]}))
    page.get_by_role("button", name="Send the tensors").click()
    output.get_by_text("The service answered with an error (400").wait_for()
    assert "inputs[0]" in output.inner_text()


@pytest.fixture(scope="module")
def other_server(tmp_path_factory):
    """The service with models beside Boston's: `homes` (Boston's graph and features, generic
    words), `critics` (IMDB's first graph, labels of its own) and `plain` (no encoding)."""
    folder = tmp_path_factory.mktemp("other-models")
    root = copy_repository(folder / "models", ["boston", "imdb"])
    shutil.rmtree(root / "imdb" / "2")
    boston, imdb = (read_config(root / m / "1").encoding for m in ("boston", "imdb"))
    derive_model(
        root,
        "boston",
        2,
        "homes",
        encoding=boston.model_copy(update={"endpoint": TabularEndpoint()}),
    )
    derive_model(root, "imdb", 1, "critics", labels=["bad", "good"],
                 encoding=imdb.model_copy(update={"endpoint": TextEndpoint()}))  # fmt: skip
    derive_model(root, "boston", 2, "plain", encoding=None)
    process = ServerProcess(folder, repository=root).wait_ready()
    yield process.url
    assert process.terminate() == 0, process.output()


@pytest.fixture
def other_page(browser_context, other_server):
    tab = open_demo(browser_context, other_server)
    yield tab
    tab.close()


def test_other_models_get_typed_forms_or_tensors(other_page, other_server, screenshot):
    page = other_page
    assert page.locator("#reuters").is_hidden()  # not loaded
    assert page.locator("#typed-homes").is_visible()
    assert page.locator("#typed-critics").is_visible()
    assert page.locator("#typed-plain").count() == 0
    # The model without an encoding is the tensor form's first pick.
    assert page.locator("#tensors-model").input_value() == "plain"
    (tensor,) = json.loads(page.get_by_label("Inference request (JSON)").input_value())["inputs"]
    assert tensor["shape"] == [1, 13]

    inputs = page.locator("#m-homes-fields input")
    assert inputs.evaluate_all("xs => xs.map(x => x.name)") == [f.name for f in BOSTON_FEATURES]
    assert inputs.evaluate_all("xs => xs.map(x => x.value)") == [""] * 13  # no example
    for name, value in {**EXAMPLE_HOUSE, "rm": 7.5}.items():
        page.locator(f"#m-homes-{name}").fill(repr(value))
    page.locator("#m-homes-form").get_by_role("button", name="Predict").click()
    output = page.locator("#m-homes-output")
    output.get_by_test_id("meta").wait_for()
    answer = api(other_server, "/api/homes", {"rows": [{**EXAMPLE_HOUSE, "rm": 7.5}]})
    price = answer["predictions"][0]["price"]
    assert float(output.get_by_test_id("value").inner_text()) == pytest.approx(price, rel=1e-5)
    check_meta(output, answer)

    page.get_by_label("Raw texts").fill(REVIEWS[1])
    page.locator("#m-critics-form").get_by_role("button", name="Predict").click()
    output = page.locator("#m-critics-output")
    output.get_by_test_id("meta").wait_for()
    answer = api(other_server, "/api/critics", {"texts": [REVIEWS[1]]})
    assert output.get_by_test_id("label").inner_text() == answer["predictions"][0]["label"] == "bad"
    screenshot(page, "other-models")
    assert page.problems == []
