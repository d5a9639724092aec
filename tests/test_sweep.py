"""SweepManager: threading, status, streaming, cancel, failure, persistence, resume, MLflow."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import threading
import time

import pytest
import torch

from backwardcompatibilityml.sweep_management import (
    ReadOnlySweepError,
    SweepAlreadyRunningError,
    SweepManager,
    lambda_c_grid,
)
from conftest import MLP
from crash_child import corrupt_files, finished_jobs, job_files, temporary_files
from sweep_setup import build_manager, digits_sets

TESTS = os.path.dirname(os.path.abspath(__file__))


class GatedMLP(MLP):
    """An MLP whose forward stalls at chosen call numbers, counted over every copy, until the test releases it.

    The sweep trains deep copies of h2 in its own thread; the count and the gates are class
    attributes, so every copy shares them.
    """

    calls = 0
    gates: dict = {}

    def forward(self, x):
        GatedMLP.calls += 1
        gate = GatedMLP.gates.get(GatedMLP.calls)
        if gate is not None:
            reached, release = gate
            reached.set()
            assert release.wait(60), "the test never released the sweep"
        return super().forward(x)


def cancel_while_stalled(manager, n, start):
    """Start a sweep of GatedMLP copies with ``start()``, stall it at h2's forward call ``n``, cancel, release.

    ``n`` counts from ``start()`` (the count is reset here, after ``build_manager``'s dry run).
    ``cancel_sweep()`` blocks until the sweep has stopped, so it is called from a helper thread; the
    stalled step goes on only once the cancel is registered, so a cancel that lands within one step
    leaves ``GatedMLP.calls == n``. Returns what ``cancel_sweep()`` returned and ``GatedMLP.calls``
    when it returned.
    """
    reached, release = threading.Event(), threading.Event()
    GatedMLP.calls, GatedMLP.gates = 0, {n: (reached, release)}
    outcome = {}

    def cancel():
        outcome["cancelled"] = manager.cancel_sweep()
        outcome["calls"] = GatedMLP.calls

    canceller = threading.Thread(target=cancel, name="canceller")
    try:
        start()
        assert reached.wait(60), f"the sweep reached h2's call {n}"
        assert not manager.cancel_requested, "no cancel asked yet"
        canceller.start()
        # cancel_sweep() registers the cancel before it waits for the sweep (stalled here) to stop.
        deadline = time.monotonic() + 60
        while not manager.cancel_requested:
            assert time.monotonic() < deadline, "cancel_sweep() registered the cancel"
            time.sleep(0.005)
        assert manager.is_running(), "the stalled sweep is still running when the cancel is registered"
    except BaseException:
        release.set()
        manager.cancel_sweep()  # a failing test leaves no sweep running into the next test
        raise
    finally:
        release.set()
        GatedMLP.gates = {}
    canceller.join(60)
    assert not canceller.is_alive(), "cancel_sweep() returned once the sweep stopped"
    return outcome["cancelled"], outcome["calls"]


def training_step_call(finished_jobs, epochs, step):
    """h2's forward call number at training step ``step`` (from 1) of the job after ``finished_jobs``.

    In the sequential sweep of sweep_setup a job calls h2 once per training step (10 an epoch: 240
    rows in batches of 24) and once per evaluation batch (10 training and 2 test batches), then
    stores its 2 points before the next job starts.
    """
    return finished_jobs * (epochs * 10 + 12) + step


def gated_h2():
    """A GatedMLP h2 whose weights do not depend on the tests run before."""
    torch.manual_seed(1)
    return GatedMLP(64, 24, 10)


def test_lambda_grid():
    assert lambda_c_grid(0.3) == [0.0, 0.3, 0.6, 0.9]
    assert lambda_c_grid(0.25) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert lambda_c_grid(0.1)[3] == 0.3 and lambda_c_grid(0.1)[-1] == 1.0
    assert lambda_c_grid(1.0) == [0.0, 1.0]
    for bad in (0, -0.1, 1.5, float("nan"), 1e-9):
        with pytest.raises(ValueError, match="lambda_c_stepsize"):
            lambda_c_grid(bad)


def test_threaded_sweep_streams_and_completes(tmp_path):
    # Each job calls h2 30 times in training (3 epochs of 10 batches) and 12 times in evaluation:
    # calls 52 and 57 are steps of the second job's training, after the first job's points are stored.
    stalls = (52, 57)
    GatedMLP.calls, GatedMLP.gates = 0, {n: (threading.Event(), threading.Event()) for n in stalls}
    torch.manual_seed(1)
    manager = build_manager(tmp_path / "sweep", epochs=3, h2=GatedMLP(64, 24, 10))
    h1_before = {k: v.clone() for k, v in manager.h1.state_dict().items()}
    h2_before = {k: v.clone() for k, v in manager.h2.state_dict().items()}
    GatedMLP.calls = 0
    assert manager.get_sweep_status()["state"] == "idle"
    manager.start_sweep()
    seen = []
    try:
        with pytest.raises(SweepAlreadyRunningError):
            manager.start_sweep()
        for n in stalls:
            reached, release = GatedMLP.gates[n]
            assert reached.wait(60), f"the sweep reached h2's call {n}"
            seen.append((manager.get_sweep_status(), len(manager.get_sweep_summary()["data"])))
            release.set()
    finally:
        for _reached, release in GatedMLP.gates.values():
            release.set()
    assert manager.wait(60)
    GatedMLP.gates = {}
    (first, first_points), (second, second_points) = seen
    assert first["running"] and second["running"]
    assert first_points == second_points == 2, "the first job's points appear before the end"
    assert first["completed_points"] == second["completed_points"] == 2
    assert 0 < first["percent_complete"] < second["percent_complete"] < 1, "percent moves while no point completes"
    status = manager.get_sweep_status()
    assert status["state"] == "completed" and status["percent_complete"] == 1.0 and status["error"] is None
    assert status["completed_points"] == status["total_points"] == 20
    summary = manager.get_sweep_summary()
    assert [p["datapoint_index"] for p in summary["data"]] == list(range(20))
    for p in summary["data"]:
        i = p["datapoint_index"]
        assert p["lambda_c"] == [0.0, 0.25, 0.5, 0.75, 1.0][i // 4]
        assert p["new-error"] == (i % 4 < 2) and p["strict-imitation"] == (i % 4 >= 2)
        assert p["training"] == (i % 2 == 0) and p["testing"] == (i % 2 == 1)
        assert 0 <= p["btc"] <= 1 and 0 <= p["bec"] <= 1
    assert summary["performance_metric"] == "model_accuracy"
    assert summary["h1_performance"] == summary["data"][1]["h1_performance"]
    files = set(os.listdir(manager.folder_name))
    assert {"sweep_summary.json", "0-evaluation.json", "19-evaluation.json",
            "0.25-model-new-error.state", "1.0-model-strict-imitation.state"} <= files
    assert not [f for f in files if f.startswith(".tmp-")]
    with pytest.raises(KeyError):
        manager.get_evaluation(20)
    record = manager.get_evaluation(5)
    assert record == manager.get_evaluation(5) and record is not manager.get_evaluation(5), "the caller's own"
    for k, v in manager.h1.state_dict().items():
        assert torch.equal(v, h1_before[k]), "h1 is never modified"
    for k, v in manager.h2.state_dict().items():
        assert torch.equal(v, h2_before[k]), "every job trains a copy of h2"
    model = manager.load_model(0.5, "strict-imitation")
    x = manager.test_set[0][1]
    assert not torch.equal(model(x), manager.h2(x))


def test_new_error_and_strict_imitation_differ_and_lambda_matters(tmp_path):
    manager = build_manager(tmp_path / "s", epochs=2, stepsize=1.0)
    manager.start_sweep_synchronous()
    states = {(lc, f): manager.load_model(lc, f).state_dict() for lc in (0.0, 1.0)
              for f in ("new-error", "strict-imitation")}
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)  # noqa: E731
    assert same(states[(0.0, "new-error")], states[(0.0, "strict-imitation")]), "lambda_c=0 is the same training"
    assert not same(states[(1.0, "new-error")], states[(1.0, "strict-imitation")])
    assert not same(states[(0.0, "new-error")], states[(1.0, "new-error")])


def test_reopened_folder_is_served_without_training(tmp_path):
    manager = build_manager(tmp_path / "s", stepsize=0.5)
    manager.start_sweep_synchronous()
    summary = manager.get_sweep_summary()
    again = build_manager(tmp_path / "s", stepsize=0.5)
    assert again.get_sweep_status()["state"] == "completed"
    assert again.get_sweep_summary() == summary
    assert again.get_evaluation(3) == manager.get_evaluation(3)
    browsed = SweepManager.open_folder(tmp_path / "s")
    assert browsed.get_sweep_summary() == summary
    with pytest.raises(ReadOnlySweepError):
        browsed.start_sweep()
    with pytest.raises(ValueError, match="holds no sweep|is not a folder"):
        SweepManager.open_folder(tmp_path / "empty")


def test_cancel_stops_within_a_step_and_keeps_finished_points(tmp_path):
    stall = training_step_call(2, epochs=4, step=5)  # in the 3rd job, after 2 jobs (4 points) are stored
    manager = build_manager(tmp_path / "s", epochs=4, stepsize=0.1, h2=gated_h2())
    assert cancel_while_stalled(manager, stall, manager.start_sweep) == (True, stall), "no step after the cancel"
    assert GatedMLP.calls == stall, "none after cancel_sweep() returned"
    status = manager.get_sweep_status()
    assert status["state"] == "cancelled" and not status["running"]
    kept = manager.get_sweep_summary()["data"]
    assert [p["datapoint_index"] for p in kept] == [0, 1, 2, 3], "exactly the finished jobs' points are kept"
    on_disk = json.load(open(os.path.join(manager.folder_name, "sweep_summary.json")))
    assert on_disk["state"] == "cancelled" and on_disk["data"] == kept
    for i in range(5):
        assert os.path.exists(os.path.join(manager.folder_name, f"{i}-evaluation.json")) == (i < 4)
    assert manager.cancel_sweep() is False, "nothing to cancel when idle"
    assert manager.cancel_requested, "the last sweep was asked to stop"
    manager.start_sweep_synchronous(progress_bar=False)  # resumes in the same manager
    assert not manager.cancel_requested, "a new start clears the cancel"
    assert manager.get_sweep_status()["state"] == "completed"


FAIL_AFTER = {"calls": None}


class FailingMLP(MLP):
    """Raises on its k-th forward call (counted across deep copies through a module global)."""

    def forward(self, x):
        if FAIL_AFTER["calls"] is not None:
            FAIL_AFTER["calls"] -= 1
            if FAIL_AFTER["calls"] < 0:
                raise RuntimeError("exploding gradient detector tripped")
        return super().forward(x)


def test_failure_is_reported_and_the_sweep_can_start_again(tmp_path, caplog):
    torch.manual_seed(0)
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=0.5, h2=FailingMLP(64, 24, 10))
    per_job = 10 + 10 + 2  # 1 epoch of 10 steps + evaluation of 10 + 2 batches
    FAIL_AFTER["calls"] = 2 * per_job + 5
    try:
        with caplog.at_level(logging.ERROR):
            manager.start_sweep()
            manager.wait(60)
        status = manager.get_sweep_status()
        assert status["state"] == "failed"
        # Where the training was is added as a note: the exception keeps its type and message.
        assert status["error"] == ("RuntimeError: exploding gradient detector tripped "
                                   "(while training at epoch 1, batch 6 (step 6), on a batch of 24 instances)")
        assert type(manager.last_exception) is RuntimeError
        assert str(manager.last_exception) == "exploding gradient detector tripped"
        assert "Traceback" not in status["error"]
        assert "Traceback" in caplog.text, "the traceback goes to logging"
        assert len(manager.get_sweep_summary()["data"]) == 4
        FAIL_AFTER["calls"] = None
        manager.start_sweep()
        manager.wait(60)
        assert manager.get_sweep_status()["state"] == "completed"
        assert len(manager.get_sweep_summary()["data"]) == 12
    finally:
        FAIL_AFTER["calls"] = None


def test_failing_metadata_callback_is_named_when_records_are_read(tmp_path):
    def metadata(instance_id):
        raise ValueError(f"no metadata for {instance_id}")

    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, get_instance_metadata=metadata)
    manager.start_sweep_synchronous(progress_bar=False)
    assert manager.get_sweep_status()["state"] == "completed", "training needs no metadata"
    with pytest.raises(RuntimeError, match="get_instance_metadata raised ValueError: no metadata for"):
        manager.get_evaluation(1)


def test_resume_and_configuration_change(tmp_path, caplog):
    folder = tmp_path / "s"
    manager = build_manager(folder, epochs=2, stepsize=0.25, h2=gated_h2())
    stall = training_step_call(4, epochs=2, step=5)  # in the 5th job, after 4 jobs (8 points)
    assert cancel_while_stalled(manager, stall, manager.start_sweep) == (True, stall)
    kept = {p["datapoint_index"] for p in manager.get_sweep_summary()["data"]}
    assert kept == set(range(8))
    mtimes = {i: os.stat(folder / f"{i}-evaluation.json").st_mtime_ns for i in kept}
    resumed = build_manager(folder, epochs=2, stepsize=0.25, h2=manager.h2)  # the same initial h2
    with caplog.at_level(logging.INFO):
        resumed.start_sweep_synchronous()
    assert "resuming" in caplog.text
    assert resumed.get_sweep_status()["state"] == "completed"
    assert len(resumed.get_sweep_summary()["data"]) == 20
    for i, mtime in mtimes.items():
        assert os.stat(folder / f"{i}-evaluation.json").st_mtime_ns == mtime, "finished points are not retrained"
    caplog.clear()
    changed = build_manager(folder, epochs=1, stepsize=0.5, h2=manager.h2)
    assert len(changed.get_sweep_summary()["data"]) == 20, "the old results are served until a new sweep starts"
    with caplog.at_level(logging.INFO):
        changed.start_sweep_synchronous()
    assert "other models, data or settings" in caplog.text
    assert len(changed.get_sweep_summary()["data"]) == 12
    assert not (folder / "0.25-model-new-error.state").exists()
    kept = [path for path in (folder / "previous").iterdir() if path.is_dir()]
    assert len(kept) == 1 and (kept[0] / "0.25-model-new-error.state").exists(), "replaced results are kept aside"
    previous = SweepManager.open_folder(kept[0])
    assert len(previous.get_sweep_summary()["data"]) == 20 and previous.get_sweep_status()["state"] == "completed"


def test_crash_mid_sweep_leaves_readable_files_and_resumes(tmp_path, crash_harness):
    """SIGKILL inside the 4th model-state write (3 trainings complete), then resume: deterministic."""
    folder = tmp_path / "crash"
    killed = crash_harness.run(folder, 1, 0.25, "model:4:inside")
    assert killed.stalled is not None and killed.stalled.endswith(".state") and killed.state is None
    assert len(temporary_files(folder)) == 1, "killed inside a write: its temporary file is left behind"
    assert corrupt_files(folder) == []
    done = finished_jobs(folder)
    assert len(done) == 3
    kept = job_files(folder, done)
    assert len(kept) >= 3 * 3
    assert len(SweepManager.open_folder(folder).get_sweep_summary()["data"]) >= 6, "what was finished is served"
    resumed = crash_harness.run(folder, 1, 0.25, "never")
    assert resumed.state == "completed"
    assert not set(resumed.started) & set(done), "finished trainings are not redone"
    assert len(resumed.started) == 10 - 3
    assert temporary_files(folder) == [], "the stale temporary file is removed when the sweep takes the lock"
    assert corrupt_files(folder) == []
    assert job_files(folder, done) == kept, "the files of finished trainings are not rewritten"
    finished = SweepManager.open_folder(folder)
    assert len(finished.get_sweep_summary()["data"]) == 20
    assert finished.get_sweep_status()["state"] == "completed"


def test_argument_errors_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="lambda_c_stepsize"):
        build_manager(tmp_path / "a", stepsize=0)
    with pytest.raises(ValueError, match="number_of_epochs"):
        build_manager(tmp_path / "a", epochs=0)
    with pytest.raises(ValueError, match="device"):
        build_manager(tmp_path / "a", device="gpu")
    with pytest.raises(TypeError, match="get_instance_metadata"):
        build_manager(tmp_path / "a", get_instance_metadata="not callable")
    with pytest.raises(TypeError, match="h2 must be a torch.nn.Module"):
        build_manager(tmp_path / "a", h2=lambda x: x)
    base = build_manager(tmp_path / "b")
    args = dict(folder_name=tmp_path / "c", number_of_epochs=1, h1=base.h1, h2=base.h2,
                training_set=base.training_set, test_set=base.test_set, batch_size_train=24, batch_size_test=40,
                OptimizerClass=torch.optim.SGD, optimizer_kwargs={"lr": 0.1},
                NewErrorLossClass=base.loss_classes["new-error"],
                StrictImitationLossClass=base.loss_classes["strict-imitation"])
    with pytest.raises(TypeError, match="training_set"):
        SweepManager(**dict(args, training_set=iter(base.training_set)))
    with pytest.raises(TypeError, match="optimizer_kwargs"):
        SweepManager(**dict(args, optimizer_kwargs=[0.1]))
    with pytest.raises(TypeError, match="OptimizerClass"):
        SweepManager(**dict(args, OptimizerClass="SGD"))
    with pytest.raises(ValueError, match="batch_size_train"):
        SweepManager(**dict(args, batch_size_train=-3))
    with pytest.raises(ValueError, match="folder_name"):
        open(tmp_path / "file", "w").close()
        SweepManager(**dict(args, folder_name=tmp_path / "file"))


def test_mlflow_run_is_written_and_read_back(tmp_path, monkeypatch):
    import mlflow  # the [mlflow] extra is part of the test set-up (.ci/run)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.chdir(tmp_path)
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=0.5, use_ml_flow=True, ml_flow_run_name="bc-run")
    manager.start_sweep_synchronous()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("Default").experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.run_name == "bc-run" and run.info.status == "FINISHED"
    assert run.data.params["lambda_c_stepsize"] == "0.5" and run.data.params["number_of_epochs"] == "1"
    assert run.data.params["new_error_loss_class"].endswith("BCCrossEntropyLoss")
    assert run.data.tags["backwardcompatibilityml.sweep_id"] == manager.get_sweep_status()["sweep_id"]
    history = client.get_metric_history(run.info.run_id, "strict_imitation_test_btc")
    assert [m.step for m in history] == [0, 1, 2]
    points = {p["datapoint_index"]: p for p in manager.get_sweep_summary()["data"]}
    assert [m.value for m in history] == pytest.approx([points[i]["btc"] for i in (3, 7, 11)])
    nfr = client.get_metric_history(run.info.run_id, "new_error_train_nfr")
    assert [m.value for m in nfr] == pytest.approx([points[i]["nfr"] for i in (0, 4, 8)])
    assert mlflow is not None


def test_mlflow_run_of_a_cancelled_sweep_is_killed(tmp_path, monkeypatch):
    import mlflow  # noqa: F401
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    manager = build_manager(tmp_path / "s", epochs=3, stepsize=0.1, use_ml_flow=True, h2=gated_h2())
    stall = training_step_call(1, epochs=3, step=5)  # in the 2nd job, after the first job's points
    assert cancel_while_stalled(manager, stall, manager.start_sweep) == (True, stall)
    assert len(manager.get_sweep_summary()["data"]) == 2
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    run = client.search_runs([client.get_experiment_by_name("Default").experiment_id])[0]
    assert run.info.status == "KILLED" and run.info.run_name == "compatibility_sweep"


def test_use_ml_flow_without_mlflow_says_how_to_install(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_mlflow(name, *args, **kwargs):
        if name == "mlflow" or name.startswith("mlflow."):
            raise ImportError("No module named 'mlflow'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_mlflow)
    with pytest.raises(ImportError, match=r"pip install 'backwardcompatibilityml\[mlflow\]'"):
        build_manager(tmp_path / "s", use_ml_flow=True)


def test_cancel_from_another_thread_stops_a_synchronous_sweep(tmp_path):
    manager = build_manager(tmp_path / "s", epochs=4, stepsize=0.1, h2=gated_h2())
    assert manager.wait(0.01) is True, "nothing runs yet"
    runner = threading.Thread(target=manager.start_sweep_synchronous)
    stall = training_step_call(1, epochs=4, step=5)  # in the 2nd job
    assert cancel_while_stalled(manager, stall, runner.start) == (True, stall), "stopped within the step"
    assert manager.get_sweep_status()["state"] == "cancelled"
    assert len(manager.get_sweep_summary()["data"]) == 2
    runner.join(60)
    assert not runner.is_alive()


def test_cancel_lands_within_one_training_step(tmp_path):
    manager = build_manager(tmp_path / "s", epochs=50, stepsize=0.5, h2=gated_h2())
    stall = training_step_call(0, epochs=50, step=150)  # the first job trains 500 steps
    cancelled, calls_when_cancel_returned = cancel_while_stalled(manager, stall, manager.start_sweep)
    assert cancelled is True and calls_when_cancel_returned == stall, "the stalled step is the last one"
    assert manager.wait(60), "the sweep's thread has ended"
    assert manager.get_sweep_status()["state"] == "cancelled"
    assert GatedMLP.calls == calls_when_cancel_returned, "no forward pass once cancel_sweep has returned"
    assert manager.get_sweep_summary()["data"] == [], "cancelled inside the first training"


def test_keyboard_interrupt_cancels_and_is_raised_again(tmp_path):
    class Interrupting(MLP):
        armed = False  # not during the construction's dry run of the first batch

        def forward(self, x):
            if Interrupting.armed:
                raise KeyboardInterrupt
            return super().forward(x)

    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, h2=Interrupting(64, 24, 10))
    Interrupting.armed = True
    with pytest.raises(KeyboardInterrupt):
        manager.start_sweep_synchronous()
    status = manager.get_sweep_status()
    assert status["state"] == "cancelled" and status["error"] is None


def test_error_messages_leave_out_file_paths(tmp_path):
    def metric(model, dataset, device):
        open("/home/alice/secret-data/labels/0.txt")

    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, performance_metric=metric)
    manager.start_sweep_synchronous()
    error = manager.get_sweep_status()["error"]
    assert "performance_metric" in error and "alice" not in error and "<path>" in error
    on_disk = open(os.path.join(manager.folder_name, "sweep_summary.json")).read()
    assert "alice" not in on_disk

    def metric2(model, dataset, device):
        raise ValueError("bad row in /srv/data/x.csv and C:\\Users\\bob\\y.csv, 3/4 done")

    manager = build_manager(tmp_path / "t", epochs=1, stepsize=1.0, performance_metric=metric2)
    manager.start_sweep_synchronous()
    assert manager.get_sweep_status()["error"].endswith(
        "ValueError measuring h1 on the training set: bad row in <path> and <path> 3/4 done"
    )


@pytest.mark.parametrize("message, shown", [
    ("see https://mlflow.org/docs/latest/tracking.html for help", "see https://mlflow.org/docs/latest/tracking.html for help"),
    ("cannot open sqlite:////srv/runs/mlflow.db", "cannot open sqlite:<path>"),
    ("no store at file:///home/alice/mlruns", "no store at file:<path>"),
    ("read ~/data/x.csv then /etc/y", "read <path> then <path>"),
])
def test_public_error_messages_keep_web_addresses_and_hide_file_paths(message, shown):
    from backwardcompatibilityml.engine.errors import public_error_message

    assert public_error_message(RuntimeError(message)) == f"RuntimeError: {shown}"


def test_public_error_messages_carry_the_notes_with_paths_hidden():
    from backwardcompatibilityml.engine.errors import public_error_message

    from backwardcompatibilityml.training import add_note

    error = ValueError("bad value in (/home/me/x.pt)")
    add_note(error, "while training at epoch 2, batch 1 (step 3)")
    add_note(error, "reading /home/me/data.csv")
    assert public_error_message(error) == (
        "ValueError: bad value in (<path>) (while training at epoch 2, batch 1 (step 3)) (reading <path>)")
    assert str(error) == "bad value in (/home/me/x.pt)", "the exception's own message is unchanged"
    disk = OSError(28, "No space left on device", "/data/sweep/x.state")
    add_note(disk, "while training at epoch 1, batch 2 (step 2)")
    assert public_error_message(disk) == (
        "OSError: No space left on device (while training at epoch 1, batch 2 (step 2))")


def test_a_new_sweep_replaces_cached_records(tmp_path):
    labels = {"tag": "A"}
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, get_instance_metadata=lambda i: labels["tag"])
    manager.start_sweep_synchronous()
    old = manager.get_evaluation(0)
    assert {v["metadata"] for v in old["error_instances"].values()} == {"A"}
    labels["tag"] = "B"
    manager.start_sweep_synchronous()  # complete -> starts clean
    for i in range(8):
        record = manager.get_evaluation(i)
        assert {v["metadata"] for v in record["error_instances"].values()} == {"B"}
    assert manager.get_evaluation(0) is not old


def test_two_managers_cannot_run_on_one_folder(tmp_path):
    first = build_manager(tmp_path / "s", epochs=2, stepsize=0.5, h2=gated_h2())
    second = build_manager(tmp_path / "s", epochs=2, stepsize=0.5, h2=gated_h2())

    def start_first_then_second():
        first.start_sweep()  # takes the folder's lock before it returns
        with pytest.raises(SweepAlreadyRunningError, match="another sweep is running in the folder"):
            second.start_sweep()

    stall = training_step_call(0, epochs=2, step=3)
    assert cancel_while_stalled(first, stall, start_first_then_second) == (True, stall)
    assert cancel_while_stalled(second, stall, second.start_sweep) == (True, stall), "the lock was released"
    assert second.get_sweep_status()["state"] == "cancelled"


def test_reopening_with_another_grid_keeps_percent_in_range(tmp_path):
    build_manager(tmp_path / "s", epochs=1, stepsize=0.5).start_sweep_synchronous()
    other = build_manager(tmp_path / "s", epochs=1, stepsize=1.0)
    status = other.get_sweep_status()
    assert status["completed_points"] == status["total_points"] == 12
    assert status["percent_complete"] == 1.0 and status["state"] == "completed"


def test_new_models_do_not_resume_old_results(tmp_path, caplog):
    folder = tmp_path / "s"
    manager = build_manager(folder, epochs=2, stepsize=0.25, h2=gated_h2())
    stall = training_step_call(2, epochs=2, step=5)  # in the 3rd job, after 2 jobs (4 points)
    assert cancel_while_stalled(manager, stall, manager.start_sweep) == (True, stall)
    assert len(manager.get_sweep_summary()["data"]) == 4, "there are results that could be resumed"
    torch.manual_seed(123)
    with caplog.at_level(logging.WARNING):
        other = build_manager(folder, epochs=2, stepsize=0.25, h2=MLP(64, 24, 10))
    assert "made with other models" in caplog.text
    with caplog.at_level(logging.INFO):
        other.start_sweep_synchronous()
    assert "resuming" not in caplog.text


def test_non_finite_metric_fails_the_sweep_naming_the_metric(tmp_path):
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, performance_metric=lambda m, d, dev: float("nan"))
    manager.start_sweep_synchronous()
    status = manager.get_sweep_status()
    assert status["state"] == "failed" and "performance_metric" in status["error"] and "nan" in status["error"]


def test_binary_and_triple_output_models_through_a_sweep(tmp_path, cancer_data):
    from backwardcompatibilityml.loss import BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss
    from conftest import BinaryMLP, make_batches, train_plain

    x, y = cancer_data
    train, test = make_batches(x[:400], y[:400], 50), make_batches(x[400:], y[400:], 50, first_id=400)
    torch.manual_seed(0)
    h1 = train_plain(BinaryMLP(30, 2), train[:2], epochs=1, binary=True)
    manager = SweepManager(tmp_path / "b", 2, h1, BinaryMLP(30, 8, column=True), train, test, 50, 50,
                           torch.optim.Adam, {"lr": 0.01}, BCBinaryCrossEntropyLoss,
                           StrictImitationBinaryCrossEntropyLoss, lambda_c_stepsize=1.0)
    manager.start_sweep_synchronous()
    assert manager.get_sweep_status()["state"] == "completed"
    record = manager.get_evaluation(1)
    assert record["sorted_classes"] == [0, 1] and record["dataset_size"] == len(y) - 400

    triple = build_manager(tmp_path / "t", epochs=1, stepsize=1.0, h2=MLP(64, 24, 10, triple=True))
    triple.start_sweep_synchronous()
    assert triple.get_sweep_status()["state"] == "completed"


def test_shuffling_dataloader_sweep_matches_the_list_sweep(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    from sweep_setup import digits_sets

    train, test = digits_sets()
    ids = torch.cat([b[0] for b in train])
    xs, ys = torch.cat([b[1] for b in train]), torch.cat([b[2] for b in train])
    loader = DataLoader(TensorDataset(ids, xs, ys), batch_size=24, shuffle=True)
    base = build_manager(tmp_path / "list", epochs=1, stepsize=1.0)
    base.start_sweep_synchronous()
    shuffled = SweepManager(tmp_path / "loader", 1, base.h1, base.h2, loader, test, 24, 40, torch.optim.SGD,
                            {"lr": 0.05}, base.loss_classes["new-error"], base.loss_classes["strict-imitation"],
                            lambda_c_stepsize=1.0)
    shuffled.start_sweep_synchronous()
    a, b = base.get_evaluation(0), shuffled.get_evaluation(0)
    assert b["h1_performance"] == pytest.approx(a["h1_performance"]), "h1's cached outputs follow the ids"
    assert b["models_error_overlap"][0] == a["models_error_overlap"][0]
    pairs = DataLoader(TensorDataset(xs, ys), batch_size=24, shuffle=True)
    with pytest.raises(ValueError, match="training_set is a shuffling DataLoader of .inputs, targets. pairs"):
        SweepManager(tmp_path / "pairs", 1, base.h1, base.h2, pairs, test, 24, 40, torch.optim.SGD, {"lr": 0.05},
                     base.loss_classes["new-error"], base.loss_classes["strict-imitation"])


def test_interpreter_exit_during_a_background_sweep_is_clean(tmp_path):
    # The script's h2 stalls at a training step of the sweep's second job (counted from its start) until
    # the sweep is asked to stop; the main thread exits once the stall is reached, so the exit always lands
    # there: atexit cancels the sweep, the stalled step ends, and the first job's points are kept. Each run
    # resumes the folder, so the points grow by one job (2 points) a run.
    stall = training_step_call(1, epochs=2, step=5)
    script = (
        "import sys, threading, time; sys.path.insert(0, %r)\n"
        "import torch\n"
        "from conftest import MLP\n"
        "from sweep_setup import build_manager\n"
        "reached = threading.Event()\n"
        "class Stalling(MLP):\n"
        "    calls = 0\n"
        "    def forward(self, x):\n"
        "        Stalling.calls += 1\n"
        "        if Stalling.calls == %d:\n"
        "            reached.set()\n"
        "            deadline = time.monotonic() + 60\n"
        "            while not m.cancel_requested:\n"
        "                assert time.monotonic() < deadline, 'the exit never cancelled the sweep'\n"
        "                time.sleep(0.005)\n"
        "        return super().forward(x)\n"
        "torch.manual_seed(1)  # the same initial h2 in every run, so that each run resumes the last\n"
        "m = build_manager(%r, epochs=2, stepsize=0.1, h2=Stalling(64, 24, 10))\n"
        "Stalling.calls = 0\n"
        "m.start_sweep()\n"
        "assert reached.wait(60), 'the sweep reached the stalled step'\n"
        "print('exiting', flush=True)\n"
    ) % (TESTS, stall, str(tmp_path / "s"))
    for run in range(1, 4):
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr[-2000:]
        assert "exiting" in done.stdout
        summary = json.load(open(tmp_path / "s" / "sweep_summary.json"))
        assert summary["state"] == "cancelled", "the exit cancels the sweep"
        assert [p["datapoint_index"] for p in summary["data"]] == list(range(2 * run)), \
            "the exit keeps exactly the finished jobs' points"


class StopsAfterFirstJob:
    """The sequential executor, asked to stop once its first job is stored: a partial sweep, deterministically."""

    name = "sequential"

    def applies(self, context):
        return None

    def run(self, jobs, context, sink, should_stop):
        from backwardcompatibilityml.engine import JobFinished, SequentialExecutor

        stored = []

        class Tap:
            def put(self, event):
                sink.put(event)
                if isinstance(event, JobFinished):
                    stored.append(event)

        SequentialExecutor().run(jobs, context, Tap(), lambda: bool(stored) or should_stop())


def manager_with_test_set(folder, test, executor="sequential"):
    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from conftest import train_plain
    from sweep_setup import digits_sets

    torch.manual_seed(0)
    train, _ = digits_sets()
    h1 = train_plain(MLP(64, 6, 10), train, epochs=2)
    return SweepManager(folder, 1, h1, MLP(64, 24, 10), train, test, 24, 40, torch.optim.SGD, {"lr": 0.05},
                        BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=0.5,
                        executor=executor)


@pytest.mark.parametrize("change, words", [
    ("labels", "the testing set has other labels"),
    ("instances", "the testing set holds other instances (ids)"),
    ("inputs", "the testing set has other inputs (h1 predicts otherwise)"),
    (None, None),
])
def test_a_resume_on_changed_data_of_the_same_size_starts_over_and_sets_the_old_results_aside(
        tmp_path, caplog, change, words):
    """The fingerprint holds the datasets' sizes only: kept points must not be shown against other data."""
    from backwardcompatibilityml.results.columns import read_columns
    from sweep_setup import digits_sets

    folder = tmp_path / "s"
    _, test = digits_sets()
    partial = manager_with_test_set(folder, test, executor=StopsAfterFirstJob())
    partial.start_sweep_synchronous(progress_bar=False)
    assert partial.get_sweep_status()["state"] == "cancelled" and len(partial.get_sweep_summary()["data"]) == 2
    mtimes = {i: os.stat(folder / f"{i}-evaluation.json").st_mtime_ns for i in (0, 1)}
    if change == "labels":
        test = [(ids, x, (y + 1) % 10 if k == 0 else y) for k, (ids, x, y) in enumerate(test)]
    elif change == "instances":
        _, test = digits_sets(n_train=400)  # 80 other digits, ids 400..479: the same batches and size
    elif change == "inputs":
        test = [(ids, 1.0 - x, y) for ids, x, y in test]
    resumed = manager_with_test_set(folder, test)
    with caplog.at_level(logging.INFO, logger="backwardcompatibilityml.sweep_management"):
        resumed.start_sweep_synchronous(progress_bar=False)
    status = resumed.get_sweep_status()
    assert status["state"] == "completed" and status["completed_points"] == 12
    assert "resuming" in caplog.text, "the same configuration: a resume is tried"
    stored = read_columns(str(folder / "testing-reference.arrow"))
    new_ids = torch.cat([ids for ids, _, _ in test]).numpy()
    new_labels = torch.cat([y for _, _, y in test]).numpy()
    order = {int(i): k for k, i in enumerate(new_ids)}
    assert sorted(stored["instance_id"].tolist()) == sorted(new_ids.tolist())
    assert stored["ground_truth"].tolist() == [int(new_labels[order[int(i)]]) for i in stored["instance_id"]]
    previous = folder / "previous"
    if change is None:
        assert all(os.stat(folder / f"{i}-evaluation.json").st_mtime_ns == m for i, m in mtimes.items())
        assert not previous.exists() or not any(previous.iterdir())
        return
    assert f"from scratch ({words}" in caplog.text
    assert any(os.stat(folder / f"{i}-evaluation.json").st_mtime_ns != m for i, m in mtimes.items())
    kept = [path for path in previous.iterdir() if path.is_dir()]
    assert len(kept) == 1 and len(SweepManager.open_folder(kept[0]).get_sweep_summary()["data"]) == 2


@pytest.mark.parametrize("executor", ["sequential", "auto"])
def test_a_bfloat16_model_is_swept_and_keeps_its_fingerprint_across_managers(tmp_path, executor, caplog):
    """The fingerprint read each weight through numpy, which has no bfloat16: the constructor raised a TypeError."""
    from backwardcompatibilityml.engine.config import state_digest

    torch.manual_seed(0)
    model = MLP(64, 24, 10)
    old = hashlib.sha256()  # the digest as computed before, for a float32 model: stored sweeps still resume
    for name, tensor in model.state_dict().items():
        old.update(name.encode())
        old.update(str(tuple(tensor.shape)).encode())
        old.update(tensor.detach().numpy().tobytes())
    assert state_digest(model) == old.hexdigest()[:16]
    assert state_digest(model.to(torch.bfloat16)) != state_digest(MLP(64, 24, 10).to(torch.bfloat16))

    class Cast(torch.nn.Module):  # h2 in bfloat16 on float32 batches
        def __init__(self):
            super().__init__()
            self.net = MLP(64, 24, 10).to(torch.bfloat16)

        def forward(self, x):
            return self.net(x.to(torch.bfloat16)).float()

    def cast(seed):
        torch.manual_seed(seed)
        return Cast()

    manager = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, h2=cast(1), executor=executor)
    manager.start_sweep_synchronous()
    assert manager.get_sweep_status()["state"] == "completed", manager.get_sweep_status()["error"]
    trained = manager.load_model(1.0, "new-error").net.net[0].weight
    assert trained.dtype == torch.bfloat16
    for seed, same in ((1, True), (2, False)):
        caplog.clear()
        with caplog.at_level(logging.WARNING):
            again = build_manager(tmp_path / "s", epochs=1, stepsize=1.0, h2=cast(seed), executor=executor)
        assert ("made with other models" in caplog.text) is not same, "the fingerprint knows the same model"
        again.start_sweep_synchronous()
        assert again.get_sweep_status()["state"] == "completed"
        assert torch.equal(again.load_model(1.0, "new-error").net.net[0].weight, trained) is same


@pytest.mark.parametrize("pairs, callbacks, warned", [
    (True, {"get_instance_metadata": lambda i: f"row {i}"}, True),
    (True, {"get_instance_image_by_id": lambda i: b""}, True),
    (True, {}, False),  # ids are shown per dataset: nothing asks by id alone
    (False, {"get_instance_metadata": lambda i: f"row {i}"}, False),  # ids of their own: the test set's follow
])
def test_ids_shared_by_both_datasets_are_warned_of_when_callbacks_ask_by_id(tmp_path, caplog, pairs, callbacks,
                                                                            warned):
    train, test = digits_sets()
    if pairs:  # numbered by position from 0 in each set
        train, test = [(x, y) for _ids, x, y in train], [(x, y) for _ids, x, y in test]
    torch.manual_seed(0)
    manager = SweepManager(tmp_path / "s", 1, MLP(64, 6, 10), MLP(64, 8, 10), train, test, 24, 40,
                           lambda_c_stepsize=1.0, executor="sequential", **callbacks)
    with caplog.at_level(logging.WARNING):
        manager.start_sweep_synchronous(progress_bar=False)
    assert manager.get_sweep_status()["state"] == "completed"
    assert ("80 instance ids (such as 0) name an instance of the training set and one of the testing set"
            in caplog.text) is warned
    if warned:
        assert next(iter(callbacks)) + " is called with the id alone" in caplog.text


@pytest.mark.parametrize("executor", ["sequential", "vectorized"])
def test_a_batch_of_one_instance_that_batchnorm_cannot_train_on_is_named(tmp_path, executor):
    """torch's message alone ("Expected more than 1 value per channel") said neither where nor why."""
    train, test = digits_sets(n_train=73, batch=24)  # 24 + 24 + 24 + 1
    h2 = MLP(64, 24, 10)
    h2.net.insert(1, torch.nn.BatchNorm1d(24))
    torch.manual_seed(0)
    manager = SweepManager(tmp_path / "s", 1, MLP(64, 6, 10), h2, train, test, 24, 40, torch.optim.SGD, {"lr": 0.05},
                           lambda_c_stepsize=1.0, executor=executor)
    manager.start_sweep_synchronous(progress_bar=False)
    status = manager.get_sweep_status()
    assert status["state"] == "failed"
    assert status["error"].startswith("ValueError: Expected more than 1 value per channel when training")
    assert status["error"].endswith("(while training at epoch 1, batch 4 (step 4), on a batch of 1 instance; "
                                    "BatchNorm cannot train on one instance, and DataLoader(drop_last=True) or "
                                    "another batch size leaves it out)")


def test_a_training_note_names_epoch_batch_and_step_and_hints_at_batchnorm_only_where_it_is():
    from backwardcompatibilityml.training import note_training_step

    plain, normed = MLP(64, 8, 10), torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4))
    notes = []
    for model, ids in ((plain, torch.arange(1)), (normed, torch.arange(1)), (normed, torch.arange(5))):
        error = RuntimeError("x")
        note_training_step(error, 1, 0, 11, ids, model)
        notes.append(error.__notes__)
    assert notes[0] == ["while training at epoch 2, batch 1 (step 12), on a batch of 1 instance"]
    assert notes[1] == ["while training at epoch 2, batch 1 (step 12), on a batch of 1 instance; BatchNorm cannot "
                        "train on one instance, and DataLoader(drop_last=True) or another batch size leaves it out"]
    assert notes[2] == ["while training at epoch 2, batch 1 (step 12), on a batch of 5 instances"]


def test_a_failed_sweep_writes_every_finished_point_to_its_last_summary(tmp_path, monkeypatch):
    """No summary is due during the sweep (an interval of 1e9 s); the one written as it fails holds every point."""
    import backwardcompatibilityml.engine.records as records

    monkeypatch.setattr(records, "SUMMARY_INTERVAL_S", 1e9)
    torch.manual_seed(0)
    manager = build_manager(tmp_path / "s", epochs=1, stepsize=0.5, h2=FailingMLP(64, 24, 10))
    FAIL_AFTER["calls"] = 2 * (10 + 10 + 2) + 5  # the third job fails; two have finished
    try:
        manager.start_sweep_synchronous(progress_bar=False)
    finally:
        FAIL_AFTER["calls"] = None
    with open(os.path.join(manager.folder_name, "sweep_summary.json"), encoding="utf-8") as handle:
        summary = json.load(handle)
    assert summary["state"] == "failed" and len(summary["data"]) == 4
