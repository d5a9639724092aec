"""The standalone demo page in Chromium: ``python -m backwardcompatibilityml demo --no-browser``.

The tests of this file run in order against one demo process and one page:
mount, first sweep, executor, filters, axes and zoom, point details, Regress region, class bars,
instance dialog, cancelled second sweep, console errors, clean stop.

The demo runs through ``gated_demo.py`` (the same command line, with its training set gated as in
``test_jupyterlab.py``): the first sweep stalls at the starts of two epochs, where the page must
show the API's frozen percent, and the second is cancelled while stalled. No check depends on how
fast the sweep runs.
"""

from __future__ import annotations

import json
import os
import signal
import tempfile

import pytest
import requests

from .e2e_helpers import ACTIVE_PAGES, VIEWPORT, ConsoleLog, DemoServer, WidgetApi, nothing_listens
from .sweep_gate import PassGate
from .widget_driver import WidgetDriver

pytestmark = pytest.mark.e2e

DEMO_EPOCHS = 20
FIRST_SWEEP_GATED_EPOCHS = (2, 11)  # the bar is seen stalled at the starts of these epochs
CANCEL_GATED_EPOCH = 2  # the second sweep is cancelled at the start of this epoch


@pytest.fixture(scope="module")
def demo():
    with tempfile.TemporaryDirectory(prefix="bcml-e2e-demo-") as workdir:
        gate_folder = os.path.join(workdir, "gate")
        os.makedirs(gate_folder)
        server = DemoServer(workdir, epochs=DEMO_EPOCHS, gate_folder=gate_folder)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def widget(browser, demo):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    console = ConsoleLog(page)
    ACTIVE_PAGES["demo"] = page
    gate = None
    try:
        page.goto(demo.url, wait_until="load")
        root = page.locator(".bcml-widget")
        assert root.count() == 1, "the demo page shows one widget"
        driver = WidgetDriver(page, root, WidgetApi(demo.port, demo.token), "demo")
        gate = PassGate(demo.gate_folder, describe=lambda: json.dumps(driver.api.status()),
                        ended=lambda: not driver.api.status()["running"])
        driver.state.update(console=console, gate=gate)
        yield driver
    finally:
        if gate is not None:
            gate.release_all()  # a sweep stalled by a failed test goes on, so that the demo can stop
        ACTIVE_PAGES.pop("demo", None)
        context.close()


def test_page_needs_the_printed_token(demo):
    assert requests.get(f"http://127.0.0.1:{demo.port}/", timeout=10).status_code == 403
    assert requests.get(demo.url, timeout=10).status_code == 200


def test_widget_mounts_idle(widget):
    widget.check_mounted_idle()


def test_start_sweep_shows_progress_and_points(widget):
    widget.run_first_sweep(gate=widget.state["gate"], gated_epochs=FIRST_SWEEP_GATED_EPOCHS)


def test_header_names_the_executor(widget):
    widget.check_executor_line()


def test_filters_hide_points(widget):
    widget.check_filters()


def test_axes_fit_each_plot_and_zoom_resets(widget):
    widget.check_axes_and_zoom()


def test_clicked_point_details_equal_the_api(widget):
    widget.check_point_details()


def test_regress_region_lists_the_api_regress_instances(widget):
    widget.check_regress_region()


def test_class_bars_filter_the_table(widget):
    widget.check_class_bars()


def test_instance_dialog_shows_the_loaded_image(widget):
    widget.check_instance_dialog()


def test_second_sweep_can_be_cancelled(widget):
    widget.check_cancel_second_sweep(gate=widget.state["gate"], gated_epoch=CANCEL_GATED_EPOCH)


def test_no_console_errors(widget):
    widget.state["console"].save("demo-console.txt")
    errors = widget.state["console"].unexpected()
    assert errors == [], "console errors on the demo page:\n" + "\n".join(errors)


def test_demo_stops_cleanly_on_sigterm(demo, widget):
    code = demo.stop(signal.SIGTERM)
    assert code == 0, f"the demo exits with 0 on SIGTERM, not {code}"
    assert nothing_listens(demo.port), "nothing listens on the demo's port after it stops"
