"""The widget where users meet it: the digits notebook run in JupyterLab, driven in Chromium.

``jupyter lab`` runs on 127.0.0.1 with a token, a private HOME and a fresh
copy of ``notebooks/digits_compatibility_analysis.ipynb`` (no outputs); the
test opens it, runs all cells and drives the widget inside the notebook's
output area. The page's origin (JupyterLab's port) differs from the widget
server's (the kernel's Flask port), so CORS and the token are exercised for
real. Port and token for the test's own API reads come from the widget's
inline configuration in the output HTML.

The copy trains the notebook's own 20 epochs (about a second here) on a
gated training set (``sweep_gate.py``): the sweep is handed ``GatedBatches``,
a list of the same batches whose passes the test stalls through files in a
folder it owns. The first sweep stalls at the starts of epochs 2 and 11, and
each time the test waits until the UI's progress bar shows the API's (frozen)
percent, strictly between 0 and 100 and larger the second time, then releases
it. The second sweep stalls at the start of epoch 2, where the test clicks
Cancel and releases it once the sweep has registered the cancel. No margin of
time is involved. The tests of this file run in order on one page.
"""

from __future__ import annotations

import json
import os
import re
import tempfile

import pytest
from playwright.sync_api import expect

from .e2e_helpers import (ACTIVE_PAGES, NOTEBOOKS_DIR, VIEWPORT, ConsoleLog, JupyterLabServer, WidgetApi,
                         notebook_copy, nothing_listens, parse_widget_config, wait_until)
from .sweep_gate import PassGate, notebook_replacements
from .widget_driver import WidgetDriver

pytestmark = pytest.mark.e2e

NOTEBOOK = "digits_compatibility_analysis.ipynb"
# The widget's call in the notebook: its 20 epochs (kept) and its training set (gated in the copy).
TRAINING_TEXT = 'tempfile.mkdtemp(prefix="digits-sweep-"), 20, h1, h2, training_set, test_set,'
# The gate learns that the sweep registered a cancel from SweepManager.cancel_requested.
GATED_TEXT = ('tempfile.mkdtemp(prefix="digits-sweep-"), 20, h1, h2,\n'
              '    GatedBatches(training_set, {folder},\n'
              '                 stop_requested=lambda: analysis.sweep_manager.cancel_requested),\n'
              '    test_set,')
WIDGET_TEXT = "analysis = CompatibilityAnalysis("
FIRST_SWEEP_GATED_EPOCHS = (2, 11)  # the bar is seen stalled at the starts of these epochs (of 20)
CANCEL_GATED_EPOCH = 2  # the second sweep is cancelled at the start of this epoch

# Known, harmless messages of JupyterLab itself (see shared/notes/testing-in-jupyterlab.md).
# A message that names the widget server's origin is never filtered (ConsoleLog.widget_marker).
JUPYTERLAB_HARMLESS = [
    r"reading 'schema'",
]


@pytest.fixture(scope="module")
def gate_folder():
    with tempfile.TemporaryDirectory(prefix="bcml-e2e-gate-") as folder:
        yield folder


@pytest.fixture(scope="module")
def lab(gate_folder):
    with tempfile.TemporaryDirectory(prefix="bcml-e2e-lab-") as workdir:
        notebook_dir = os.path.join(workdir, "notebooks")
        os.makedirs(notebook_dir)
        notebook_copy(os.path.join(NOTEBOOKS_DIR, NOTEBOOK), os.path.join(notebook_dir, NOTEBOOK),
                      notebook_replacements(gate_folder, TRAINING_TEXT, GATED_TEXT, WIDGET_TEXT))
        server = JupyterLabServer(workdir, notebook_dir)
        server.start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture(scope="module")
def widget(browser, lab, gate_folder):
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    config = {}
    console = ConsoleLog(page, harmless=JUPYTERLAB_HARMLESS,
                         widget_marker=lambda: f"127.0.0.1:{config['port']}" if config else None)
    ACTIVE_PAGES["jupyterlab"] = page
    gate = None
    try:
        page.goto(f"{lab.url}/lab/tree/{NOTEBOOK}?reset&token={lab.token}", wait_until="load")
        panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
        expect(panel).to_have_count(1, timeout=60_000)
        idle = panel.locator('.jp-Notebook-ExecutionIndicator[data-status="idle"]')
        kernel_name = panel.locator(".jp-Toolbar-kernelName")
        accept = page.locator(".jp-Dialog .jp-mod-accept")

        def kernel_ready() -> bool:
            if accept.count() and accept.first.is_visible():
                accept.first.click()  # "Select Kernel" (only when the notebook lacks a kernelspec)
            # The indicator says idle before any kernel exists ("No Kernel"): wait for both.
            name = kernel_name.first.inner_text(timeout=1_000) if kernel_name.count() else ""
            return idle.count() > 0 and "Python" in name

        wait_until(kernel_ready, 60, 0.3, "the notebook's kernel to be idle")
        page.locator(".lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
        page.locator('.lm-Menu-item[data-command="runmenu:run-all"]').click()

        roots = panel.locator(".jp-OutputArea-output .bcml-widget")
        expect(roots).to_have_count(1, timeout=180_000)
        root = roots.first
        root_id = root.get_attribute("id")
        assert root_id and re.fullmatch(r"bcml-widget-[0-9a-f]{32}", root_id), root_id
        output = panel.locator(".jp-OutputArea-output", has=page.locator(f"#{root_id}"))
        scripts = [s for s in output.locator("script").all_text_contents() if root_id in s]
        assert len(scripts) == 1, f"one mounting script for {root_id}"
        config.update(parse_widget_config(scripts[0]))
        assert config["environment_type"] == "local" and config["base_url"] is None, config
        assert int(config["port"]) != lab.port, "the widget's server has its own port (cross-origin)"
        driver = WidgetDriver(page, root, WidgetApi(int(config["port"]), config["token"]), "jupyterlab")
        gate = PassGate(gate_folder, describe=lambda: json.dumps(driver.api.status()),
                        ended=lambda: not driver.api.status()["running"])
        driver.state.update(console=console, config=config, lab=lab, panel=panel, gate=gate)
        yield driver
    finally:
        if gate is not None:
            gate.release_all()  # a sweep stalled by a failed test goes on (the kernel is deleted anyway)
        ACTIVE_PAGES.pop("jupyterlab", None)
        context.close()


def test_notebook_runs_and_widget_mounts_idle(widget):
    widget.screenshot("notebook-after-run-all", full_page=True)
    # The page's origin is JupyterLab's; the widget reads its API on another port.
    origin = widget.page.evaluate("location.origin")
    assert origin == widget.state["lab"].url and str(widget.api.port) not in origin
    widget.check_mounted_idle()


def test_start_sweep_shows_progress_and_points(widget):
    widget.run_first_sweep(gate=widget.state["gate"], gated_epochs=FIRST_SWEEP_GATED_EPOCHS)


def test_filters_hide_points(widget):
    widget.check_filters()


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
    widget.screenshot("notebook-at-end", full_page=True)


def test_no_console_errors(widget):
    console = widget.state["console"]
    console.save("jupyterlab-console.txt")
    errors = console.unexpected()
    assert errors == [], "console errors in JupyterLab:\n" + "\n".join(errors)


def test_deleting_the_kernel_frees_the_widget_port(widget):
    lab = widget.state["lab"]
    assert lab.kernels(), "the notebook's kernel runs"
    lab.delete_kernels()
    wait_until(lambda: not lab.kernels(), 30, 0.3, "no kernel left")
    wait_until(lambda: nothing_listens(widget.api.port), 30, 0.3, "the widget's port to be free")
