"""The columnar store: Arrow IPC files written atomically, memory-mapped on read, readable without this package."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pyarrow as pa
import pytest
import torch

from backwardcompatibilityml.data import ReferenceOutputs
from backwardcompatibilityml.engine.jobs import H2Outputs, JobResult, TrainingJob
from backwardcompatibilityml.evaluation import DatasetReference
from backwardcompatibilityml.results import ResultFiles, read_columns, write_result
from backwardcompatibilityml.results.columns import narrow_labels, read_metadata, write_columns
from backwardcompatibilityml.results.writer import ensure_reference
from backwardcompatibilityml.store import POINT_FIELDS, SweepStore


def reference(name, ids, targets, h1, performance=0.5, seed=0):
    rng = np.random.default_rng(seed)
    return DatasetReference(
        name=name, ids=np.asarray(ids, dtype=np.int64), targets=np.asarray(targets, dtype=np.int64),
        h1_predictions=np.asarray(h1, dtype=np.int64),
        h1_confidences=rng.random(len(ids)).astype(np.float32), h1_performance=performance,
        outputs=ReferenceOutputs(torch.nn.Identity(), torch.device("cpu")),
    )


def outputs(predictions, seed=1):
    predictions = np.asarray(predictions, dtype=np.int64)
    confidences = np.random.default_rng(seed).random(len(predictions)).astype(np.float32)
    return H2Outputs(predictions, confidences, float(np.mean(predictions == 0)))


def test_narrow_labels_picks_the_smallest_signed_type():
    assert narrow_labels(np.array([0, 9])).dtype == np.int8
    assert narrow_labels(np.array([-128, 127])).dtype == np.int8
    assert narrow_labels(np.array([0, 128])).dtype == np.int16
    assert narrow_labels(np.array([0, 40_000])).dtype == np.int32
    assert narrow_labels(np.array([-(2 ** 40), 0])).dtype == np.int64
    assert narrow_labels(np.array([], dtype=np.int64)).dtype == np.int8
    values = np.array([3, -7, 100])
    assert narrow_labels(values).tolist() == values.tolist()


def test_round_trip_is_memory_mapped_and_survives_a_rewrite(tmp_path):
    store = SweepStore(tmp_path)
    first = {"a": np.arange(1000, dtype=np.int64), "b": np.linspace(0, 1, 1000).astype(np.float32)}
    write_columns(store, "x.arrow", first, {"bcml.dataset": "testing"})
    read = read_columns(store.path("x.arrow"))
    assert list(read) == ["a", "b"]
    assert read["a"].dtype == np.int64 and read["b"].dtype == np.float32
    assert not read["a"].flags.owndata and not read["a"].flags.writeable  # a view over the map
    assert np.array_equal(read["a"], first["a"]) and np.array_equal(read["b"], first["b"])
    assert read_metadata(store.path("x.arrow")) == {"bcml.format": "bcml-columns/1", "bcml.dataset": "testing"}
    # A rewrite replaces the file (os.replace): arrays mapped from the old one keep their values.
    write_columns(store, "x.arrow", {"a": np.zeros(10, dtype=np.int64), "b": np.ones(10, dtype=np.float32)})
    assert np.array_equal(read["a"], first["a"])
    assert read_columns(store.path("x.arrow"))["a"].tolist() == [0] * 10
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".tmp-")]


def test_a_failing_write_leaves_the_old_file_and_no_temporary_file(tmp_path):
    store = SweepStore(tmp_path)
    write_columns(store, "x.arrow", {"a": np.arange(5)})
    with pytest.raises((pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError)):
        write_columns(store, "x.arrow", {"a": np.array([object(), object()], dtype=object)})
    assert read_columns(store.path("x.arrow"))["a"].tolist() == [0, 1, 2, 3, 4]
    assert sorted(os.listdir(tmp_path)) == ["x.arrow"]


def job_result(lambda_index=0, family="new-error", train_pred=(0, 1, 1, 2), test_pred=(2, 2, 0)):
    job = TrainingJob(lambda_index, 0.5 * lambda_index, family, 0 if family == "new-error" else 1,
                      (4 * lambda_index + (0 if family == "new-error" else 2),
                       4 * lambda_index + (1 if family == "new-error" else 3)), 0)
    return JobResult(job, {}, {"training": outputs(train_pred), "testing": outputs(test_pred)})


def references():
    return {
        "training": reference("training", [10, 11, 12, 13], [0, 1, 2, 2], [0, 1, 1, 2], performance=0.75),
        "testing": reference("testing", [20, 21, 22], [2, 0, 0], [2, 1, 0], performance=2 / 3),
    }


def test_write_result_writes_the_files_and_returns_points(tmp_path):
    store = SweepStore(tmp_path)
    refs = references()
    points = write_result(store, job_result(1, "strict-imitation"), refs, performance_metric="model_accuracy")
    assert sorted(os.listdir(tmp_path)) == [
        "6-evaluation.arrow", "6-evaluation.json", "7-evaluation.arrow", "7-evaluation.json",
        "testing-reference.arrow", "training-reference.arrow",
    ]
    assert [p["datapoint_index"] for p in points] == [6, 7]
    for point in points:
        assert set(point) == set(POINT_FIELDS) | {"family", "dataset"}
        assert point["family"] == "strict-imitation" and point["strict-imitation"] and not point["new-error"]
        assert point["lambda_c"] == 0.5
    train, test = points
    assert (train["dataset"], train["training"], train["testing"]) == ("training", True, False)
    assert (test["dataset"], test["training"], test["testing"]) == ("testing", False, True)
    # training: truth 0 1 2 2, h1 0 1 1 2 (wrong: 12), h2 0 1 1 2 -> identical
    assert train["btc"] == 1.0 and train["bec"] == 1.0 and train["nfr"] == 0.0 and train["pfr"] == 0.0
    # testing: truth 2 0 0, h1 2 1 0 (wrong: 21), h2 2 2 0 (wrong: 21) -> identical errors
    assert test["h1_performance"] == pytest.approx(2 / 3) and test["dataset_size"] == 3
    info = json.loads((tmp_path / "7-evaluation.json").read_text())
    assert info["counts"] == {"h1_errors": 1, "h2_errors": 1, "common_errors": 1, "progress": 0, "regress": 0}
    assert info["performance_metric"] == "model_accuracy" and info["format"] == "bcml-columns/1"
    assert (info["columns"], info["reference"], info["rows"]) == ("7-evaluation.arrow", "testing-reference.arrow", 3)
    ref = read_columns(tmp_path / "testing-reference.arrow")
    assert ref["instance_id"].tolist() == [20, 21, 22] and ref["instance_id"].dtype == np.int64
    assert ref["ground_truth"].tolist() == [2, 0, 0] and ref["ground_truth"].dtype == np.int8
    assert ref["h1_prediction"].tolist() == [2, 1, 0]
    assert np.array_equal(ref["h1_confidence"], refs["testing"].h1_confidences)
    h2 = read_columns(tmp_path / "7-evaluation.arrow")
    assert list(h2) == ["h2_prediction", "h2_confidence"]
    assert h2["h2_prediction"].tolist() == [2, 2, 0]
    assert ResultFiles(store).read_points() == {6: train, 7: test}


def test_a_resumed_sweep_in_another_order_is_aligned_to_the_stored_reference(tmp_path):
    store = SweepStore(tmp_path)
    first = references()
    write_result(store, job_result(0), first)
    # The same instances, iterated in another order (a shuffling DataLoader on resume).
    order = [2, 0, 1]
    shuffled = dict(first)
    ref = first["testing"]
    shuffled["testing"] = DatasetReference(
        "testing", ref.ids[order].copy(), ref.targets[order].copy(), ref.h1_predictions[order].copy(),
        ref.h1_confidences[order].copy(), ref.h1_performance, ref.outputs)
    assert ensure_reference(store, shuffled["testing"]).tolist() == [1, 2, 0]
    # h2 predicts 1, 2, 0 for ids 20, 21, 22: in the shuffled order that is 0, 1, 2
    write_result(store, job_result(1, test_pred=(0, 1, 2)), shuffled)
    assert read_columns(tmp_path / "testing-reference.arrow")["instance_id"].tolist() == [20, 21, 22]
    assert read_columns(tmp_path / "5-evaluation.arrow")["h2_prediction"].tolist() == [1, 2, 0]
    files = ResultFiles(store)
    items = files.view(5).page()["items"]
    assert {i["instance_id"]: i["h2_prediction"] for i in items} == {20: 1, 21: 2}  # 22 is right
    # A reference of other instances replaces the stored one.
    other = reference("testing", [30, 31, 32], [0, 0, 0], [0, 0, 1])
    assert ensure_reference(store, other) is None
    assert read_columns(tmp_path / "testing-reference.arrow")["instance_id"].tolist() == [30, 31, 32]


def test_a_million_instance_datapoint_file_is_under_8_mb(tmp_path):
    store = SweepStore(tmp_path)
    n = 1_000_000
    rng = np.random.default_rng(0)
    truth = rng.integers(0, 10, n)
    refs = {
        "training": reference("training", np.arange(4), [0, 1, 2, 2], [0, 1, 1, 2]),
        "testing": reference("testing", np.arange(n) + 5, truth, rng.integers(0, 10, n)),
    }
    write_result(store, job_result(0, train_pred=(0, 0, 0, 0), test_pred=rng.integers(0, 10, n)), refs)
    assert os.path.getsize(tmp_path / "1-evaluation.arrow") <= 8 * 1024 * 1024
    assert os.path.getsize(tmp_path / "1-evaluation.arrow") >= 5 * n  # int8 + float32 columns, uncompressed


def test_other_tools_read_the_files_without_this_package(tmp_path):
    store = SweepStore(tmp_path)
    write_result(store, job_result(0), references())
    script = (
        "import sys, pandas, pyarrow.feather as f\n"
        "assert 'backwardcompatibilityml' not in sys.modules\n"
        "ref = pandas.read_feather(sys.argv[1] + '/testing-reference.arrow')\n"
        "h2 = f.read_table(sys.argv[1] + '/1-evaluation.arrow').to_pandas()\n"
        "frame = ref.join(h2)\n"
        "print(frame[['instance_id', 'ground_truth', 'h1_prediction', 'h2_prediction']].values.tolist())\n"
    )
    out = subprocess.run([sys.executable, "-I", "-c", script, str(tmp_path)], capture_output=True, text=True,
                         cwd=str(tmp_path), check=True)
    assert json.loads(out.stdout) == [[20, 2, 2, 2], [21, 0, 1, 2], [22, 0, 0, 0]]
