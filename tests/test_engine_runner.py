"""The engine's seams: jobs as data, executors, events, the runner's persistence, status and errors."""

from __future__ import annotations

import contextlib
import glob
import json
import logging
import os
import pickle
import threading

import pytest
import torch

from backwardcompatibilityml.engine import (
    BatchDone, JobFailed, JobFinished, JobStarted, SequentialExecutor, StepDone, plan_jobs, resolve_executor,
)
from backwardcompatibilityml.engine.families import seed_families
from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.sweep_management import SweepManager
from conftest import MLP, CountingModel
from sweep_setup import build_manager, digits_sets


class RecordingExecutor(SequentialExecutor):
    """The sequential executor, recording every event and what the folder held when each job started."""

    name = "recording"

    def __init__(self, folder):
        self.folder = folder
        self.events = []
        self.files_at_start = []

    def run(self, jobs, context, sink, should_stop):
        executor = self

        class Tap:
            def put(self, event):
                executor.events.append(event)
                if isinstance(event, JobStarted):
                    executor.files_at_start.append(len(glob.glob(os.path.join(executor.folder, "*.state"))))
                sink.put(event)

        super().run(jobs, context, Tap(), should_stop)


class ThreadedExecutor(SequentialExecutor):
    """Trains the jobs in a worker thread of its own and puts every event from there; ``run`` only joins it.

    Before its second job the worker sets ``first_done`` and waits for
    ``gate``: the sweep is read at that point, deterministically.
    """

    name = "threaded"

    def __init__(self):
        self.first_done = threading.Event()
        self.gate = threading.Event()
        self.putting_threads = set()

    def run(self, jobs, context, sink, should_stop):
        executor, errors = self, []

        class FromWorker:
            def put(self, event):
                executor.putting_threads.add(threading.current_thread().name)
                sink.put(event)

        def work():
            try:
                for index, job in enumerate(jobs):
                    if index == 1:
                        executor.first_done.set()
                        assert executor.gate.wait(60), "the test never opened the gate"
                    SequentialExecutor.run(executor, [job], context, FromWorker(), should_stop)
            except BaseException as error:  # handed to run(), as an executor must
                errors.append(error)
            finally:
                executor.first_done.set()

        worker = threading.Thread(target=work, name="executor-worker")
        worker.start()
        worker.join()
        if errors:
            raise errors[0]


def summary_on_disk(folder):
    with open(os.path.join(folder, "sweep_summary.json")) as f:
        return json.load(f)


@contextlib.contextmanager
def stalled_after_the_first_job(folder):
    """A background sweep of a ThreadedExecutor, held before its second job for the ``with`` body; then finished."""
    executor = ThreadedExecutor()
    manager = build_manager(folder, epochs=1, stepsize=0.5, executor=executor)
    manager.start_sweep()
    try:
        assert executor.first_done.wait(60)
        yield manager, executor
    finally:
        executor.gate.set()
    assert manager.wait(120)
    assert manager.get_sweep_status()["state"] == "completed"


def test_events_put_from_an_executors_own_thread_are_stored_as_they_arrive(tmp_path):
    folder = str(tmp_path / "s")
    with stalled_after_the_first_job(folder) as (manager, executor):
        # run() is still blocked in join(): the first job's result was stored from the worker's put.
        status = manager.get_sweep_status()
        assert status["state"] == "running" and status["completed_points"] == 2
        # On disk at once: a reader lists the job's two datapoints from their files (the summary file is
        # rewritten at most every SUMMARY_INTERVAL_S, at an event of the executor).
        assert len(SweepManager.open_folder(folder).get_sweep_summary()["data"]) == 2
        assert len(glob.glob(os.path.join(folder, "*.state"))) == 1
    assert len(summary_on_disk(folder)["data"]) == 12
    assert executor.putting_threads == {"executor-worker"}
    assert summary_on_disk(folder)["executor"] == "threaded"
    assert SweepManager.open_folder(folder).get_sweep_status()["executor"] == "threaded", "read back by a reader"


def test_a_result_that_cannot_be_stored_from_an_executor_thread_fails_the_sweep_and_keeps_the_others(
        tmp_path, monkeypatch, caplog):
    from backwardcompatibilityml.store import SweepStore

    folder = str(tmp_path / "s")
    executor = ThreadedExecutor()
    executor.gate.set()
    manager = build_manager(folder, epochs=1, stepsize=0.5, executor=executor)
    save = SweepStore.save_model_state
    calls = []

    def second_save_fails(self, *args, **kwargs):
        calls.append(args[:2])
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        return save(self, *args, **kwargs)

    monkeypatch.setattr(SweepStore, "save_model_state", second_save_fails)
    with caplog.at_level(logging.ERROR, logger="backwardcompatibilityml.sweep_management"):
        manager.start_sweep_synchronous(progress_bar=False)
    status = manager.get_sweep_status()
    assert status["state"] == "failed" and "No space left on device" in status["error"]
    assert isinstance(manager.last_exception, OSError)
    assert len(calls) == 2, "the executor was asked to stop: no job ran after the failure"
    assert status["completed_points"] == 2 and len(summary_on_disk(folder)["data"]) == 2
    assert status["percent_complete"] == pytest.approx(2 / 12), "an ended sweep is at its share of stored points"
    assert "handling JobFinished from an executor thread failed" in caplog.text


def test_what_readers_are_given_is_their_own_and_changing_it_changes_nothing_stored(tmp_path):
    """A notebook that edits a summary point or a record mid-sweep must not alter results or fail the sweep."""
    import numpy as np

    folder = str(tmp_path / "s")
    with stalled_after_the_first_job(folder) as (manager, _executor):
        first = manager.get_sweep_summary()["data"][0]
        original = dict(first)
        first["performance"] = np.float32(first["performance"] * 100)  # not even JSON-serialisable
        record = manager.get_evaluation(first["datapoint_index"])
        btc = record["btc"]
        record["btc"] = -1.0
        assert manager.get_sweep_summary()["data"][0] == original
        assert manager.get_evaluation(first["datapoint_index"])["btc"] == btc
    stored = summary_on_disk(folder)["data"][0]
    assert stored["performance"] == original["performance"] and len(summary_on_disk(folder)["data"]) == 12


def test_jobs_are_plain_picklable_data_in_the_seed_order():
    families = seed_families(BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, {}, {})
    jobs = plan_jobs([0.0, 0.5, 1.0], families, seed=3)
    assert pickle.loads(pickle.dumps(jobs)) == jobs
    assert [job.datapoint_indices for job in jobs] == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11)]
    assert [job.family for job in jobs[:2]] == ["new-error", "strict-imitation"]
    assert {job.seed for job in jobs} == {3}


def test_a_custom_executor_reports_events_and_each_result_is_stored_as_it_arrives(tmp_path):
    folder = str(tmp_path / "s")
    executor = RecordingExecutor(folder)
    manager = build_manager(folder, epochs=1, stepsize=0.5, executor=executor)
    manager.start_sweep_synchronous(progress_bar=False)
    assert manager.get_sweep_status()["state"] == "completed"
    assert manager.get_sweep_status()["executor"] == "recording"
    assert executor.files_at_start == [0, 1, 2, 3, 4, 5], "each job's result is on disk before the next starts"
    kinds = [type(e) for e in executor.events]
    assert kinds.count(JobStarted) == kinds.count(JobFinished) == 6
    steps = [e for e in executor.events if isinstance(e, StepDone)]
    assert len(steps) == 6 * 10 and all(len(e.losses) == 1 for e in steps)  # 240 instances / 24 per batch
    assert sum(isinstance(e, BatchDone) for e in executor.events) == 6 * (10 + 2)
    assert len(manager.get_sweep_summary()["data"]) == 12


def test_h1_runs_once_per_batch_for_the_whole_sweep(tmp_path):
    train, test = digits_sets()
    torch.manual_seed(0)
    h1 = CountingModel(MLP(64, 6, 10))
    manager = SweepManager(str(tmp_path / "s"), 1, h1, MLP(64, 24, 10), train, test, 24, 40,
                           lambda_c_stepsize=0.5, executor="sequential")
    assert h1.calls == 2, "the construction dry-runs one batch of each dataset (preflight)"
    h1.calls = 0
    manager.start_sweep_synchronous(progress_bar=False)
    assert manager.get_sweep_status()["state"] == "completed"
    assert h1.calls == len(train) + len(test), "h1's outputs are prepared once, before the first job"


def test_the_seed_signature_fills_the_documented_defaults(tmp_path):
    train, test = digits_sets()
    torch.manual_seed(0)
    manager = SweepManager(str(tmp_path / "s"), 1, MLP(64, 6, 10), MLP(64, 24, 10), train, test, 24, 40)
    assert manager.config.optimizer_class is torch.optim.SGD
    assert manager.config.optimizer_kwargs == {"lr": 0.01}
    assert [f.loss_class for f in manager.config.families] == [BCCrossEntropyLoss, StrictImitationCrossEntropyLoss]
    assert manager.lambda_c_values == [0.0, 0.25, 0.5, 0.75, 1.0]
    given = SweepManager(str(tmp_path / "t"), 1, MLP(64, 6, 10), MLP(64, 24, 10), train, test, 24, 40,
                         torch.optim.Adam, None)
    assert given.config.optimizer_kwargs == {}, "a given optimizer keeps its own defaults"


class ExplodingMetric:
    __name__ = "exploding_metric"

    def __call__(self, model, dataset, device):
        raise ArithmeticError("metric blew up")


def test_a_failed_sweep_keeps_its_exception_and_can_raise_it(tmp_path, caplog):
    folder = str(tmp_path / "s")
    fails_on_second = {"calls": 0}

    def metric(model, dataset, device):
        fails_on_second["calls"] += 1
        if fails_on_second["calls"] > 3:  # h1 on both datasets, then the first job's two evaluations
            raise ArithmeticError("metric blew up")
        return 0.5

    manager = build_manager(folder, epochs=1, stepsize=1.0, performance_metric=metric, executor="sequential")
    with caplog.at_level(logging.ERROR):
        manager.start_sweep_synchronous(progress_bar=False)
    status = manager.get_sweep_status()
    assert status["state"] == "failed"
    assert "performance_metric" in status["error"] and "Traceback" not in status["error"]
    assert isinstance(manager.last_exception, Exception)
    assert manager.last_exception.__traceback__ is not None
    assert "Traceback" in manager.last_traceback and "ArithmeticError" in manager.last_traceback
    assert "Traceback" in caplog.text, "the traceback reaches logging"
    fails_on_second["calls"] = 0
    with pytest.raises(Exception, match="metric blew up"):
        manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)


def test_restarts_never_push_out_a_finished_sweep(tmp_path, caplog):
    folder = tmp_path / "s"
    build_manager(str(folder), epochs=1, stepsize=0.5).start_sweep_synchronous(progress_bar=False)
    holder = {}

    def cancelling_metric(model, dataset, device):  # runs while h1 is prepared: cancel before any training
        holder["manager"].cancel_sweep(wait=0)
        return 0.5

    for attempt in range(2):
        other = holder["manager"] = build_manager(str(folder), epochs=2, stepsize=0.5,
                                                  performance_metric=cancelling_metric)
        with caplog.at_level(logging.INFO):
            other.start_sweep_synchronous(progress_bar=False)
        assert other.get_sweep_status()["state"] == "cancelled"
    kept = [d for d in glob.glob(str(folder / "previous" / "*")) if os.path.isdir(d)]
    assert len(kept) == 1, f"one finished sweep, kept once: {kept}"
    old = SweepManager.open_folder(kept[0])
    assert len(old.get_sweep_summary()["data"]) == 12
    assert len(glob.glob(os.path.join(kept[0], "*.state"))) == 6
    assert "holds no finished results" in caplog.text
    assert "previous sweep is complete" not in caplog.text


def test_a_running_summary_without_a_lock_holder_reads_as_interrupted(tmp_path):
    folder = tmp_path / "s"
    manager = build_manager(str(folder), epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    summary = json.loads((folder / "sweep_summary.json").read_text())
    summary["state"] = "running"
    summary["data"] = summary["data"][:2]
    (folder / "sweep_summary.json").write_text(json.dumps(summary))
    for name in os.listdir(folder):
        if name.startswith(("2-", "3-")):
            os.unlink(folder / name)
    reopened = SweepManager.open_folder(str(folder))
    assert reopened.get_sweep_status()["state"] == "interrupted"
    assert build_manager(str(folder), epochs=1, stepsize=1.0).get_sweep_status()["state"] == "interrupted"


def test_every_run_has_its_own_sweep_id_in_the_status_and_the_summary(tmp_path):
    """Two runs that end with equal statuses are still told apart (the widget reloads on a new id)."""
    folder = tmp_path / "s"
    manager = build_manager(str(folder), epochs=1, stepsize=1.0)
    assert manager.get_sweep_status()["sweep_id"] is None, "no sweep yet"
    manager.start_sweep_synchronous(progress_bar=False)
    first = manager.get_sweep_status()
    assert isinstance(first["sweep_id"], str) and len(first["sweep_id"]) == 32
    assert json.loads((folder / "sweep_summary.json").read_text())["sweep_id"] == first["sweep_id"]
    assert SweepManager.open_folder(str(folder)).get_sweep_status()["sweep_id"] == first["sweep_id"]
    assert build_manager(str(folder), epochs=1, stepsize=1.0).get_sweep_status()["sweep_id"] == first["sweep_id"]

    manager.start_sweep_synchronous(progress_bar=False)  # complete: starts clean, the same results again
    second = manager.get_sweep_status()
    assert second["sweep_id"] != first["sweep_id"]
    assert {k: v for k, v in second.items() if k not in ("sweep_id", "loss")} == \
        {k: v for k, v in first.items() if k not in ("sweep_id", "loss")}, "only the id tells the runs apart"
    assert SweepManager.open_folder(str(folder)).get_sweep_status()["sweep_id"] == second["sweep_id"]

    summary = json.loads((folder / "sweep_summary.json").read_text())
    summary["sweep_id"] = 17
    (folder / "sweep_summary.json").write_text(json.dumps(summary))
    assert SweepManager.open_folder(str(folder)).get_sweep_status()["sweep_id"] is None, "a damaged id is no id"


@pytest.mark.parametrize("call, error, words", [
    (lambda m: m.cancel_sweep(wait="10"), TypeError, "wait must be of type real number"),
    (lambda m: m.cancel_sweep(wait=-1), ValueError, "wait must be >= 0"),
    (lambda m: m.cancel_sweep(wait=float("nan")), ValueError, "wait must be a finite number"),
    (lambda m: m.wait(timeout="5"), TypeError, "timeout must be of type real number"),
    (lambda m: m.wait(timeout=-0.5), ValueError, "timeout must be >= 0"),
])
def test_cancel_and_wait_name_a_wrong_argument_even_when_nothing_runs(tmp_path, call, error, words):
    manager = build_manager(str(tmp_path / "s"), epochs=1, stepsize=1.0)
    with pytest.raises(error, match=words):
        call(manager)
    assert manager.cancel_sweep(wait=0) is False and manager.wait(timeout=0) is True and manager.wait() is True


def test_progress_bar_from_python_can_be_turned_off(tmp_path, capsys):
    manager = build_manager(str(tmp_path / "s"), epochs=1, stepsize=1.0, executor="sequential")
    manager.start_sweep_synchronous(progress_bar=False)
    assert "sweep" not in capsys.readouterr().err
    again = build_manager(str(tmp_path / "t"), epochs=1, stepsize=1.0, executor="sequential")
    again.start_sweep_synchronous()
    err = capsys.readouterr().err
    assert "sweep" in err and "step" in err and "100%" in err


def test_executor_argument_is_checked():
    assert resolve_executor("sequential").name == "sequential"
    with pytest.raises(ValueError, match="executor"):
        resolve_executor("parallel")
    with pytest.raises(TypeError, match="executor"):
        resolve_executor(42)


def test_a_failing_job_is_reported_as_an_event(tmp_path):
    folder = str(tmp_path / "s")
    executor = RecordingExecutor(folder)
    calls = {"n": 0}

    def metric(model, dataset, device):
        calls["n"] += 1
        if calls["n"] == 4:
            raise ArithmeticError("boom")
        return 0.5

    manager = build_manager(folder, epochs=1, stepsize=1.0, performance_metric=metric, executor=executor)
    manager.start_sweep_synchronous(progress_bar=False)
    failed = [e for e in executor.events if isinstance(e, JobFailed)]
    assert len(failed) == 1 and failed[0].job.lambda_c == 0.0 and "boom" in failed[0].error
    assert "Traceback" in failed[0].traceback


class ForgetfulExecutor(SequentialExecutor):
    """Runs only the first job, then reports the second as failed (or not at all) and returns without raising."""

    name = "forgetful"

    def __init__(self, report_failure):
        self.report_failure = report_failure

    def run(self, jobs, context, sink, should_stop):
        super().run(jobs[:1], context, sink, should_stop)
        if self.report_failure:
            sink.put(JobFailed(jobs[1], "ValueError: not today", "Traceback ..."))


@pytest.mark.parametrize("report_failure, words", [
    (False, "the executor 'forgetful' returned without reporting 3 of 4 trainings (lambda_c=0.0 strict-imitation"),
    (True, "1 of 4 trainings failed and 2 were never reported; the first, lambda_c=0.0 strict-imitation: "
           "ValueError: not today"),
])
def test_an_executor_that_returns_before_every_job_finished_fails_the_sweep(tmp_path, report_failure, words):
    manager = build_manager(str(tmp_path / "s"), epochs=1, stepsize=1.0, executor=ForgetfulExecutor(report_failure))
    manager.start_sweep_synchronous(progress_bar=False)
    status = manager.get_sweep_status()
    assert status["state"] == "failed" and words in status["error"] and "UnfinishedJobsError" in status["error"]
    assert len(manager.get_sweep_summary()["data"]) == 2, "the job that finished is kept"
    with pytest.raises(Exception, match="trainings"):
        manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)


class TappedVectorized:
    """The vectorized executor with a hook called on every event (in the runner's thread)."""

    def __init__(self, on_event, **options):
        from backwardcompatibilityml.engine.vectorized import VectorizedExecutor

        self.inner = VectorizedExecutor(**options)
        self.name = self.inner.name
        self.on_event = on_event
        self.events = []

    def applies(self, context):
        return self.inner.applies(context)

    def run(self, jobs, context, sink, should_stop):
        tap = self

        class Tap:
            def put(self, event):
                tap.events.append(event)
                sink.put(event)
                tap.on_event(event)

        self.inner.run(jobs, context, Tap(), should_stop)


def test_vectorized_sweep_streams_per_chunk_cancels_within_a_step_and_resumes_sequentially(tmp_path):
    folder = tmp_path / "s"
    holder = {}
    seen = {"finished": 0, "steps_after_cancel": 0, "cancelled": False, "status": None}

    def on_event(event):
        if isinstance(event, StepDone):
            if seen["cancelled"]:
                seen["steps_after_cancel"] += 1
            elif seen["status"] is None:
                seen["status"] = holder["manager"].get_sweep_status()
        if isinstance(event, JobFinished):
            seen["finished"] += 1
            if seen["finished"] == 2:  # the first chunk is stored: stop in the second chunk's first step
                seen["arm"] = True
        if isinstance(event, StepDone) and seen.get("arm") and not seen["cancelled"]:
            holder["manager"].cancel_sweep(wait=0)
            seen["cancelled"] = True

    executor = TappedVectorized(on_event, max_parallel_models=2)
    manager = holder["manager"] = build_manager(str(folder), epochs=1, stepsize=0.5, executor=executor)
    manager.start_sweep_synchronous(progress_bar=False)
    status = manager.get_sweep_status()
    assert status["state"] == "cancelled"
    assert seen["steps_after_cancel"] == 0, "cancel lands before the next optimizer step"
    running = seen["status"]
    assert running["executor"] == "vectorized" and len(running["running_jobs"]) == 2
    assert {job["family"] for job in running["running_jobs"]} == {"new-error", "strict-imitation"}
    assert sorted(p["datapoint_index"] for p in manager.get_sweep_summary()["data"]) == [0, 1, 2, 3]
    kept = {name: os.stat(folder / name).st_mtime_ns for name in os.listdir(folder) if name.startswith(("0-", "1-"))}

    resumed = build_manager(str(folder), epochs=1, stepsize=0.5, executor="sequential")
    resumed.start_sweep_synchronous(progress_bar=False)
    assert resumed.get_sweep_status()["state"] == "completed"
    assert len(resumed.get_sweep_summary()["data"]) == 12
    assert {name: os.stat(folder / name).st_mtime_ns for name in kept} == kept, "finished jobs are not retrained"

    reference = build_manager(str(tmp_path / "ref"), epochs=1, stepsize=0.5, executor="sequential")
    reference.start_sweep_synchronous(progress_bar=False)
    for lambda_c in (0.0, 0.5, 1.0):
        for family in ("new-error", "strict-imitation"):
            mixed = resumed.load_model(lambda_c, family).state_dict()
            plain = reference.load_model(lambda_c, family).state_dict()
            for key in plain:
                assert torch.allclose(mixed[key], plain[key], atol=1e-5, rtol=0), (lambda_c, family, key)
    for i in range(12):
        a, b = resumed.get_evaluation(i), reference.get_evaluation(i)
        assert a["models_error_overlap"] == b["models_error_overlap"]
        assert a["btc"] == pytest.approx(b["btc"]) and a["performance"] == pytest.approx(b["performance"])


def test_lbfgs_trains_one_model_at_a_time_and_the_status_says_why(tmp_path):
    train, test = digits_sets()
    torch.manual_seed(0)
    h1, h2 = MLP(64, 6, 10), MLP(64, 24, 10)
    lbfgs = SweepManager(str(tmp_path / "l"), 1, h1, h2, train, test, 24, 40, torch.optim.LBFGS,
                         {"lr": 0.5, "max_iter": 3}, lambda_c_stepsize=1.0)
    lbfgs.start_sweep_synchronous(progress_bar=False)
    status = lbfgs.get_sweep_status()
    assert status["state"] == "completed", status
    assert status["executor"] == "sequential" and "LBFGS" in status["executor_note"]
    sgd = SweepManager(str(tmp_path / "s"), 1, h1, h2, train, test, 24, 40, lambda_c_stepsize=1.0)
    sgd.start_sweep_synchronous(progress_bar=False)
    trained = lbfgs.load_model(1.0, "new-error").state_dict()
    plain = sgd.load_model(1.0, "new-error").state_dict()
    assert any(not torch.equal(trained[k], plain[k]) for k in plain), "LBFGS took its own steps"


def test_a_datapoint_as_a_dataframe(tmp_path):
    manager = build_manager(str(tmp_path / "s"), epochs=1, stepsize=1.0)
    manager.start_sweep_synchronous(progress_bar=False)
    frame = manager.dataframe(1)
    record = manager.get_evaluation(1)
    assert len(frame) == record["dataset_size"] == 80
    h2_wrong = sorted(frame.loc[frame.h2_prediction != frame.ground_truth, "instance_id"].tolist())
    assert h2_wrong == record["models_error_overlap"][1]
    assert frame.h2_confidence.between(0, 1).all()
    with pytest.raises(KeyError):
        manager.dataframe(99)


def test_load_model_names_a_lambda_c_off_the_grid_and_accepts_a_float_on_it(tmp_path):
    manager = build_manager(str(tmp_path / "s"), epochs=1, stepsize=0.5)
    manager.start_sweep_synchronous(progress_bar=False)
    model = manager.load_model(5 * 0.1, "new-error")  # 0.5000000000000001: on the grid
    stored = torch.load(os.path.join(manager.folder_name, "0.5-model-new-error.state"))
    assert all(torch.equal(model.state_dict()[key], value) for key, value in stored.items())
    with pytest.raises(ValueError, match=r"lambda_c must be one of the sweep's values \[0.0, 0.5, 1.0\], got 0.3"):
        manager.load_model(0.3, "new-error")
    with pytest.raises(TypeError, match="lambda_c must be of type"):
        manager.load_model("0.5", "new-error")
    with pytest.raises(ValueError, match="family must be one of"):
        manager.load_model(0.5, "old-error")
    fine = build_manager(str(tmp_path / "fine"), epochs=1, stepsize=0.05)
    with pytest.raises(ValueError, match=r"one of the sweep's values from 0.0 to 1.0 in steps of 0.05 \(21 values; "
                                         r"nearest: 0.1 and 0.15\), got 0.123$"):
        fine.load_model(0.123, "new-error")


@pytest.mark.parametrize("interval, writes", [(1e9, "start and end"), (0.0, "one per job")])
def test_the_summary_is_rewritten_at_most_every_interval(tmp_path, monkeypatch, interval, writes):
    """Each summary holds every point: one per job made a sweep of many small jobs quadratic."""
    import backwardcompatibilityml.engine.records as records
    from backwardcompatibilityml.store import SweepStore

    monkeypatch.setattr(records, "SUMMARY_INTERVAL_S", interval)
    written = []
    original = SweepStore.write_summary
    monkeypatch.setattr(SweepStore, "write_summary", lambda self, summary: written.append(
        (summary["state"], len(summary["data"]))) or original(self, summary))
    folder = str(tmp_path / "s")
    manager = build_manager(folder, epochs=1, stepsize=0.25, executor="vectorized")
    manager.start_sweep_synchronous(progress_bar=False)
    jobs = 2 * len(manager.lambda_c_values)
    if writes == "start and end":
        assert written == [("running", 0), ("completed", 2 * jobs)]
    else:
        assert written == [("running", 0)] + [("running", 2 * k) for k in range(1, jobs + 1)] + [
            ("completed", 2 * jobs)]
    assert len(summary_on_disk(folder)["data"]) == 2 * jobs and summary_on_disk(folder)["state"] == "completed"
