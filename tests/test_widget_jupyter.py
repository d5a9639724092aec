"""The widget in a real Jupyter kernel (nbclient): how it displays, and what
re-running its cell does to the earlier widget's server and sweep."""

from __future__ import annotations

import json
import re
import time

import nbformat
import pytest
import requests
from nbclient import NotebookClient

pytestmark = pytest.mark.e2e

SETUP = """
import json, os, threading, time
import torch
from sklearn.datasets import load_digits
from IPython.display import display
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.widgets import CompatibilityAnalysis
from backwardcompatibilityml.widgets.compatibility_analysis.server import live_servers

features, labels = load_digits(return_X_y=True)
x = torch.tensor(features[:400] / 16.0, dtype=torch.float32)
y = torch.tensor(labels[:400], dtype=torch.long)
batches = lambda lo, hi: [(torch.arange(i, i + 20), x[i:i + 20], y[i:i + 20]) for i in range(lo, hi, 20)]
train, test = batches(0, 300), batches(300, 400)
torch.manual_seed(0)
h1 = torch.nn.Linear(64, 10)
h2 = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
folder = os.path.join(os.getcwd(), "sweep")  # the kernel runs in the test's tmp_path
"""


def code(source):
    return nbformat.v4.new_code_cell(source)


def outputs_of(cell, kind=None):
    return [o for o in cell.get("outputs", []) if kind is None or o["output_type"] == kind]


def html_outputs(cell):
    return [o["data"]["text/html"] for o in outputs_of(cell) if "text/html" in o.get("data", {})]


def printed(cell):
    text = "".join(o["text"] for o in outputs_of(cell, "stream") if o["name"] == "stdout")
    errors = [o for o in outputs_of(cell, "error")]
    assert not errors, "%s: %s" % (errors[0]["ename"], errors[0]["evalue"])
    return text


def last_json(cell):
    return json.loads(printed(cell).strip().splitlines()[-1])


def widget_config(html):
    match = re.search(r"var config=(\{.*?\});", html, re.S)
    assert match, html[-300:]
    return json.loads(match.group(1))


class Kernel:
    """Runs cells one at a time in one live kernel."""

    def __init__(self, client, nb):
        self.client, self.nb = client, nb

    def run(self, source):
        cell = code(source)
        self.nb.cells.append(cell)
        self.client.execute_cell(cell, len(self.nb.cells) - 1)
        return cell

    def rerun(self, cell):
        cell["outputs"] = []
        self.client.execute_cell(cell, self.nb.cells.index(cell))
        return cell


@pytest.fixture
def kernel(tmp_path):
    nb = nbformat.v4.new_notebook()
    client = NotebookClient(nb, timeout=300, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        k = Kernel(client, nb)
        printed(k.run(SETUP))
        yield k


def test_display_and_a_bare_last_line_show_the_widget(kernel):
    created = kernel.run("analysis = CompatibilityAnalysis(folder, 1, h1, h2, train, test, 20, 20)")
    assert len(html_outputs(created)) == 1  # displayed when created, as before
    bare = kernel.run("analysis")
    results = outputs_of(bare, "execute_result")
    assert len(results) == 1
    html = results[0]["data"]["text/html"]
    assert 'class="bcml-widget"' in html and "mountWidget" in html
    assert results[0]["data"]["text/plain"].startswith("<CompatibilityAnalysis serving on 127.0.0.1:")
    config = widget_config(html)
    shown = kernel.run("display(analysis)")
    assert len(html_outputs(shown)) == 1 and outputs_of(shown, "display_data")
    assert widget_config(html_outputs(shown)[0]) == config  # the same server, a new root element
    answer = requests.get("http://127.0.0.1:%d/api/v1/sweep_status" % config["port"],
                          headers={"X-BCML-Token": config["token"]}, timeout=10)
    assert answer.status_code == 200 and answer.json()["state"] == "idle"
    # Created as the last line of its cell: one widget, not two.
    again = kernel.run("CompatibilityAnalysis('other-sweep', 1, h1, h2, train, test, 20, 20)")
    assert len(html_outputs(again)) == 1
    result = outputs_of(again, "execute_result")
    assert len(result) == 1 and list(result[0]["data"]) == ["text/plain"]
    # The mimebundle itself, and a closed widget: text only.
    bundle = last_json(kernel.run(
        "print(json.dumps(sorted(analysis._repr_mimebundle_())))"))
    assert bundle == ["text/html", "text/plain"]
    closed = kernel.run("analysis.close()\nanalysis")
    result = outputs_of(closed, "execute_result")
    assert list(result[0]["data"]) == ["text/plain"]
    assert "closed" in result[0]["data"]["text/plain"]


STATE = """
print(json.dumps({
    "live": sorted(s.port for s in live_servers()),
    "port": w.port, "token": w.token,
    "sweep_threads": sum(t.name == "bcml-sweep" and t.is_alive() for t in threading.enumerate()),
}))
"""


def test_rerunning_the_cell_leaves_one_server_and_no_orphan_sweep(kernel):
    cell = kernel.run(
        "w = CompatibilityAnalysis(folder, 100, h1, h2, train, test, 20, 20, "
        "lambda_c_stepsize=0.1, display_widget=False, executor='sequential')")
    first = last_json(kernel.run(STATE))
    for _ in range(3):
        kernel.rerun(cell)
    state = last_json(kernel.run(STATE))
    assert state["live"] == [state["port"]], state  # one live server after 3 re-runs
    assert state["token"] != first["token"]
    old = requests.get("http://127.0.0.1:%d/api/v1/sweep_status" % first["port"],
                       headers={"X-BCML-Token": first["token"]}, timeout=10) \
        if first["port"] == state["port"] else None
    assert old is None or old.status_code == 403

    # A sweep runs in the widget; the cell is re-run while it trains.
    running = last_json(kernel.run("""
old = w
old.sweep_manager.start_sweep()
deadline = time.monotonic() + 120
while len(old.sweep_manager.get_sweep_summary()["data"]) < 2 and time.monotonic() < deadline:
    time.sleep(0.05)
print(json.dumps({"running": old.sweep_manager.is_running(),
                  "points": len(old.sweep_manager.get_sweep_summary()["data"])}))
"""))
    assert running["running"] and running["points"] >= 2, running
    kernel.rerun(cell)
    after = last_json(kernel.run("""
on_disk = SweepManager.open_folder(folder)
print(json.dumps({
    "old_running": old.sweep_manager.is_running(), "old_joined": old.sweep_manager.wait(0),
    "old_state": old.sweep_manager.get_sweep_status()["state"], "old_serving": old.running,
    "new_state": w.sweep_manager.get_sweep_status()["state"],
    "new_points": len(w.sweep_manager.get_sweep_summary()["data"]),
    "disk_points": len(on_disk.get_sweep_summary()["data"]),
    "live": sorted(s.port for s in live_servers()), "port": w.port, "token": w.token,
    "sweep_threads": sum(t.name == "bcml-sweep" and t.is_alive() for t in threading.enumerate()),
}))
"""))
    assert after["old_running"] is False and after["old_joined"] is True, after
    assert after["old_state"] == "cancelled" and after["old_serving"] is False
    assert after["sweep_threads"] == 0, "no orphan sweep thread"
    assert after["live"] == [after["port"]]
    # The new widget shows what the cancelled sweep stored, not an empty idle sweep.
    assert after["new_points"] == after["disk_points"] >= 2, after
    assert after["new_state"] == "cancelled"

    # Start in the new widget works (the folder lock was released) and trains.
    base = "http://127.0.0.1:%d/api/v1" % after["port"]
    headers = {"X-BCML-Token": after["token"]}
    started = requests.post(base + "/start_sweep", headers=headers, timeout=30)
    assert started.status_code == 202, started.text
    assert started.json()["status"]["state"] == "running"
    begun = started.json()["status"]["completed_points"]
    deadline = time.monotonic() + 180
    while True:
        status = requests.get(base + "/sweep_status", headers=headers, timeout=10).json()
        if status["completed_points"] > begun:
            break
        assert status["state"] == "running" and time.monotonic() < deadline, status
        time.sleep(0.1)
    cancelled = requests.post(base + "/cancel_sweep", headers=headers, timeout=60)
    assert cancelled.status_code == 200 and cancelled.json()["cancelled"] is True
    final = last_json(kernel.run("assert w.sweep_manager.wait(60)\n" + STATE))
    assert final["live"] == [final["port"]] and final["sweep_threads"] == 0
