"""Every datapoint reachable by mouse: 12 datapoints at identical coordinates, in Chromium.

A tiny real sweep (3 lambda_c x 2 families x 2 datasets) is written by the
package's own SweepManager. The learning rate is 0 and the training set is
the test set, so every datapoint's h2 equals the given h2: all 12 points have
the same performance, BTC and BEC. ``python -m backwardcompatibilityml serve
FOLDER`` serves the folder (no image callback), and the test clicks each of
the 12 points through the stack's menu, checking each one's details.
"""

from __future__ import annotations

import csv
import io
import re
import tempfile
from typing import Any, Dict, List

import pytest
from playwright.sync_api import expect

from .e2e_helpers import ACTIVE_PAGES, VIEWPORT, ConsoleLog, ServeServer, WidgetApi, artifact_path
from .widget_driver import WidgetDriver

pytestmark = pytest.mark.e2e

LEGACY_LABELS = {"new-error": "New Error", "strict-imitation": "Strict Imitation"}


def _batches(n: int, batch: int, seed: int) -> List[Any]:
    import torch

    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(n, 4, generator=generator)
    targets = (inputs[:, 0] + 0.5 * inputs[:, 1] > 0).long() + (inputs[:, 2] > 1.0).long()
    ids = torch.arange(n)
    return [(ids[i:i + batch], inputs[i:i + batch], targets[i:i + batch]) for i in range(0, n, batch)]


def build_stacked_sweep(folder: str) -> None:
    """A real sweep whose 12 datapoints share their coordinates (learning rate 0, test set = training set)."""
    import torch

    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from backwardcompatibilityml.sweep_management import SweepManager

    torch.manual_seed(0)
    h1 = torch.nn.Linear(4, 3)
    h2 = torch.nn.Linear(4, 3)
    data = _batches(60, 20, seed=1)
    manager = SweepManager(folder, 1, h1, h2, data, list(data), 20, 20, torch.optim.SGD, {"lr": 0.0},
                           BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=0.5)
    manager.start_sweep_synchronous()
    status = manager.get_sweep_status()
    assert status["state"] == "completed", status


@pytest.fixture(scope="module")
def served():
    with tempfile.TemporaryDirectory(prefix="bcml-e2e-stacked-") as workdir:
        folder = f"{workdir}/sweep"
        build_stacked_sweep(folder)
        server = ServeServer(workdir, folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def stacked(browser, served):
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
    page = context.new_page()
    console = ConsoleLog(page)
    requests_seen: List[Dict[str, Any]] = []
    page.on("request", lambda r: requests_seen.append({"url": r.url, "headers": r.headers}))
    ACTIVE_PAGES["stacked"] = page
    try:
        page.goto(served.url, wait_until="load")
        root = page.locator(".bcml-widget")
        assert root.count() == 1, "the page shows one widget"
        driver = WidgetDriver(page, root, WidgetApi(served.port, served.token), "stacked")
        driver.state.update(console=console, requests=requests_seen, token=served.token)
        yield driver
    finally:
        ACTIVE_PAGES.pop("stacked", None)
        context.close()


def _labels(summary: Dict[str, Any]) -> Dict[str, str]:
    families = summary.get("families") or []
    labels = dict(LEGACY_LABELS)
    labels.update({f["name"]: f["label"] for f in families if isinstance(f, dict)})
    return labels


def _family(point: Dict[str, Any]) -> str:
    return point.get("family") or ("new-error" if point["new-error"] else "strict-imitation")


def _dataset(point: Dict[str, Any]) -> str:
    return point.get("dataset") or ("training" if point["training"] else "testing")


def _stack_centre(widget: WidgetDriver, metric: str) -> Dict[str, float]:
    box = widget.root.locator(f'[data-plot="{metric}"] [data-datapoint-index]').first.bounding_box()
    assert box, "the stack is drawn"
    return {"x": box["x"] + box["width"] / 2, "y": box["y"] + box["height"] / 2}


def _check_details(widget: WidgetDriver, point: Dict[str, Any], labels: Dict[str, str]) -> None:
    index = point["datapoint_index"]
    for metric in ("btc", "bec"):
        expect(widget.root.locator(f'[data-plot="{metric}"] [data-datapoint-index="{index}"]')) \
            .to_have_attribute("aria-pressed", "true")
    root = widget.root
    expect(root.locator('[data-field="lambda_c"]')).to_have_text(f"{point['lambda_c']:.3f}")
    expect(root.locator('[data-field="family"]')).to_have_text(labels[_family(point)])
    expect(root.locator('[data-field="dataset"]')).to_have_text(_dataset(point))
    for key in ("btc", "bec", "h1_performance"):
        expect(root.locator(f'[data-field="{key}"]')).to_have_text(f"{point[key]:.3f}")


def test_twelve_points_share_their_coordinates(stacked):
    summary = stacked.api.summary()
    data = summary["data"]
    assert len(data) == 12
    assert len({(p["performance"], p["btc"], p["bec"]) for p in data}) == 1, "one position for all 12"
    assert len({(p["lambda_c"], _family(p), _dataset(p)) for p in data}) == 12, "12 distinct datapoints"
    stacked.state["summary"] = summary
    for metric in ("btc", "bec"):
        plot = stacked.root.locator(f'[data-plot="{metric}"]')
        expect(plot.locator("[data-datapoint-index]")).to_have_count(12, timeout=30_000)
        boxes = {tuple(round(v) for v in (b["x"], b["y"])) for b in
                 (m.bounding_box() for m in plot.locator("[data-datapoint-index]").all())}
        assert len(boxes) <= 2, f"the markers lie on top of each other in the {metric} plot: {boxes}"
        expect(plot.locator(".bcml-stack-badge")).to_have_text("×12")


def test_each_of_the_twelve_points_is_selectable_by_mouse(stacked):
    summary = stacked.state["summary"]
    labels = _labels(summary)
    for n, point in enumerate(summary["data"]):
        metric = "btc" if n % 2 == 0 else "bec"
        centre = _stack_centre(stacked, metric)
        stacked.page.mouse.click(centre["x"], centre["y"])
        menu = stacked.root.get_by_role("menu")
        expect(menu).to_have_count(1)
        items = menu.get_by_role("menuitemradio")
        expect(items).to_have_count(12)
        choice = menu.locator(f'[data-choice-index="{point["datapoint_index"]}"]')
        expect(choice).to_contain_text(f"lambda_c {point['lambda_c']:g}")
        expect(choice).to_contain_text(labels[_family(point)])
        expect(choice).to_contain_text(_dataset(point))
        if n == 0:
            stacked.screenshot("stack-menu")
        choice.click()
        expect(menu).to_have_count(0)
        _check_details(stacked, point, labels)
    stacked.screenshot("last-point-selected")


def test_the_stack_menu_works_by_keyboard(stacked):
    summary = stacked.state["summary"]
    labels = _labels(summary)
    centre = _stack_centre(stacked, "btc")
    stacked.page.mouse.click(centre["x"], centre["y"])
    menu = stacked.root.get_by_role("menu")
    expect(menu).to_have_count(1)
    items = menu.get_by_role("menuitemradio")
    first = items.nth(0)
    expect(first).not_to_be_focused()  # the selected (last) point has the focus
    stacked.page.keyboard.press("Home")
    expect(first).to_be_focused()
    stacked.page.keyboard.press("ArrowDown")
    second = items.nth(1)
    expect(second).to_be_focused()
    index = int(second.get_attribute("data-choice-index"))
    stacked.page.keyboard.press("Enter")
    expect(menu).to_have_count(0)
    point = next(p for p in summary["data"] if p["datapoint_index"] == index)
    _check_details(stacked, point, labels)
    focused = stacked.page.evaluate("() => document.activeElement.getAttribute('data-datapoint-index')")
    assert focused == str(index), f"the chosen point has the focus: {focused}"
    stacked.page.mouse.click(centre["x"], centre["y"])
    expect(menu).to_have_count(1)
    stacked.page.keyboard.press("Escape")
    expect(menu).to_have_count(0)


def test_table_images_and_csv_of_a_served_folder(stacked):
    """serve FOLDER has no image callback; the CSV holds the table's rows under its filter."""
    summary = stacked.state["summary"]
    point = summary["data"][-1]
    index = point["datapoint_index"]
    centre = _stack_centre(stacked, "btc")
    stacked.page.mouse.click(centre["x"], centre["y"])
    stacked.root.get_by_role("menu").locator(f'[data-choice-index="{index}"]').click()
    expected = {int(i["instance_id"]) for i in stacked.api.instances(index)}
    assert expected, "h1 or h2 makes errors on this dataset"
    table = stacked.root.locator("table", has=stacked.page.get_by_role("columnheader", name=re.compile(r"^Ground truth")))
    expect(table.locator("tbody tr").first).to_be_visible(timeout=30_000)
    stacked.root.get_by_role("button", name=re.compile(r"^Regress\b")).click()
    expect(stacked.root.get_by_role("button", name="Clear filter")).to_be_visible()
    sort = stacked.root.get_by_role("button", name=re.compile(r"^Ground truth"))
    sort.click()
    sort.click()  # descending
    expect(stacked.root.get_by_role("columnheader", name=re.compile(r"^Ground truth"))) \
        .to_have_attribute("aria-sort", "descending")
    regress = stacked.api.instances(index, region="regress", sort="-ground_truth")
    assert [r["instance_id"] for r in regress] != sorted(r["instance_id"] for r in regress), \
        "the sort changes the order (so that the CSV's order tells)"

    assert summary.get("instance_images") is False, "serve FOLDER says it has no image callback"
    expect(stacked.root.get_by_role("note").first).to_have_text(
        "No images: this sweep was opened without an image callback.")
    expect(table.locator("img")).to_have_count(0)
    expect(stacked.root.get_by_role("columnheader", name="Image")).to_have_count(0)
    stacked.screenshot("table-without-images")

    button = stacked.root.get_by_role("button", name="Download CSV")
    with stacked.page.expect_download() as info:
        button.click()
    download = info.value
    assert download.suggested_filename == f"bcml-datapoint-{index}-instances-regress.csv", download.suggested_filename
    with open(download.path(), encoding="utf-8") as handle:
        text = handle.read()
    with open(artifact_path("stacked-download.csv"), "w", encoding="utf-8") as handle:
        handle.write(text)
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [int(r["instance_id"]) for r in rows] == [int(i["instance_id"]) for i in regress], \
        "the CSV holds the filtered, sorted table's instances, in its order"
    for row, item in zip(rows, regress):
        for key in ("h1_prediction", "h2_prediction", "ground_truth"):
            assert int(row[key]) == int(item[key]), f"{key} of instance {row['instance_id']}"
        assert row["region"] == "regress"
    sent = [r for r in stacked.state["requests"] if "/instances.csv" in r["url"]]
    assert sent, "the page asked for the CSV"
    for request in sent:
        assert "token" not in request["url"], f"no token in the URL: {request['url']}"
        assert request["headers"].get("x-bcml-token") == stacked.state["token"], "the token goes in the header"
    asked = [r["url"] for r in stacked.state["requests"] if "/instance_data/" in r["url"]]
    assert asked == [], f"no image is requested: {asked}"


def test_no_console_errors(stacked):
    console = stacked.state["console"]
    console.save("stacked-console.txt")
    errors = console.unexpected()
    assert errors == [], "console errors:\n" + "\n".join(errors)
