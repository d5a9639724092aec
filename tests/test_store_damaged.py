"""Damaged sweep folders: what a reader, a new sweep and the REST API make of files that cannot be read.

Every case is a real folder on disk (a sweep run once here, or the fixtures of
older formats) with one file damaged; the API is asked over HTTP on 127.0.0.1.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import shutil
import subprocess
import sys
import types

import pytest

from backwardcompatibilityml import folder_lock
from backwardcompatibilityml.results import CorruptDatapointError, ResultFiles
from backwardcompatibilityml.store import LOCK_FILE, SweepStore
from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.sweep_reader import SweepReader
from backwardcompatibilityml.widgets import CompatibilityAnalysis
from serve_process import fetch, serve, stop
from sweep_setup import build_manager

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None

HERE = os.path.dirname(os.path.abspath(__file__))
EARLIER = os.path.join(HERE, "fixtures", "earlier_tool_sweep")
JSON_ERA = os.path.join(HERE, "fixtures", "json_era_sweep")
UNREADABLE = "Datapoint 0 is stored but its files cannot be read."
needs_flock = pytest.mark.skipif(fcntl is None, reason="POSIX advisory locks only")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished sweep (8 datapoints: lambda_c 0 and 1, both families, training and testing)."""
    folder = tmp_path_factory.mktemp("finished") / "sweep"
    manager = build_manager(str(folder), epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    assert manager.get_sweep_status()["completed_points"] == 8
    return str(folder)


def copy(source, tmp_path, name="copy"):
    target = str(tmp_path / name)
    shutil.copytree(source, target)
    return target


def write(folder, name, text):
    mode = "wb" if isinstance(text, bytes) else "w"
    with open(os.path.join(folder, name), mode) as handle:
        handle.write(text)


def truncate(folder, name, size):
    path = os.path.join(folder, name)
    with open(path, "rb") as handle:
        data = handle.read()
    assert len(data) > size
    write(folder, name, data[:size])


def edit_json(folder, name, change):
    path = os.path.join(folder, name)
    with open(path) as handle:
        value = json.load(handle)
    change(value)
    write(folder, name, json.dumps(value))


def listing(folder):
    """Names, sizes and modification times of everything in ``folder``."""
    result = []
    for name in sorted(os.listdir(folder)):
        stat = os.stat(os.path.join(folder, name))
        result.append((name, stat.st_size, stat.st_mtime_ns))
    return result


def http_get(widget, path):
    conn = http.client.HTTPConnection("127.0.0.1", widget.port, timeout=60)
    try:
        conn.request("GET", "/api/v1" + path, headers={"X-BCML-Token": widget.token})
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


# ---------------------------------------------------------------- a summary of the wrong shape


WRONG_SUMMARIES = {
    "number": lambda summary: 5,
    "string": lambda summary: "abc",
    "list": lambda summary: [1],
    "data-int": lambda summary: dict(summary, data=5),
    "lambda-int": lambda summary: dict(summary, lambda_c_values=5),
    "families-int": lambda summary: dict(summary, families=5),
}


@pytest.mark.parametrize("case", sorted(WRONG_SUMMARIES))
def test_a_summary_of_the_wrong_shape_is_ignored_with_a_warning(finished, tmp_path, caplog, case):
    folder = copy(finished, tmp_path)
    edit = WRONG_SUMMARIES[case]
    with open(os.path.join(folder, "sweep_summary.json")) as handle:
        write(folder, "sweep_summary.json", json.dumps(edit(json.load(handle))))
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml"):
        opened = SweepManager.open_folder(folder)
    warned = [record for record in caplog.records if "sweep_summary.json" in record.getMessage()]
    assert len(warned) == 1, "the summary is read once when the folder opens, so it is reported once"
    summary = opened.get_sweep_summary()
    assert [point["datapoint_index"] for point in summary["data"]] == list(range(8))
    assert isinstance(summary["families"], list) and all(isinstance(f, dict) for f in summary["families"])
    assert opened.get_sweep_status()["completed_points"] == 8
    assert opened.get_evaluation(3)["datapoint_index"] == 3
    assert isinstance(opened.lambda_c_values, list)
    assert SweepReader(folder).get_sweep_summary() == summary
    stored = SweepStore(folder, writable=False).read_summary()
    if case in ("number", "string", "list"):
        assert stored is None
    else:
        field = {"data-int": "data", "lambda-int": "lambda_c_values", "families-int": "families"}[case]
        assert field not in stored and stored["fingerprint"] == opened.fingerprint() is not None


def test_read_summary_keeps_the_fields_of_the_right_type(tmp_path, caplog):
    write(str(tmp_path), "sweep_summary.json", json.dumps(
        {"data": [], "families": 5, "lambda_c_values": [0.0, "x"], "state": ["running"], "fingerprint": "f"}))
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml"):
        summary = SweepStore(str(tmp_path), writable=False).read_summary()
    assert summary == {"data": [], "fingerprint": "f"}
    assert any("families, lambda_c_values, state" in record.getMessage() for record in caplog.records)


def test_a_new_sweep_on_a_folder_with_a_damaged_summary_moves_it_aside(finished, tmp_path):
    folder = copy(finished, tmp_path)
    write(folder, "sweep_summary.json", "5")
    write(folder, "0-evaluation.json", "5")
    manager = build_manager(folder, epochs=1, stepsize=1.0)  # opening it for a new sweep works
    assert manager.get_sweep_status()["completed_points"] == 7  # datapoint 0 cannot be read
    manager.start_sweep_synchronous(progress_bar=False)
    assert manager.get_sweep_status()["state"] == "completed"
    assert manager.get_sweep_status()["completed_points"] == 8
    (previous,) = SweepStore(folder).previous_folders()
    with open(os.path.join(previous, "sweep_summary.json")) as handle:
        assert handle.read().strip() == "5"
    with open(os.path.join(previous, "0-evaluation.json")) as handle:
        assert handle.read().strip() == "5"
    assert os.path.isfile(os.path.join(previous, "7-evaluation.arrow")), "the readable results are kept too"
    assert manager.get_evaluation(0)["datapoint_index"] == 0


def test_serve_opens_a_folder_with_a_summary_of_the_wrong_shape(finished, tmp_path):
    folder = copy(finished, tmp_path)
    write(folder, "sweep_summary.json", "[1]")
    process, port, token, output = serve(folder)
    try:
        assert "Traceback" not in "".join(output)
        status, summary = fetch(port, token, "/sweep_summary")
        assert status == 200 and len(summary["data"]) == 8
    finally:
        stop(process)


# ---------------------------------------------------------------- a datapoint that cannot be read


@pytest.mark.parametrize("content", ["5", "[1, 2]", '{"datapoint_index": 0'])
def test_a_datapoint_file_that_cannot_be_read_is_skipped(finished, tmp_path, caplog, content):
    folder = copy(finished, tmp_path)
    write(folder, "0-evaluation.json", content)
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml"):
        opened = SweepManager.open_folder(folder)
    assert any("0-evaluation.json" in record.getMessage() for record in caplog.records)
    assert [point["datapoint_index"] for point in opened.get_sweep_summary()["data"]] == list(range(1, 8))
    with pytest.raises(CorruptDatapointError) as raised:
        opened.get_evaluation(0)
    assert raised.value.datapoint_index == 0
    with pytest.raises(CorruptDatapointError):
        opened.get_evaluation_view(0)
    with pytest.raises(KeyError):
        opened.get_evaluation(8)
    assert opened.get_evaluation(1)["datapoint_index"] == 1


@pytest.mark.parametrize("case", ["instance-id-text", "class-null"])
def test_an_earlier_tool_record_of_bad_types_is_skipped(tmp_path, caplog, case):
    folder = copy(EARLIER, tmp_path)
    if case == "instance-id-text":
        edit_json(folder, "0-evaluation-data.json", lambda r: r["error_instances"].append({"instance_id": "abc"}))
    else:
        edit_json(folder, "0-evaluation-data.json", lambda r: r.__setitem__("sorted_classes", [None]))
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml"):
        opened = SweepManager.open_folder(folder)
    assert any("skipping datapoint 0" in record.getMessage() for record in caplog.records)
    assert [point["datapoint_index"] for point in opened.get_sweep_summary()["data"]] == list(range(1, 12))
    with pytest.raises(CorruptDatapointError):
        opened.get_evaluation(0)
    assert opened.get_evaluation(1)["datapoint_index"] == 1
    files = ResultFiles.open_folder(folder)
    assert 0 not in files.read_points() and 1 in files.read_points()


JSON_ERA_DAMAGE = {
    "overlap-text": lambda r: r["models_error_overlap"].__setitem__(0, ["a"]),
    "overlap-fraction": lambda r: r["models_error_overlap"].__setitem__(0, [1.5, 1e30]),
    "overlap-null": lambda r: r.__setitem__("models_error_overlap", [None, [1, 2]]),
    "class-rows-int": lambda r: r.__setitem__("h1_accuracy_by_class", [1, 2]),
    "instance-text": lambda r: r["error_instances"].__setitem__("102", "x"),
}


@pytest.mark.parametrize("case", sorted(JSON_ERA_DAMAGE))
def test_a_json_era_record_of_bad_types_is_corrupt_not_unknown(tmp_path, case):
    folder = copy(JSON_ERA, tmp_path)
    edit_json(folder, "0-evaluation-data.json", JSON_ERA_DAMAGE[case])
    opened = SweepManager.open_folder(folder)
    with pytest.raises(CorruptDatapointError):
        opened.get_evaluation_view(0)
    with pytest.raises(CorruptDatapointError):
        opened.dataframe(0)
    assert opened.get_evaluation_view(1).counts()["h1"] >= 0


@pytest.mark.parametrize("label", [2 ** 70, 1e300, -2 ** 64])
def test_a_json_era_label_outside_int64_reads_as_missing(tmp_path, label):
    """A stored prediction no int64 holds: its columns take it as missing, and the pages still work."""
    folder = copy(JSON_ERA, tmp_path)
    edit_json(folder, "0-evaluation-data.json",
              lambda r: r["error_instances"].__setitem__("102", {**r["error_instances"]["102"], "h2_prediction": label}))
    view = SweepManager.open_folder(folder).get_evaluation_view(0)
    page = view.page(limit=500)
    assert 102 in {row["instance_id"] for row in page["items"]}
    assert len(page["items"]) == len(set(view.h1_errors) | set(view.h2_errors)), "every error instance listed"


# ---------------------------------------------------------------- the REST API


def damage_arrow(folder):
    truncate(folder, "0-evaluation.arrow", 100)


def damage_info(folder):
    truncate(folder, "0-evaluation.json", 30)


def damage_reference(folder):
    truncate(folder, "training-reference.arrow", 50)


def damage_json_era(folder):
    edit_json(folder, "0-evaluation-data.json", JSON_ERA_DAMAGE["instance-text"])


def damage_earlier(folder):
    edit_json(folder, "0-evaluation-data.json", lambda r: r["error_instances"].append({"instance_id": "abc"}))


API_CASES = {
    "columns-truncated": (None, damage_arrow),
    "info-truncated": (None, damage_info),
    "reference-truncated": (None, damage_reference),
    "json-era-bad-types": (JSON_ERA, damage_json_era),
    "earlier-tool-bad-types": (EARLIER, damage_earlier),
}


@pytest.mark.parametrize("case", sorted(API_CASES))
def test_the_api_answers_a_stored_but_unreadable_datapoint_with_500_json(finished, tmp_path, case):
    source, damage = API_CASES[case]
    folder = copy(source or finished, tmp_path)
    damage(folder)
    manager = SweepManager.open_folder(folder)
    widget = CompatibilityAnalysis.from_sweep_manager(manager, port=0, display_widget=False)
    try:
        for path in ("/evaluation_data/0", "/evaluation_data/0?full=1", "/evaluation_data/0/instances",
                     "/evaluation_data/0/instances.csv"):
            status, content_type, body = http_get(widget, path)
            assert status == 500, (path, status, body)
            assert content_type.startswith("application/json")
            assert json.loads(body) == {"error": UNREADABLE}
            assert folder.encode() not in body and b"Traceback" not in body
        status, _, body = http_get(widget, "/evaluation_data/1")  # a datapoint of the other dataset
        assert status == 200 and json.loads(body)["datapoint_index"] == 1
        status, _, body = http_get(widget, "/evaluation_data/99")
        assert status == 404 and json.loads(body) == {"error": "Unknown evaluation id 99."}
    finally:
        widget.close()


# ---------------------------------------------------------------- the lock probe of readers


def interrupted_copy(finished, tmp_path):
    """A copy of the finished sweep made to look interrupted: its last datapoint missing, state running."""
    folder = copy(finished, tmp_path)
    for name in ("7-evaluation.json", "7-evaluation.arrow"):
        os.unlink(os.path.join(folder, name))
    edit_json(folder, "sweep_summary.json", lambda s: s.update(state="running", data=s["data"][:7]))
    return folder


@pytest.mark.parametrize("lock_file", [False, True], ids=["no-lock-file", "lock-file"])
def test_opening_a_folder_read_only_writes_nothing(finished, tmp_path, lock_file):
    folder = interrupted_copy(finished, tmp_path)
    lock_path = os.path.join(folder, LOCK_FILE)
    if not lock_file and os.path.exists(lock_path):
        os.unlink(lock_path)
    elif lock_file and not os.path.exists(lock_path):
        write(folder, LOCK_FILE, "")
    write(folder, ".tmp-x", "half a file")
    before = listing(folder)
    opened = SweepManager.open_folder(folder)
    assert opened.get_sweep_status()["state"] == "interrupted"  # the probe ran: nobody holds the lock
    assert SweepStore(folder, writable=False).is_locked() is False
    assert listing(folder) == before


@needs_flock
def test_the_probe_sees_a_lock_held_by_another_process(finished, tmp_path):
    folder = interrupted_copy(finished, tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import fcntl, sys\n"
         "handle = open(sys.argv[1], 'w')\n"
         "fcntl.flock(handle.fileno(), fcntl.LOCK_EX)\n"
         "print('locked', flush=True)\n"
         "sys.stdin.read()\n",
         os.path.join(folder, LOCK_FILE)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = SweepStore(folder, writable=False)
        assert store.is_locked() is True
        assert store.is_locked() is True, "the probe leaves the holder's lock alone"
        assert SweepManager.open_folder(folder).get_sweep_status()["state"] == "running"
        with pytest.raises(BlockingIOError):
            SweepStore(folder).lock()
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    assert SweepStore(folder, writable=False).is_locked() is False
    assert SweepManager.open_folder(folder).get_sweep_status()["state"] == "interrupted"


@needs_flock
def test_the_probe_sees_a_running_sweep_of_this_process(tmp_path):
    folder = str(tmp_path / "running")
    manager = build_manager(folder, epochs=3, stepsize=0.25)
    manager.start_sweep()
    try:
        assert manager.is_running()
        assert SweepStore(folder, writable=False).is_locked() is True
    finally:
        manager.cancel_sweep(wait=60)
        manager.wait(60)
    assert SweepStore(folder, writable=False).is_locked() is False


@needs_flock
def test_a_sweep_is_not_refused_because_a_reader_probes_at_that_moment(tmp_path, monkeypatch):
    store = SweepStore(str(tmp_path))
    write(str(tmp_path), LOCK_FILE, "")
    reader = os.open(os.path.join(str(tmp_path), LOCK_FILE), os.O_RDONLY)
    fcntl.flock(reader, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a probe in progress
    waits = []

    def probe_ends(seconds):  # the lock's wait before its next try: the probe ends meanwhile (no timing)
        waits.append(seconds)
        fcntl.flock(reader, fcntl.LOCK_UN)

    monkeypatch.setattr(folder_lock, "time", types.SimpleNamespace(sleep=probe_ends))
    try:
        handle = store.lock()
    finally:
        os.close(reader)
    try:
        assert len(waits) == 1, "refused once while the probe held the lock, then taken"
        assert SweepStore(str(tmp_path), writable=False).is_locked() is True
    finally:
        store.unlock(handle)


@needs_flock
def test_a_lock_held_by_a_sweep_is_refused_after_the_retries(tmp_path, monkeypatch):
    holder = SweepStore(str(tmp_path))
    handle = holder.lock()
    waits = []
    monkeypatch.setattr(folder_lock, "time", types.SimpleNamespace(sleep=waits.append))
    try:
        with pytest.raises(BlockingIOError, match="is in use"):
            SweepStore(str(tmp_path)).lock()
        assert len(waits) >= 1 and sum(waits) < 1.0, "a short wait for a probe, not for a sweep"
    finally:
        holder.unlock(handle)


BAD_POINT_FIELDS = {
    "lambda_c-text": ("lambda_c", "abc"),
    "lambda_c-above-one": ("lambda_c", 1.5),
    "flag-text": ("training", "yes"),
    "score-text": ("btc", "0.75"),
    "size-negative": ("dataset_size", -3),
}


@pytest.mark.parametrize("case", sorted(BAD_POINT_FIELDS))
def test_a_summary_point_of_bad_types_is_replaced_by_its_record(tmp_path, caplog, case):
    field, value = BAD_POINT_FIELDS[case]
    folder = copy(JSON_ERA, tmp_path)
    edit_json(folder, "sweep_summary.json", lambda s: s["data"][0].__setitem__(field, value))
    with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml"):
        points = ResultFiles.open_folder(folder).read_points()
    assert any("ignoring the point of datapoint 0" in r.getMessage() and repr(field) in r.getMessage()
               for r in caplog.records)
    with open(os.path.join(JSON_ERA, "0-evaluation-data.json")) as handle:
        record = json.load(handle)
    assert points[0][field] == record[field] != value


@pytest.mark.parametrize("case", sorted(BAD_POINT_FIELDS))
def test_a_point_of_bad_types_is_skipped_everywhere(finished, tmp_path, caplog, case):
    field, value = BAD_POINT_FIELDS[case]
    json_era = copy(JSON_ERA, tmp_path, "json-era")
    edit_json(json_era, "sweep_summary.json", lambda s: s["data"][0].__setitem__(field, value))
    edit_json(json_era, "0-evaluation-data.json", lambda r: r.__setitem__(field, value))
    columns = copy(finished, tmp_path, "columns")
    edit_json(columns, "0-evaluation.json", lambda info: info.__setitem__(field, value))
    for folder in (json_era, columns):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="backwardcompatibilityml"):
            opened = SweepManager.open_folder(folder)
            indices = [point["datapoint_index"] for point in opened.get_sweep_summary()["data"]]
        assert 0 not in indices and 1 in indices, folder
        assert any("ignoring the point of datapoint 0" in r.getMessage() for r in caplog.records), folder
