"""Older sweep folders open read-only: the earlier tool's format and this project's JSON era.

The fixtures (``tests/fixtures/``) were written by the code of each era (see
``tests/fixtures/README.md``). Expected values are computed here from the raw
JSON files, independently of the reader.
"""

from __future__ import annotations

import json
import os
import shutil

import pytest

from backwardcompatibilityml.results import RecordView, ResultFiles
from backwardcompatibilityml.store import POINT_FIELDS
from backwardcompatibilityml.sweep_management import SweepManager
from serve_process import fetch, serve, stop

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
EARLIER = os.path.join(FIXTURES, "earlier_tool_sweep")
JSON_ERA = os.path.join(FIXTURES, "json_era_sweep")


def copy(fixture, tmp_path):
    target = tmp_path / os.path.basename(fixture)
    shutil.copytree(fixture, target)
    return str(target)


def raw(folder, index):
    with open(os.path.join(folder, f"{index}-evaluation-data.json")) as handle:
        return json.load(handle)


def listing(folder):
    return sorted((name, os.path.getsize(os.path.join(folder, name))) for name in os.listdir(folder))


# ---------------------------------------------------------------- the earlier tool


def expected_earlier(folder, index):
    """What the reader must make of an earlier-tool record, computed from its raw JSON."""
    record = raw(folder, index)
    with open(os.path.join(folder, "sweep_summary.json")) as handle:
        summary = json.load(handle)
    w1, w2 = set(record["models_error_overlap"][0]), set(record["models_error_overlap"][1])
    n = record["dataset_size"]
    r1 = n - len(w1)
    point = summary["data"][index]
    return record, summary, {
        "datapoint_index": index, "lambda_c": record["lambda_c"],
        "training": record["training"], "testing": record["testing"],
        "new-error": point["new-error"], "strict-imitation": point["strict-imitation"],
        "performance": record["h2_performance"],
        "h1_performance": summary["h1_performance"] if record["testing"] else None,
        "btc": (n - len(w1 | w2)) / r1 if r1 else 1.0,
        "bec": len(w1 & w2) / len(w2) if w2 else 1.0,
        "nfr": len(w2 - w1) / n, "pfr": len(w1 - w2) / n, "dataset_size": n,
    }, w1, w2


def test_earlier_tool_fixture_is_in_the_earlier_format():
    record = raw(EARLIER, 1)
    assert isinstance(record["error_instances"], list)
    assert all("incompatibleInstanceIds" in row for row in record["h2_incompatible_instance_ids_by_class"])
    assert "nfr" not in record and "h1_accuracy_by_class" not in record and "new-error" not in record
    assert sorted(n for n in os.listdir(EARLIER) if n.endswith(".state")) == [
        f"{lc}-model-{family}.state" for lc in ("0.0", "0.5", "1.0") for family in ("new-error", "strict-imitation")]


def test_earlier_tool_folder_opens_read_only(tmp_path):
    folder = copy(EARLIER, tmp_path)
    before = listing(folder)
    manager = SweepManager.open_folder(folder)
    summary = manager.get_sweep_summary()
    assert [p["datapoint_index"] for p in summary["data"]] == list(range(12))
    regions_seen = set()
    for index in range(12):
        record_raw, _, expected, w1, w2 = expected_earlier(folder, index)
        point = summary["data"][index]
        for key, value in expected.items():
            assert point[key] == pytest.approx(value) if isinstance(value, float) else point[key] == value, key
        record = manager.get_evaluation(index)
        assert record["earlier_tool_btc"] == record_raw["btc"] and record["earlier_tool_bec"] == record_raw["bec"]
        assert record["models_error_overlap"] == [sorted(w1), sorted(w2), sorted(w1 & w2)]
        view = manager.get_evaluation_view(index)
        compact = view.compact()
        assert compact["regions"] == {"progress": len(w1 - w2), "common": len(w1 & w2), "regress": len(w2 - w1)}
        regions_seen |= {name for name, count in compact["regions"].items() if count}
        incompatible = {row["class"]: len(row["incompatibleInstanceIds"])
                        for row in record_raw["h2_incompatible_instance_ids_by_class"]}
        assert {row["class"]: row["count"] for row in compact["h2_incompatible_count_by_class"] if row["count"]} \
            == incompatible
        assert compact["incompatible_total"] == len(w2 - w1)
        assert compact["sorted_classes"] == record_raw["sorted_classes"]
        assert compact["h1_accuracy_by_class"] == [] and compact["h2_accuracy_by_class"] == []
        items = view.page(limit=500)["items"]
        by_id = {entry["instance_id"]: entry for entry in record_raw["error_instances"]}
        assert [item["instance_id"] for item in items] == sorted(w1 | w2)
        for item in items:
            entry = by_id[item["instance_id"]]
            assert (item["h1_prediction"], item["h2_prediction"], item["ground_truth"]) == (
                entry["h1_prediction"], entry["h2_prediction"], entry["ground_truth"])
            assert item["metadata"] == str(item["instance_id"])  # the earlier tool stored "" without a callback
    assert regions_seen == {"progress", "common", "regress"}
    with pytest.raises(Exception) as caught:
        manager.start_sweep()
    assert type(caught.value).__name__ == "ReadOnlySweepError"
    assert listing(folder) == before


def test_earlier_tool_dataframe_holds_its_error_instances(tmp_path):
    pytest.importorskip("pandas")
    folder = copy(EARLIER, tmp_path)
    frame = ResultFiles.open_folder(folder).dataframe(1)
    record = raw(folder, 1)
    assert frame["instance_id"].tolist() == sorted(e["instance_id"] for e in record["error_instances"])
    assert list(frame.columns) == ["instance_id", "ground_truth", "h1_prediction", "h2_prediction", "region"]


# ---------------------------------------------------------------- this project's JSON era


def test_json_era_folder_opens_read_only(tmp_path):
    folder = copy(JSON_ERA, tmp_path)
    before = listing(folder)
    with open(os.path.join(folder, "sweep_summary.json")) as handle:
        stored = json.load(handle)
    manager = SweepManager.open_folder(folder)
    summary = manager.get_sweep_summary()
    assert len(summary["data"]) == 12
    for point, stored_point in zip(summary["data"], stored["data"]):
        for field in POINT_FIELDS:
            assert point[field] == stored_point[field], field
    for index in range(12):
        record_raw = raw(folder, index)
        assert manager.get_evaluation(index) == record_raw
        view = manager.get_evaluation_view(index)
        assert isinstance(view, RecordView)
        w1, w2 = (set(ids) for ids in record_raw["models_error_overlap"][:2])
        compact = view.compact()
        assert compact["regions"] == {"progress": len(w1 - w2), "common": len(w1 & w2), "regress": len(w2 - w1)}
        assert [row["accuracy"] for row in compact["h2_accuracy_by_class"]] == [
            row["accuracy"] for row in record_raw["h2_accuracy_by_class"]]
        items = view.page(region="regress", limit=500)["items"]
        assert [item["instance_id"] for item in items] == sorted(w2 - w1)
        for item in items:
            entry = record_raw["error_instances"][str(item["instance_id"])]
            assert item["metadata"] == entry["metadata"] == f"digit sample {item['instance_id']}"
    assert listing(folder) == before


# ---------------------------------------------------------------- `serve FOLDER` over HTTP


@pytest.mark.parametrize("fixture", [EARLIER, JSON_ERA], ids=["earlier-tool", "json-era"])
def test_serve_folder_answers_over_http(tmp_path, fixture):
    folder = copy(fixture, tmp_path)
    process, port, token, _ = serve(folder)
    try:
        status, summary = fetch(port, token, "/sweep_summary")
        assert status == 200 and len(summary["data"]) == 12
        status, compact = fetch(port, token, "/evaluation_data/1")
        record = raw(folder, 1)
        w1, w2 = (set(ids) for ids in record["models_error_overlap"][:2])
        assert status == 200
        assert compact["regions"] == {"progress": len(w1 - w2), "common": len(w1 & w2), "regress": len(w2 - w1)}
        status, page = fetch(port, token, "/evaluation_data/1/instances?limit=500")
        assert status == 200 and [item["instance_id"] for item in page["items"]] == sorted(w1 | w2)
        status, full = fetch(port, token, "/evaluation_data/1?full=1")
        assert status == 200 and full["models_error_overlap"][0] == sorted(w1)
        status, error = fetch(port, token, "/evaluation_data/12")
        assert status == 404 and "error" in error
    finally:
        stop(process)
