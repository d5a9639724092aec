"""Every view computed from the columns equals the JSON-era result; the REST routes serve them.

The reference is independent of the columns: h2 is loaded back from its saved
state, h1 and h2 are run again over the dataset, and the JSON-era record is
built from those predictions with ``build_record`` (the record writer of the
JSON era, kept in ``evaluation.py``).
"""

from __future__ import annotations

import csv
import http.client
import io
import json
import subprocess
import sys
import itertools

import numpy as np
import pytest
import torch

from backwardcompatibilityml.data import ReferenceOutputs
from backwardcompatibilityml.demo import build_digits_sweep, train_reference_model
from backwardcompatibilityml.engine.jobs import H2Outputs, JobResult, TrainingJob
from backwardcompatibilityml.evaluation import DatasetReference, Predictions, build_record
from backwardcompatibilityml.results import (
    ColumnView, FullRecordTooLarge, RecordView, ResultFiles, write_result,
)
from backwardcompatibilityml.results.column_view import ReferenceColumns
from backwardcompatibilityml.results.views import CSV_COLUMNS
from backwardcompatibilityml.store import POINT_FIELDS, SweepStore
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import CompatibilityAnalysis

API = "/api/v1"
SORTS = ("instance_id", "-instance_id", "h1_prediction", "-h1_prediction", "h2_prediction", "-h2_prediction",
         "ground_truth", "-ground_truth")
COMPACT_KEYS = ("error_counts", "regions", "sorted_classes", "h1_accuracy_by_class", "h2_accuracy_by_class",
                "h2_incompatible_count_by_class", "incompatible_total", "h2_performance") + POINT_FIELDS


# ---------------------------------------------------------------- the digits demo, swept once


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    folder = tmp_path_factory.mktemp("demo-sweep")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models: threads only contend on a busy machine
    try:
        manager, data = build_digits_sweep(str(folder), epochs=1, stepsize=1.0, executor="sequential")
        manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
        yield manager, data, folder
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def demo_h1(demo):
    return train_reference_model(demo[1], seed=0)  # the demo's h1, trained again the same way


def predict(model, dataset):
    ids, truth, labels = [], [], []
    with torch.no_grad():
        for batch_ids, x, y in dataset:
            ids.append(batch_ids)
            truth.append(y)
            labels.append(model(x).argmax(1))
    return [torch.cat(part).numpy().astype(np.int64) for part in (ids, truth, labels)]


def json_era_record(manager, data, h1, index):
    """The record the JSON era stored for a datapoint, recomputed from the models."""
    point = manager.get_sweep_summary()["data"][index]
    dataset = data.training_set if point["training"] else data.test_set
    h2 = manager.load_model(point["lambda_c"], point["family"])
    ids, truth, h1_labels = predict(h1, dataset)
    _, _, h2_labels = predict(h2, dataset)
    record = build_record(Predictions(ids, truth, h1_labels, h2_labels),
                          h1_performance=float(np.mean(h1_labels == truth)),
                          h2_performance=float(np.mean(h2_labels == truth)),
                          get_instance_metadata=data.metadata)
    record.update({key: point[key] for key in ("datapoint_index", "lambda_c", "training", "testing",
                                               "new-error", "strict-imitation")})
    record["performance_metric"] = "model_accuracy"
    return record


def csv_rows(view, positions):
    text = "".join(view.csv_chunks(positions))
    rows = list(csv.reader(io.StringIO(text)))
    assert tuple(rows[0]) == CSV_COLUMNS
    return rows[1:]


def assert_same_views(new, old, class_value):
    """Compact view, every filter x sort page and the CSV of two views agree."""
    compact_new, compact_old = new.compact(), old.compact()
    for key in COMPACT_KEYS:
        assert compact_new[key] == compact_old[key], key
    assert new.error_total() == old.error_total()
    for region, model, class_ in itertools.product((None, "progress", "common", "regress"), (None, "h1", "h2"),
                                                   (None, class_value)):
        for sort in SORTS:
            expected = old.page(region, class_, model, sort, offset=0, limit=10 ** 6)
            assert new.page(region, class_, model, sort, offset=0, limit=10 ** 6) == expected
            assert new.page(region, class_, model, sort, offset=3, limit=7)["items"] == expected["items"][3:10]
        rows = csv_rows(new, new.select(region, class_, model))
        items = old.page(region, class_, model, limit=10 ** 6)["items"]
        assert [row[:6] for row in rows] == [[str(item[k]) for k in CSV_COLUMNS[:6]] for item in items]


def test_every_view_of_the_demo_equals_the_json_era_record(demo, demo_h1):
    manager, data, _ = demo
    points = manager.get_sweep_summary()["data"]
    assert len(points) == 8
    regions_seen = set()
    for point in points:
        index = point["datapoint_index"]
        view = manager.get_evaluation_view(index)
        assert isinstance(view, ColumnView)
        record = json_era_record(manager, data, demo_h1, index)
        old = RecordView(record)
        assert_same_views(view, old, class_value=3)
        full = manager.get_evaluation(index)
        again = manager.get_evaluation(index)
        assert full is not again and full == again  # the caller's own dict
        for key, value in record.items():
            assert full[key] == value, key
        compact = view.compact()
        regions_seen |= {name for name, count in compact["regions"].items() if count}
        assert compact["regions"]["regress"] == compact["incompatible_total"]
    assert regions_seen == {"progress", "common", "regress"}  # the demo exercises every region


def test_the_csv_carries_both_confidences(demo):
    manager, data, folder = demo
    view = manager.get_evaluation_view(1)
    columns = ResultFiles(str(folder)).dataframe(1)
    by_id = columns.set_index("instance_id")
    rows = csv_rows(view, view.select(region="regress"))
    assert rows
    for row in rows:
        instance_id = int(row[0])
        assert row[1] == data.metadata(instance_id)
        assert float(row[6]) == pytest.approx(float(by_id.loc[instance_id, "h1_confidence"]), rel=1e-5)
        assert float(row[7]) == pytest.approx(float(by_id.loc[instance_id, "h2_confidence"]), rel=1e-5)


def test_dataframe_holds_every_instance(demo, demo_h1):
    manager, data, folder = demo
    frame = ResultFiles(str(folder)).dataframe(1)
    assert list(frame.columns) == ["instance_id", "ground_truth", "h1_prediction", "h2_prediction",
                                   "h1_confidence", "h2_confidence"]
    ids, truth, h1_labels = predict(demo_h1, data.test_set)
    assert frame["h1_prediction"].tolist() == h1_labels.tolist()
    assert frame["instance_id"].tolist() == ids.tolist()
    assert frame["ground_truth"].tolist() == truth.tolist()
    assert ((frame["h1_confidence"] > 0) & (frame["h1_confidence"] <= 1)).all()
    record = manager.get_evaluation(1)
    wrong = frame.loc[frame["h2_prediction"] != frame["ground_truth"], "instance_id"]
    assert sorted(wrong.tolist()) == record["models_error_overlap"][1]


def test_dataframe_without_pandas_says_how_to_get_it(demo):
    _, _, folder = demo
    script = (
        "import sys; sys.modules['pandas'] = None\n"
        "from backwardcompatibilityml.results import ResultFiles\n"
        "try:\n"
        "    ResultFiles(sys.argv[1]).dataframe(1)\n"
        "except ImportError as error:\n"
        "    print(error)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, str(folder)], capture_output=True, text=True, check=True)
    assert "pip install 'backwardcompatibilityml[pandas]'" in out.stdout


# ---------------------------------------------------------------- synthetic columns


def synthetic_view(tmp_path, ids, truth, h1, h2, index=1):
    store = SweepStore(tmp_path)
    n = len(ids)
    rng = np.random.default_rng(0)
    reference = DatasetReference(
        "testing", np.asarray(ids, np.int64), np.asarray(truth, np.int64), np.asarray(h1, np.int64),
        rng.random(n).astype(np.float32), float(np.mean(np.asarray(h1) == truth)),
        ReferenceOutputs(torch.nn.Identity(), torch.device("cpu")))
    train = DatasetReference("training", np.arange(2), np.zeros(2, np.int64), np.zeros(2, np.int64),
                             np.ones(2, np.float32), 1.0, reference.outputs)
    job = TrainingJob(0, 0.0, "new-error", 0, (index - 1, index), 0)
    result = JobResult(job, {}, {
        "training": H2Outputs(np.zeros(2, np.int64), np.ones(2, np.float32), 1.0),
        "testing": H2Outputs(np.asarray(h2, np.int64), rng.random(n).astype(np.float32),
                             float(np.mean(np.asarray(h2) == truth))),
    })
    write_result(store, result, {"training": train, "testing": reference})
    record = build_record(Predictions(*(np.asarray(a, np.int64) for a in (ids, truth, h1, h2))),
                          h1_performance=reference.h1_performance, h2_performance=result.outputs["testing"].performance)
    record.update({"datapoint_index": index, "lambda_c": 0.0, "training": False, "testing": True, "new-error": True,
                   "strict-imitation": False})
    return ResultFiles(store).view(index), RecordView(record)


@pytest.mark.parametrize("case", ["shuffled-ids", "binary", "wide-labels", "negative-labels", "no-errors"])
def test_column_views_equal_record_views(tmp_path, case):
    rng = np.random.default_rng(3)
    n = 3000
    ids = rng.permutation(n) * 7 - 5000
    classes = {"binary": 2, "wide-labels": 5, "negative-labels": 4}.get(case, 10)
    truth = rng.integers(0, classes, n)
    if case == "wide-labels":
        truth = truth * 1_000_003  # beyond direct binning: classes found through np.unique
    if case == "negative-labels":
        truth = truth - 2
    h1 = np.where(rng.random(n) < 0.7, truth, rng.permutation(truth))
    h2 = np.where(rng.random(n) < 0.75, truth, rng.permutation(truth))
    if case == "no-errors":
        h1 = h2 = truth
    new, old = synthetic_view(tmp_path, ids, truth, h1, h2)
    assert_same_views(new, old, class_value=int(truth[0]))
    assert new.ids.tolist() == sorted(new.ids.tolist())
    record = new.record()
    for key, value in old.record().items():
        assert record[key] == value, key


def test_full_record_refuses_beyond_its_limit(tmp_path):
    rng = np.random.default_rng(0)
    n = 50
    truth = rng.integers(0, 3, n)
    new, _ = synthetic_view(tmp_path, np.arange(n), truth, (truth + 1) % 3, truth)
    assert new.error_total() == n
    with pytest.raises(FullRecordTooLarge) as caught:
        new.full_json(max_errors=n - 1)
    assert (caught.value.errors, caught.value.limit) == (n, n - 1)
    assert json.loads(new.full_json(max_errors=n))["models_error_overlap"][0] == list(range(n))


def test_views_are_cached_and_follow_a_rewritten_file(tmp_path):
    truth = np.array([0, 1, 2, 0])
    synthetic_view(tmp_path, np.arange(4), truth, truth, [1, 1, 2, 0])
    files = ResultFiles(SweepStore(tmp_path))
    first = files.view(1)
    assert files.view(1) is first
    record = files.record(1)
    record["btc"] = -1.0  # the caller's own dict: the next reader gets a new one
    assert files.record(1) is not record and files.record(1)["btc"] != -1.0
    assert first.compact()["error_counts"] == {"h1": 0, "h2": 1}
    synthetic_view(tmp_path, np.arange(4), truth, truth, [1, 2, 2, 0])  # a new sweep rewrites datapoint 1
    second = files.view(1)
    assert second is not first and second.compact()["error_counts"] == {"h1": 0, "h2": 2}
    with pytest.raises(KeyError):
        files.view(7)


def test_reference_columns_bin_classes_once():
    columns = {"instance_id": np.arange(6), "ground_truth": np.array([5, 5, 7, 9, 9, 9], np.int8),
               "h1_prediction": np.array([5, 0, 7, 9, 1, 9], np.int8)}
    reference = ReferenceColumns(columns).ready()
    assert reference.classes.tolist() == [5, 7, 9]
    assert reference.class_counts.tolist() == [2, 1, 3]
    assert reference.h1_errors_by_class.tolist() == [1, 0, 1] and reference.h1_errors == 2


# ---------------------------------------------------------------- REST: instances.csv and ?full=1 over HTTP


def http_get(widget, path, token=True):
    conn = http.client.HTTPConnection("127.0.0.1", widget.port, timeout=60)
    try:
        conn.request("GET", API + path, headers={"X-BCML-Token": widget.token} if token else {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def demo_widget(demo):
    manager, _, _ = demo
    widget = CompatibilityAnalysis.from_sweep_manager(manager, port=0, display_widget=False)
    try:
        yield widget
    finally:
        widget.close()


def test_instances_csv_route_matches_the_paged_route(demo_widget):
    for query in ("", "region=regress", "region=progress&sort=-h2_prediction", "model=h1&class=3"):
        status, headers, body = http_get(demo_widget, "/evaluation_data/1/instances.csv?" + query)
        assert status == 200
        assert headers["content-type"].startswith("text/csv")
        assert headers["cache-control"] == "no-store"
        assert 'filename="evaluation-1-instances.csv"' in headers["content-disposition"]
        rows = list(csv.DictReader(io.StringIO(body.decode("utf-8"))))
        status, _, page = http_get(demo_widget, "/evaluation_data/1/instances?limit=500&" + query)
        items = json.loads(page)["items"]
        assert json.loads(page)["total"] == len(rows) <= 500
        assert [{k: row[k] for k in CSV_COLUMNS[:6]} for row in rows] == [
            {k: str(item[k]) for k in CSV_COLUMNS[:6]} for item in items]


@pytest.mark.parametrize("path,status", [
    ("/evaluation_data/1/instances.csv?region=nowhere", 400),
    ("/evaluation_data/1/instances.csv?sort=size", 400),
    ("/evaluation_data/99/instances.csv", 404),
    ("/evaluation_data/x/instances.csv", 400),
])
def test_instances_csv_route_errors_are_json(demo_widget, path, status):
    got, headers, body = http_get(demo_widget, path)
    assert got == status
    assert headers["content-type"].startswith("application/json") and "error" in json.loads(body)


def test_instances_csv_route_needs_the_token(demo_widget):
    status, _, body = http_get(demo_widget, "/evaluation_data/1/instances.csv", token=False)
    assert status == 403 and "error" in json.loads(body)


def test_full_record_over_http_is_413_beyond_the_limit(tmp_path):
    from backwardcompatibilityml.results.views import FULL_RECORD_MAX_ERRORS

    rng = np.random.default_rng(0)
    n = FULL_RECORD_MAX_ERRORS + 500
    truth = rng.integers(0, 10, n)
    synthetic_view(tmp_path, np.arange(n), truth, (truth + 1) % 10, truth)  # every instance is h1's error
    manager = SweepManager.open_folder(str(tmp_path))
    widget = CompatibilityAnalysis.from_sweep_manager(manager, port=0, display_widget=False)
    try:
        status, headers, body = http_get(widget, "/evaluation_data/1?full=1")
        assert status == 413 and headers["content-type"].startswith("application/json")
        message = json.loads(body)["error"]
        assert "100000" in message and "instances.csv" in message
        status, _, body = http_get(widget, "/evaluation_data/1")
        assert status == 200 and len(body) < 10_000
        assert json.loads(body)["regions"] == {"progress": n, "common": 0, "regress": 0}
        status, _, body = http_get(widget, "/evaluation_data/0?full=1")
        assert status == 200 and json.loads(body)["dataset_size"] == 2
    finally:
        widget.close()
