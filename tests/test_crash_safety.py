"""No finished sweep is lost and no crash leftover stays: previous/ rotation, stale temporary files, SIGKILL soak."""

from __future__ import annotations

import json
import logging
import os

import pytest

from backwardcompatibilityml.store import SweepStore
from backwardcompatibilityml.sweep_management import SweepManager
from crash_child import corrupt_files, finished_jobs, job_files, temporary_files
from sweep_setup import build_manager


def _touch(folder, *names):
    for name in names:
        with open(os.path.join(folder, name), "w") as handle:
            json.dump({"name": name}, handle)


# -- the store alone -------------------------------------------------------------------------
def test_clear_keeps_every_finished_sweep_in_its_own_subfolder(tmp_path):
    store = SweepStore(tmp_path)
    _touch(tmp_path, "sweep_summary.json", "0-evaluation-data.json", "0.0-model-new-error.state", "notes.txt")
    first = store.clear()
    _touch(tmp_path, "sweep_summary.json", "0-evaluation.json", "0-evaluation.arrow", "training-reference.arrow")
    second = store.clear()
    assert first != second and store.previous_folders() == [first, second]
    assert os.path.dirname(first) == str(tmp_path / "previous")
    assert sorted(os.listdir(first)) == ["0-evaluation-data.json", "0.0-model-new-error.state", "sweep_summary.json"]
    assert sorted(os.listdir(second)) == [
        "0-evaluation.arrow", "0-evaluation.json", "sweep_summary.json", "training-reference.arrow",
    ]
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "previous"], "files that are not the sweep's stay"
    assert os.path.basename(first)[:8].isdigit() and os.path.basename(first)[8] == "T"


def test_clear_without_results_removes_the_bare_summary_and_keeps_nothing(tmp_path):
    store = SweepStore(tmp_path)
    _touch(tmp_path, "sweep_summary.json", "0-evaluation-data.json")
    kept = store.clear()
    _touch(tmp_path, "sweep_summary.json", "training-reference.arrow", ".tmp-abc")
    assert store.clear() is None, "a start that finished nothing is not kept"
    assert os.listdir(tmp_path) == ["previous"]
    assert store.previous_folders() == [kept] and os.listdir(kept) == ["0-evaluation-data.json", "sweep_summary.json"]
    assert store.clear() is None and store.previous_folders() == [kept]


def test_clear_without_keep_previous_deletes(tmp_path):
    store = SweepStore(tmp_path)
    _touch(tmp_path, "sweep_summary.json", "3-evaluation-data.json")
    assert store.clear(keep_previous=False) is None
    assert os.listdir(tmp_path) == []


def test_taking_the_lock_removes_stale_temporary_files(tmp_path):
    store = SweepStore(tmp_path)
    _touch(tmp_path, ".tmp-stale1", ".tmp-stale2", "sweep_summary.json")
    handle = store.lock()
    try:
        assert temporary_files(tmp_path) == [], "nobody else can be writing: they are stale"
        assert os.path.isfile(tmp_path / "sweep_summary.json")
        _touch(tmp_path, ".tmp-live")
        with pytest.raises(BlockingIOError):
            SweepStore(tmp_path).lock()
        assert temporary_files(tmp_path) == [".tmp-live"], "a lock that is refused removes nothing"
    finally:
        store.unlock(handle)


# -- through the SweepManager ----------------------------------------------------------------
def _broken_metric(model, dataset, device):
    raise RuntimeError("the metric broke")


def test_restarts_that_finish_nothing_never_push_out_a_finished_sweep(tmp_path, caplog):
    folder = tmp_path / "s"
    finished = build_manager(folder, epochs=1, stepsize=1.0, executor="sequential")
    finished.start_sweep_synchronous(progress_bar=False)
    assert finished.get_sweep_status()["state"] == "completed"
    logs = []
    for attempt in range(2):  # another configuration, failing in its first training
        other = build_manager(folder, epochs=2, stepsize=1.0, executor="sequential", performance_metric=_broken_metric)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            other.start_sweep_synchronous(progress_bar=False)
        assert other.get_sweep_status()["state"] == "failed"
        logs.append(caplog.text)
    kept = SweepStore(folder).previous_folders()
    assert len(kept) == 1, "only the restart that found results moved them"
    assert kept[0] in logs[0], "the log names where the results went"
    assert "moved" not in logs[1] and "complete" not in logs[1], "the second restart moved nothing and says so"
    previous = SweepManager.open_folder(kept[0])
    assert previous.get_sweep_status()["state"] == "completed"
    assert len(previous.get_sweep_summary()["data"]) == 8
    assert sum(name.endswith(".state") for name in os.listdir(kept[0])) == 4
    assert not any(name.endswith(".state") for name in os.listdir(folder))


# -- SIGKILL soak -------------------------------------------------------------------------------
def test_soak_ten_kills_at_successive_write_points_then_resume(tmp_path, crash_harness):
    """Kill k (1..10) lands at write k of its run, inside the temporary file (odd k) or just before it (even k).

    After every kill: 0 corrupt files, no temporary file but the one the kill left, nothing finished lost;
    every run (and the final resume) starts no training that was finished before it.
    """
    folder = tmp_path / "soak"
    started = 0
    for kill in range(1, 11):
        done_before = finished_jobs(folder)
        files_before = job_files(folder, done_before) if done_before else {}
        where = "inside" if kill % 2 else "before"
        run = crash_harness.run(folder, 1, 0.5, f"write:{kill}:{where}")
        assert run.stalled is not None, f"kill {kill}: the run ended before its write {kill}"
        assert not set(run.started) & set(done_before), f"kill {kill}: a finished training was redone"
        started += len(run.started)
        assert corrupt_files(folder) == [], f"kill {kill}"
        assert len(temporary_files(folder)) == (1 if where == "inside" else 0), f"kill {kill}: stale temporary files"
        done_after = finished_jobs(folder)
        assert set(done_before) <= set(done_after), f"kill {kill}: a finished training was lost"
        assert {name: job_files(folder, done_before).get(name) for name in files_before} == files_before
    done_before = finished_jobs(folder)
    assert done_before, "the soak got past at least one finished training"
    final = crash_harness.run(folder, 1, 0.5, "never")
    assert final.state == "completed"
    assert not set(final.started) & set(done_before)
    assert len(final.started) == 6 - len(done_before)
    assert temporary_files(folder) == [] and corrupt_files(folder) == []
    assert len(finished_jobs(folder)) == 6
