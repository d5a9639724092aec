"""The example notebooks run top to bottom in a real Jupyter kernel and produce what they promise."""

from __future__ import annotations

import json
import os
import re
import time

import nbformat
import requests
from nbclient import NotebookClient

NOTEBOOKS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "notebooks")


def load(name):
    with open(os.path.join(NOTEBOOKS, name)) as handle:
        return nbformat.read(handle, as_version=4)


def texts(cell):
    out = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            out.append(output["text"])
        elif output.get("output_type") == "error":
            out.append(f"{output['ename']}: {output['evalue']}")
    return "".join(out)


def widget_config(html):
    """Port and token from the widget's inline configuration."""
    match = re.search(r"var config=(\{.*?\});", html, re.S)
    assert match, "the widget HTML mounts the UI with its configuration"
    return json.loads(match.group(1))


def test_notebooks_have_no_stored_outputs():
    for name in os.listdir(NOTEBOOKS):
        if name.endswith(".ipynb"):
            for cell in load(name).cells:
                assert not cell.get("outputs"), f"{name} is committed without outputs"


def test_digits_notebook_serves_a_working_widget(tmp_path):
    nb = load("digits_compatibility_analysis.ipynb")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}})
    with client.setup_kernel():
        for index, cell in enumerate(nb.cells):
            client.execute_cell(cell, index)
        htmls = [o["data"]["text/html"] for c in nb.cells for o in c.get("outputs", [])
                 if "text/html" in o.get("data", {})]
        assert len(htmls) == 1
        html = htmls[0]
        assert 'class="bcml-widget"' in html and "window.BackwardCompatibilityML" in html
        config = widget_config(html)
        assert config["environment_type"] == "local" and len(config["token"]) >= 32
        base = f"http://127.0.0.1:{config['port']}/api/v1"
        headers = {"X-BCML-Token": config["token"]}
        # The widget's server lives in the kernel: drive a sweep through it.
        assert requests.get(f"{base}/sweep_status", headers=headers, timeout=5).json()["state"] == "idle"
        assert requests.get(f"{base}/sweep_status", timeout=5).status_code == 403
        assert requests.post(f"{base}/start_sweep", headers=headers, timeout=5).status_code == 202
        deadline = time.monotonic() + 120
        while requests.get(f"{base}/sweep_status", headers=headers, timeout=5).json()["running"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        summary = requests.get(f"{base}/sweep_summary", headers=headers, timeout=5).json()
        assert len(summary["data"]) == 20
        regress = requests.get(f"{base}/evaluation_data/1/instances", params={"region": "regress"},
                               headers=headers, timeout=5).json()
        if regress["items"]:
            assert re.fullmatch(r"digit \d, sample \d+", regress["items"][0]["metadata"])
            image = requests.get(f"{base}/instance_data/{regress['items'][0]['instance_id']}",
                                 params={"token": config["token"]}, timeout=5)
            assert image.headers["Content-Type"] == "image/png" and image.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_breast_cancer_notebook_reports_the_sweep(tmp_path):
    nb = load("breast_cancer_tabular.ipynb")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    output = "\n".join(texts(cell) for cell in nb.cells)
    assert "completed 20 points" in output
    rows = re.findall(r"^\s*(\d\.\d\d)\s+(new error|strict imitation)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$",
                      output, re.M)
    assert len(rows) == 10
    assert all(0 <= float(v) <= 1 for row in rows for v in row[2:])
    assert re.search(r"\d+ new errors without compatibility training", output)
    assert any("text/html" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))


def test_custom_training_loop_notebook_reports_scores(tmp_path):
    nb = load("custom_training_loop.ipynb")
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}).execute()
    output = "\n".join(texts(cell) for cell in nb.cells)
    rows = re.findall(r"^\s*([01]\.\d)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)$", output, re.M)
    assert [r[0] for r in rows] == ["0.0", "0.5", "1.0"]
    btc = [float(r[2]) for r in rows]
    nfr = [float(r[4]) for r in rows]
    assert all(0 <= b <= 1 for b in btc)
    assert nfr[2] <= nfr[0], "compatibility training does not raise the negative flip rate here"
