"""The standalone widget in Chromium when the sweep or the server does what a user did not ask of the page.

One small real demo (``demo --no-browser``, 1 epoch, lambda_c 0, 0.5, 1: 12 datapoints), idle at first:

* a sweep started by another client (the notebook's ``sweep_manager.start_sweep()``, another page) shows up
  on a page that was opened before it, without a reload;
* scores the API sends as null (a metric that could not be computed) draw no ``NaN`` attribute, no
  console error, and no made-up difference;
* a summary request that fails once is retried, also after the sweep has ended;
* a refused token (403) stops polling with a message, instead of retrying forever.

Faults are injected with ``page.route``; everything else is the real server.
"""

from __future__ import annotations

import json
import re
import tempfile
import time
from typing import Any, Dict, List

import pytest
import requests
from playwright.sync_api import expect

from .e2e_helpers import ACTIVE_PAGES, VIEWPORT, ConsoleLog, DemoServer, WidgetApi

pytestmark = pytest.mark.e2e

POINTS = 12  # 3 lambda_c x 2 families x 2 datasets

# Attributes or text that a null score must never produce.
BAD_VALUES_JS = """root => {
  const out = [];
  for (const el of root.querySelectorAll('*')) {
    for (const a of el.attributes) if (/NaN|undefined|Infinity/.test(a.value)) out.push(`${el.tagName} ${a.name}=${a.value.slice(0, 80)}`);
  }
  for (const m of root.innerText.matchAll(/.{0,30}\\b(NaN|undefined|Infinity|null)\\b.{0,30}/g)) out.push('text: ' + m[0]);
  return out;
}"""


@pytest.fixture(scope="module")
def demo():
    with tempfile.TemporaryDirectory(prefix="bcml-e2e-resilience-") as workdir:
        server = DemoServer(workdir, epochs=1, stepsize=0.5)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture()
def open_page(browser):
    contexts: List[Any] = []

    def open_(url: str, label: str, routes: Dict[str, Any] = None):
        context = browser.new_context(viewport=VIEWPORT)
        contexts.append(context)
        page = context.new_page()
        console = ConsoleLog(page)
        requests_seen: List[str] = []
        page.on("request", lambda r: requests_seen.append(r.url.split("/api/v1/")[-1].split("?")[0]))
        for pattern, handler in (routes or {}).items():
            page.route(pattern, handler)
        ACTIVE_PAGES[label] = page
        page.goto(url, wait_until="load")
        return page, console, requests_seen

    yield open_
    for context in contexts:
        context.close()
    for label in [k for k in ACTIVE_PAGES if k.startswith("resilience-")]:
        ACTIVE_PAGES.pop(label, None)


def marks(page) -> Any:
    return page.locator('.bcml-widget [data-plot="btc"] [data-datapoint-index]')


def status_text(page) -> Any:
    return page.locator(".bcml-widget .bcml-status-text")


def test_a_sweep_started_elsewhere_shows_on_an_open_page(demo, open_page):
    api = WidgetApi(demo.port, demo.token)
    assert api.status()["state"] == "idle"
    page, console, seen = open_page(demo.url, "resilience-external")
    expect(status_text(page)).to_contain_text("No sweep yet", timeout=15_000)
    # Idle, the page keeps asking (every 5 s: the interval itself is tested with fake timers in vitest).
    deadline = time.monotonic() + 60
    while seen.count("sweep_status") < 2 and time.monotonic() < deadline:
        page.wait_for_timeout(200)
    assert seen.count("sweep_status") >= 2, f"an idle page asks again: {seen}"

    # Another client starts the sweep (the notebook's sweep_manager.start_sweep(), another page).
    response = requests.post(f"{api.base}/start_sweep", headers={"X-BCML-Token": demo.token}, timeout=30)
    assert response.status_code == 202, response.text
    api.wait_idle(timeout=120)
    assert api.status()["state"] == "completed"

    expect(status_text(page)).to_contain_text(f"Sweep completed: {POINTS} of {POINTS} points", timeout=20_000)
    expect(marks(page)).to_have_count(POINTS, timeout=10_000)
    shown = sorted(int(i) for i in marks(page).evaluate_all("els => els.map(e => e.dataset.datapointIndex)"))
    assert shown == [p["datapoint_index"] for p in api.summary()["data"]]
    errors = console.unexpected()
    assert errors == [], "console errors:\n" + "\n".join(errors)


def test_null_scores_draw_no_nan_and_no_made_up_numbers(demo, open_page):
    api = WidgetApi(demo.port, demo.token)
    if api.status()["state"] != "completed":
        api.session.post(f"{api.base}/start_sweep", timeout=30)
        api.wait_idle(timeout=120)
    data = api.summary()["data"]
    assert len(data) == POINTS
    # Datapoint 6 (lambda_c 0.5, Strict Imitation, training): BTC not computed but the best performance,
    # so that it would top the BTC plot's Pareto front; datapoint 4: no h2 performance; 5: no h1 performance.
    nulls = {6: {"btc": None, "performance": 0.999}, 4: {"performance": None}, 5: {"h1_performance": None}}

    def patched_summary(route):
        answer = route.fetch()
        body = answer.json()
        for point in body["data"]:
            point.update(nulls.get(point["datapoint_index"], {}))
        route.fulfill(response=answer, body=json.dumps(body))

    def patched_evaluation(route):
        answer = route.fetch()
        body = answer.json()
        body.update(nulls.get(body["datapoint_index"], {}))
        if body["datapoint_index"] == 4:
            body["h2_performance"] = None
        route.fulfill(response=answer, body=json.dumps(body))

    page, console, _ = open_page(demo.url, "resilience-nulls", {
        "**/api/v1/sweep_summary": patched_summary,
        re.compile(r".*/api/v1/evaluation_data/\d+$"): patched_evaluation,
    })
    root = page.locator(".bcml-widget")
    expect(marks(page)).to_have_count(POINTS - 2, timeout=15_000)  # 4 and 6 have no place in the BTC plot
    expect(page.locator('.bcml-widget [data-plot="bec"] [data-datapoint-index]')).to_have_count(POINTS - 1)
    expect(page.locator('[data-plot="btc"] .bcml-plot-note')).to_have_text(re.compile(r"^2 datapoints are not drawn"))
    assert root.evaluate(BAD_VALUES_JS) == []

    # The h1 value is null: the difference is not a number either (not h2's value).
    point = page.locator('.bcml-widget [data-plot="btc"] [data-datapoint-index="5"]')
    point.focus()
    page.keyboard.press("Enter")
    expect(root.locator('[data-field="h1_performance"]')).to_have_text("n/a")
    expect(root.locator('[data-field="performance_difference"]')).to_have_text("n/a")
    expect(root.locator('[data-field="h2_performance"]')).to_have_text(re.compile(r"^\d\.\d{3}$"))
    assert root.evaluate(BAD_VALUES_JS) == []
    errors = console.unexpected()
    assert errors == [], "console errors:\n" + "\n".join(errors)


def test_a_summary_that_fails_once_is_retried_after_the_sweep_ended(demo, open_page):
    api = WidgetApi(demo.port, demo.token)
    assert not api.status()["running"]
    failures = {"left": 1}

    def flaky_summary(route):
        if failures["left"] > 0:
            failures["left"] -= 1
            route.fulfill(status=500, content_type="application/json",
                          body=json.dumps({"error": "Datapoint 3 is stored but its files cannot be read."}))
        else:
            route.continue_()

    page, console, seen = open_page(demo.url, "resilience-summary", {"**/api/v1/sweep_summary": flaky_summary})
    expect(marks(page)).to_have_count(POINTS, timeout=30_000)  # the failed summary is asked for again
    assert seen.count("sweep_summary") == 2
    expect(status_text(page)).not_to_contain_text("Connection problem")
    unexpected = [e for e in console.unexpected() if "status of 500" not in e]
    assert unexpected == [], "console errors besides the injected 500:\n" + "\n".join(unexpected)


def test_a_refused_token_stops_polling_with_a_message(demo, open_page):
    def refuse(route):
        route.fulfill(status=403, content_type="application/json", body=json.dumps({"error": "Missing or wrong token."}))

    page, console, seen = open_page(demo.url, "resilience-403", {"**/api/v1/**": refuse})
    alert = page.locator(".bcml-widget [role=alert]")
    expect(alert).to_contain_text("Missing or wrong token.", timeout=15_000)
    expect(alert).to_contain_text("Updates stopped")
    expect(status_text(page)).to_have_text("Not connected to the widget server.")
    page.wait_for_timeout(8_000)
    assert seen.count("sweep_status") == 1, f"no retry after a 403: {seen}"
    assert len(console.entries) == 1 and "403" in console.entries[0], console.entries
