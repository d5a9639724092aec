"""SweepReader: the read side of a sweep folder, shared by SweepManager and usable alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from backwardcompatibilityml.store import LOCK_FILE, SweepStore
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.sweep_reader import SweepReader
from sweep_setup import build_manager
from test_widget_server import GatedAccuracy


def test_a_reader_serves_what_the_manager_wrote_and_cannot_train(tmp_path):
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    reader = SweepReader(manager.folder_name)
    assert isinstance(manager, SweepReader) and not hasattr(reader, "start_sweep")
    assert reader.get_sweep_summary() == manager.get_sweep_summary()
    assert reader.get_sweep_status()["state"] == "completed"
    assert reader.get_sweep_status()["completed_points"] == 8
    assert reader.lambda_c_values == manager.lambda_c_values == [0.0, 1.0]
    assert reader.fingerprint() == manager.fingerprint() is not None
    assert reader.configuration() == manager.configuration()
    assert reader.get_evaluation(3) == manager.get_evaluation(3)
    with pytest.raises(KeyError):
        reader.get_evaluation(8)
    opened = SweepManager.open_folder(manager.folder_name)
    assert opened.get_sweep_summary() == reader.get_sweep_summary()


def test_a_folder_without_a_sweep_is_refused_by_name(tmp_path):
    (tmp_path / "empty").mkdir()
    for opener in (SweepReader, SweepManager.open_folder):
        with pytest.raises(ValueError, match="empty.* holds no sweep|is not a folder"):
            opener(str(tmp_path / "empty"))


def test_a_read_only_reader_follows_the_sweep_another_manager_writes(tmp_path):
    # h1's two performances, then two per job: the 5th call is the second job's, after the first job's points.
    metric = GatedAccuracy(stall_at=5)
    writer = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, performance_metric=metric)
    writer.start_sweep()
    try:
        assert metric.stalled.wait(60), "the sweep reached the second job's evaluation"
        reader = SweepManager.open_folder(writer.folder_name)
        status = reader.get_sweep_status()
        assert (status["state"], status["completed_points"], status["total_points"]) == ("running", 2, 8)
        assert len(reader.get_sweep_summary()["data"]) == 2
        with pytest.raises(KeyError):
            reader.get_evaluation(7)
    finally:
        metric.gate.set()
    assert writer.wait(60) and writer.get_sweep_status()["state"] == "completed"
    assert len(reader.dataframe(7)) > 0, "a datapoint stored since the last read, read first as a table"
    status = reader.get_sweep_status()
    assert (status["state"], status["completed_points"]) == ("completed", 8)
    assert reader.get_sweep_summary() == writer.get_sweep_summary()
    assert reader.get_evaluation(7) == writer.get_evaluation(7)


@pytest.mark.skipif(sys.platform == "win32", reason="flock: POSIX only")
def test_a_read_only_reader_sees_the_writer_die(tmp_path):
    """The writer's lock goes with its process: running turns into interrupted though the folder did not change."""
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    folder = manager.folder_name
    for name in ("7-evaluation.json", "7-evaluation.arrow"):
        os.unlink(os.path.join(folder, name))
    with open(os.path.join(folder, "sweep_summary.json")) as handle:
        summary = json.load(handle)
    summary.update(state="running", data=summary["data"][:7])
    with open(os.path.join(folder, "sweep_summary.json"), "w") as handle:
        json.dump(summary, handle)
    writer = subprocess.Popen(  # a stand-in for the sweeping process: it holds the folder's lock
        [sys.executable, "-c", "import fcntl, sys\nhandle = open(sys.argv[1], 'w')\n"
         "fcntl.flock(handle.fileno(), fcntl.LOCK_EX)\nprint('locked', flush=True)\nsys.stdin.read()\n",
         os.path.join(folder, LOCK_FILE)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert writer.stdout.readline().strip() == "locked"
        reader = SweepManager.open_folder(folder)
        assert reader.get_sweep_status()["state"] == "running"
        listing = sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(folder))
    finally:
        writer.kill()
        writer.wait(30)
    assert sorted((entry.name, entry.stat().st_mtime_ns) for entry in os.scandir(folder)) == listing
    status = reader.get_sweep_status()
    assert (status["state"], status["completed_points"]) == ("interrupted", 7)


def test_concurrent_reads_of_a_followed_folder_end_in_its_latest_state(tmp_path, monkeypatch):
    """Two API threads read while the folder changes under the first one's read: the later state wins."""
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    folder = manager.folder_name
    reader = SweepManager.open_folder(folder)
    assert reader.get_sweep_status()["state"] == "completed"
    SweepStore(folder).write_summary({**reader._store.read_summary()})  # a write: the next read reloads

    first_read, go_on = threading.Event(), threading.Event()
    load = reader._records.load

    def slow_first_load():  # thread A: reads the folder, then stalls before using what it read
        summary = load()
        if not first_read.is_set():
            first_read.set()
            assert go_on.wait(60)
        return summary

    monkeypatch.setattr(reader._records, "load", slow_first_load)
    a = threading.Thread(target=reader.get_sweep_status)
    a.start()
    assert first_read.wait(60)
    writer = SweepStore(folder)  # meanwhile another process starts a new sweep in the folder
    handle = writer.lock()
    try:
        writer.clear()
        writer.write_summary({"state": "running", "data": [], "lambda_c_values": [0.0, 1.0],
                              "families": reader._records.extra.get("families") or []})
        b_waits = threading.Event()
        lock = reader._follow_lock

        class Observed:  # thread B's reload waits for A's (set when B asks for the lock)
            def __enter__(self):
                b_waits.set()
                return lock.__enter__()

            def __exit__(self, *exc):
                return lock.__exit__(*exc)

        monkeypatch.setattr(reader, "_follow_lock", Observed())
        b = threading.Thread(target=reader.get_sweep_status)
        b.start()
        assert b_waits.wait(60)
        go_on.set()
        a.join(60)
        b.join(60)
        for _ in range(2):  # and it stays so: no write since
            status = reader.get_sweep_status()
            assert (status["state"], status["completed_points"]) == ("running", 0), status
    finally:
        go_on.set()
        writer.unlock(handle)
