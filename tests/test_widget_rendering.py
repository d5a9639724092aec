"""Widget HTML, environment parameters and the compact / paged views of a
record (no server: the HTTP tests are in test_widget_server.py)."""

import json
import re
import time
import types

import numpy as np
import pytest

from backwardcompatibilityml.widgets.compatibility_analysis import rendering
from backwardcompatibilityml.widgets.compatibility_analysis.api import DatapointView, dumps
from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import (
    _detect_environment,
    build_environment_params,
    default_get_instance_metadata,
    render_widget_html,
)

ENV = {"environment_type": "local", "base_url": None, "port": 5012, "token": "ab12"}


@pytest.fixture
def resources(tmp_path, monkeypatch):
    """An empty resources folder in place of the package's; the asset cache
    is keyed by folder, so each test reads its own files."""
    monkeypatch.setattr(rendering, "RESOURCES", tmp_path)
    yield tmp_path
    rendering.clear_asset_cache()


def mount_config(html):
    match = re.search(r"var config=(\{.*?\});var lib", html)
    assert match, html[-500:]
    return match.group(1)


def test_public_names_are_importable():
    from backwardcompatibilityml.widgets import CompatibilityAnalysis
    from backwardcompatibilityml.widgets.compatibility_analysis import (
        CompatibilityAnalysis as Same,
        build_environment_params as b,
        default_get_instance_metadata as d,
        init_app_routes as i,
        render_widget_html as r,
    )

    assert CompatibilityAnalysis is Same
    assert all(callable(f) for f in (b, d, i, r))


def test_render_inlines_bundle_and_css_with_a_unique_root(resources):
    (resources / "widget.js").write_text(
        "window.BackwardCompatibilityML={mountWidget:function(){}};", encoding="utf-8")
    (resources / "widget.css").write_text(".bcml-widget{color:red}", encoding="utf-8")
    first, second = render_widget_html(ENV), render_widget_html(ENV)
    ids = [re.search(r'id="(bcml-widget-[0-9a-f]{32})"', h).group(1) for h in (first, second)]
    assert ids[0] != ids[1]
    assert first.startswith('<div class="bcml-widget" id="%s"></div>' % ids[0])
    assert "<style>.bcml-widget{color:red}</style>" in first
    assert "window.BackwardCompatibilityML={mountWidget:function(){}};" in first
    assert 'document.getElementById("%s")' % ids[0] in first
    assert json.loads(mount_config(first)) == ENV


def test_config_cannot_break_out_of_its_script(resources):
    (resources / "widget.js").write_text("var s='</script><script>alert(1)</script>';<!--",
                                         encoding="utf-8")
    (resources / "widget.css").write_text("a{content:'</style><b>x</b>'}",
                                          encoding="utf-8")
    evil = dict(ENV, token="</script><script>alert(1)</script>&\u2028\u2029",
                base_url="http://x/<!--")
    html = render_widget_html(evil)
    assert html.lower().count("</script") == 2  # only the two real closing tags
    assert html.lower().count("</style") == 1
    assert "<!--" not in html
    config_text = mount_config(html)
    for ch in "<>&\u2028\u2029":
        assert ch not in config_text
    assert json.loads(config_text)["token"] == evil["token"]
    # The bundle's string literal keeps its value (\x3c is "<").
    assert "var s='\\x3c/script><script>alert(1)\\x3c/script>';\\x3c!--" in html


def test_missing_bundle_gives_a_clear_message(resources):
    html = render_widget_html(ENV)
    assert 'class="bcml-widget"' in html
    assert "widget.js" in html and "missing" in html
    assert str(resources) not in html  # no file system path
    assert "<script" not in html


def test_render_uses_the_package_resources_through_importlib_resources():
    from importlib import resources as importlib_resources

    expected = importlib_resources.files(
        "backwardcompatibilityml.widgets.compatibility_analysis") / "resources"
    assert str(rendering.RESOURCES) == str(expected)
    assert str(rendering.RESOURCES).replace("\\", "/").endswith(
        "backwardcompatibilityml/widgets/compatibility_analysis/resources")
    for name in ("widget.js", "widget.css", "openapi.json"):
        assert (rendering.RESOURCES / name).is_file(), name


def test_the_bundle_is_read_once_not_per_render(resources):
    (resources / "widget.js").write_text("var first=1;", encoding="utf-8")
    (resources / "widget.css").write_text(".bcml-widget{color:red}", encoding="utf-8")
    assert "var first=1;" in render_widget_html(ENV)
    # Changed (or even deleted) on disk: the renders keep what was read.
    (resources / "widget.js").write_text("var second=2;", encoding="utf-8")
    (resources / "widget.css").unlink()
    for _ in range(3):
        html = render_widget_html(ENV)
        assert "var first=1;" in html and "var second" not in html
        assert "color:red" in html
    rendering.clear_asset_cache()
    html = render_widget_html(ENV)
    assert "var second=2;" in html and "color:red" not in html


def test_render_page_is_a_document(resources):
    (resources / "widget.js").write_text("1;", encoding="utf-8")
    page = rendering.render_page(ENV)
    assert page.startswith("<!DOCTYPE html>")
    assert 'name="referrer" content="no-referrer"' in page


def test_default_instance_metadata():
    assert default_get_instance_metadata(17) == "17"


def _service(ip="localhost", port=5000):
    return types.SimpleNamespace(ip=ip, port=port, with_credentials=False, is_private_link=False)


def test_build_environment_params_for_rai_core_flask_environments(tmp_path, monkeypatch):
    from rai_core_flask.environments import (
        AzureNBEnvironment,
        CredentialedVMEnvironment,
        DatabricksEnvironment,
        LocalIPythonEnvironment,
        PublicVMEnvironment,
    )

    assert build_environment_params(LocalIPythonEnvironment(_service())) == {
        "environment_type": "local", "base_url": None}
    assert build_environment_params(PublicVMEnvironment(_service("10.1.2.3", 5003))) == {
        "environment_type": "public_vm", "base_url": "http://10.1.2.3:5003"}
    assert build_environment_params(DatabricksEnvironment(_service())) == {
        "environment_type": "databricks", "base_url": None}
    assert build_environment_params(CredentialedVMEnvironment(_service()))[
        "environment_type"] == "credentialed_vm"
    nbvm = tmp_path / ".nbvm"
    nbvm.write_text("instance=myvm\ndomainsuffix=westus.instances.azureml.ms\n")
    monkeypatch.setattr(AzureNBEnvironment, "nbvm_file_path", str(nbvm))
    assert build_environment_params(AzureNBEnvironment(_service(port=5007))) == {
        "environment_type": "azureml",
        "base_url": "https://myvm-5007.westus.instances.azureml.ms"}
    assert build_environment_params(None) == {"environment_type": "local", "base_url": None}
    assert build_environment_params(object()) == {"environment_type": "local", "base_url": None}


def test_environment_detection(monkeypatch):
    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    assert build_environment_params(_detect_environment("127.0.0.1", 5001))[
        "environment_type"] == "local"
    monkeypatch.setenv("DATABRICKS_RUNTIME_VERSION", "15.4")
    assert build_environment_params(_detect_environment("127.0.0.1", 5001))[
        "environment_type"] == "databricks"


def test_azureml_detection_reads_the_nbvm_file(tmp_path, monkeypatch):
    from rai_core_flask.environments import AzureNBEnvironment

    from backwardcompatibilityml.widgets.compatibility_analysis import environment

    monkeypatch.delenv("DATABRICKS_RUNTIME_VERSION", raising=False)
    nbvm = tmp_path / ".nbvm"
    monkeypatch.setattr(environment, "AZURE_NBVM_FILE", str(nbvm))
    monkeypatch.setattr(AzureNBEnvironment, "nbvm_file_path", str(nbvm))
    assert _detect_environment("127.0.0.1", 5001) is None  # no marker: local
    nbvm.write_text("instance=myvm\ndomainsuffix=westus.instances.azureml.ms\n")
    assert build_environment_params(_detect_environment("127.0.0.1", 5001)) == {
        "environment_type": "azureml", "base_url": "https://myvm-5001.westus.instances.azureml.ms"}


IMPORTS_SCRIPT = """
import sys, torch
from backwardcompatibilityml.widgets import CompatibilityAnalysis
x = torch.rand(40, 4); y = torch.randint(0, 2, (40,))
data = [(torch.arange(i, i + 20), x[i:i + 20], y[i:i + 20]) for i in (0, 20)]
with CompatibilityAnalysis(sys.argv[1], 1, torch.nn.Linear(4, 2), torch.nn.Linear(4, 2),
                           data, data, 20, 20, display_widget=False) as widget:
    html = widget.render()
    assert "mountWidget" in html and widget.environment["environment_type"] == "local"
    print(sorted(m for m in sys.modules
                 if m.split(".")[0] in ("gevent", "flask_socketio", "rai_core_flask", "socketio")))
"""


def test_creating_a_local_widget_imports_no_gevent_socketio_or_rai_core_flask(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "DATABRICKS_RUNTIME_VERSION"}
    result = subprocess.run([sys.executable, "-c", IMPORTS_SCRIPT, str(tmp_path)], capture_output=True,
                            text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().splitlines()[-1] == "[]"


# ---------------------------------------------------------------- views


def big_record(n=100_000, classes=10, seed=0):
    from backwardcompatibilityml.evaluation import Predictions, build_record

    rng = np.random.default_rng(seed)
    ids = np.arange(n, dtype=np.int64) * 3 + 5
    expected = rng.integers(0, classes, n)
    h1 = np.where(rng.random(n) < 0.8, expected, rng.integers(0, classes, n))
    h2 = np.where(rng.random(n) < 0.85, expected, rng.integers(0, classes, n))
    record = build_record(Predictions(ids, expected, h1, h2), h1_performance=0.8,
                          h2_performance=0.85)
    record.update({"datapoint_index": 3, "lambda_c": 0.5, "training": False, "testing": True,
                   "new-error": True, "strict-imitation": False,
                   "performance_metric": "model_accuracy"})
    return record, ids, expected, h1, h2


def test_compact_view_of_a_100k_instance_record_is_kilobytes():
    record, ids, expected, h1, h2 = big_record()
    began = time.perf_counter()
    view = DatapointView(record)
    compact = view.compact_json()
    elapsed = time.perf_counter() - began
    assert len(compact) < 8_000, len(compact)
    assert len(dumps(record)) > 1_000_000
    assert elapsed < 5.0
    data = json.loads(compact)
    w1, w2 = h1 != expected, h2 != expected
    assert data["error_counts"] == {"h1": int(w1.sum()), "h2": int(w2.sum())}
    assert data["regions"] == {"progress": int((w1 & ~w2).sum()), "common": int((w1 & w2).sum()),
                               "regress": int((~w1 & w2).sum())}
    assert data["incompatible_total"] == data["regions"]["regress"]
    assert [r["error_count"] for r in data["h1_accuracy_by_class"]] == [
        int((w1 & (expected == c)).sum()) for c in range(10)]
    assert sum(r["count"] for r in data["h2_incompatible_count_by_class"]) == int((~w1 & w2).sum())
    for key in ("performance", "btc", "bec", "nfr", "pfr", "dataset_size", "lambda_c",
                "h2_performance", "performance_metric", "new-error", "strict-imitation"):
        assert data[key] == record[key]
    assert "error_instances" not in data and "models_error_overlap" not in data
    assert view.compact_json() is compact  # cached


def test_select_filters_and_sorts_like_a_direct_computation():
    record, ids, expected, h1, h2 = big_record(n=5000, classes=4, seed=1)
    view = DatapointView(record)
    w1, w2 = h1 != expected, h2 != expected
    region_masks = {None: w1 | w2, "progress": w1 & ~w2, "common": w1 & w2, "regress": ~w1 & w2}
    for region, mask in region_masks.items():
        for class_ in (None, 2):
            for model, model_mask in ((None, True), ("h1", w1), ("h2", w2)):
                keep = mask & model_mask & (True if class_ is None else expected == class_)
                got = view.ids[view.select(region, class_, model)].tolist()
                assert got == ids[keep].tolist()
    positions = view.select(None, None, None, "-h2_prediction")
    got = [(int(h2p), int(i)) for h2p, i in zip(view.columns["h2_prediction"][positions],
                                                  view.ids[positions])]
    assert got == sorted(got, key=lambda t: (-t[0], t[1]))
    assert view.ids[view.select(sort="-instance_id")].tolist() == sorted(
        ids[w1 | w2].tolist(), reverse=True)


def test_dumps_is_strict_json():
    assert json.loads(dumps({"a": float("nan"), "b": np.float32(0.5), "c": np.arange(2),
                             "d": (1, float("inf")), 3: np.int64(4)})) == {
        "a": None, "b": 0.5, "c": [0, 1], "d": [1, None], "3": 4}
