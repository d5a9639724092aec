"""MLflow tracking against a real sqlite store, read back with MlflowClient.

Covers: the active experiment (``mlflow.set_experiment``), nesting under the
user's active run, the context tags of MLflow's fluent API, batched logging
(counted by wrapping the real client) and every documented metric name.
"""

from __future__ import annotations

import threading

import pytest

mlflow = pytest.importorskip("mlflow")  # the [mlflow] extra is part of the test set-up (run.sh test)
from mlflow.tracking import MlflowClient  # noqa: E402
from mlflow.tracking import _tracking_service  # noqa: E402
from mlflow.tracking import fluent  # noqa: E402

from backwardcompatibilityml.tracking import (  # noqa: E402
    MlflowRunContext,
    MlflowSweepTracker,
    current_run_context,
    metric_names,
)

# Tags MLflow sets that are not about the run's context (compared separately).
RUN_SPECIFIC_TAGS = {"mlflow.runName", "mlflow.parentRunId", "backwardcompatibilityml.version"}
FAMILIES_AND_DATASETS = [(ne, training) for ne in (True, False) for training in (True, False)]


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh sqlite tracking store; MLflow's global state is restored afterwards."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    for name in ("MLFLOW_EXPERIMENT_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_RUN_ID"):
        # setenv first, so that teardown removes what MLflow itself sets (mlflow.set_experiment
        # writes MLFLOW_EXPERIMENT_ID); a bare delenv of an absent variable records nothing to undo.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setattr(_tracking_service.utils, "_tracking_uri", None)  # restored at teardown
    monkeypatch.setattr(fluent, "_active_experiment_id", None)
    mlflow.set_tracking_uri(uri)
    yield MlflowClient(tracking_uri=uri)
    while mlflow.active_run() is not None:
        mlflow.end_run()


class CountingClient(MlflowClient):
    """The real client, counting the logging calls it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = {"log_batch": 0, "log_metric": 0, "log_param": 0, "set_tag": 0}
        self.batch_sizes = []

    def log_batch(self, run_id, metrics=(), params=(), tags=(), **kwargs):
        self.calls["log_batch"] += 1
        self.batch_sizes.append(len(metrics) + len(params) + len(tags))
        return super().log_batch(run_id, metrics=metrics, params=params, tags=tags, **kwargs)

    def log_metric(self, *args, **kwargs):
        self.calls["log_metric"] += 1
        return super().log_metric(*args, **kwargs)

    def log_param(self, *args, **kwargs):
        self.calls["log_param"] += 1
        return super().log_param(*args, **kwargs)

    def set_tag(self, *args, **kwargs):
        self.calls["set_tag"] += 1
        return super().set_tag(*args, **kwargs)


def make_point(lambda_c, new_error, training, btc=0.9, pfr=0.01):
    return {
        "datapoint_index": 0, "lambda_c": lambda_c, "training": training, "testing": not training,
        "new-error": new_error, "strict-imitation": not new_error, "performance": 0.8 + lambda_c / 10,
        "h1_performance": 0.7, "btc": btc, "bec": 0.5, "nfr": 0.02, "pfr": pfr, "dataset_size": 100,
    }


def grid_points(lambdas=(0.0, 0.5, 1.0)):
    return [
        (make_point(lambda_c, ne, training, btc=0.9 - step / 10), step)
        for step, lambda_c in enumerate(lambdas) for ne, training in FAMILIES_AND_DATASETS
    ]


def fluent_context_tags():
    """The context tags MLflow's own ``mlflow.start_run()`` records in this process."""
    with mlflow.start_run() as run:
        run_id = run.info.run_id
    tags = MlflowClient().get_run(run_id).data.tags
    return {key: value for key, value in tags.items() if key not in RUN_SPECIFIC_TAGS}


def test_the_run_goes_to_the_active_experiment_with_the_fluent_api_tags(store):
    mlflow.set_experiment("bcml-experiment")
    expected_tags = fluent_context_tags()
    assert {"mlflow.source.name", "mlflow.source.type", "mlflow.user"} <= set(expected_tags)

    tracker = MlflowSweepTracker("sweep-a", {"lambda_c_stepsize": 0.5}, tags={"team": "bc"})
    tracker.end("completed")

    experiment = store.get_experiment_by_name("bcml-experiment")
    runs = store.search_runs([experiment.experiment_id], filter_string="tags.`mlflow.runName` = 'sweep-a'")
    assert len(runs) == 1, "the sweep's run must land in the active experiment"
    default = store.get_experiment_by_name("Default")
    assert not store.search_runs([default.experiment_id]), "nothing may land in Default"
    run = runs[0]
    assert run.info.status == "FINISHED" and run.info.run_name == "sweep-a"
    tags = run.data.tags
    for key, value in expected_tags.items():
        assert tags.get(key) == value, key
    assert tags["team"] == "bc" and "mlflow.parentRunId" not in tags
    assert tags["backwardcompatibilityml.version"]
    assert tracker.run_id is None and tracker.parent_run_id is None


def test_the_experiment_named_by_the_environment_is_honoured(store, monkeypatch):
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-the-environment")
    tracker = MlflowSweepTracker("sweep-env", {})
    tracker.end("cancelled")
    experiment = store.get_experiment_by_name("from-the-environment")
    [run] = store.search_runs([experiment.experiment_id])
    assert run.info.status == "KILLED"


def test_an_active_run_gets_the_sweep_as_a_nested_child(store):
    parent_experiment = store.create_experiment("parent-experiment")
    with mlflow.start_run(experiment_id=parent_experiment, run_name="outer") as parent:
        tracker = MlflowSweepTracker("inner", {"number_of_epochs": 1})
        tracker.log_point(make_point(0.5, True, False), 1)
        child_id = tracker.run_id
        tracker.end("failed")
        assert mlflow.active_run().info.run_id == parent.info.run_id, "the user's run stays active"
    assert tracker.parent_run_id == parent.info.run_id
    child = store.get_run(child_id)
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.experiment_id == parent_experiment
    assert child.info.status == "FAILED"
    assert store.get_run(parent.info.run_id).info.status == "FINISHED"


def test_a_context_captured_in_one_thread_nests_a_run_made_in_another(store):
    with mlflow.start_run(run_name="notebook") as parent:
        context = current_run_context()
        made = {}

        def sweep_thread():  # MLflow's active run is thread-local: this thread has none
            made["active_here"] = mlflow.active_run()
            tracker = MlflowSweepTracker("background", {}, context=context)
            tracker.log_point(make_point(0.0, False, True), 0)
            made["run_id"] = tracker.run_id
            tracker.end("completed")

        thread = threading.Thread(target=sweep_thread)
        thread.start()
        thread.join(60)
    assert made["active_here"] is None
    assert context == MlflowRunContext(parent.info.experiment_id, parent.info.run_id)
    child = store.get_run(made["run_id"])
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.data.metrics["strict_imitation_train_btc"] == pytest.approx(0.9)


def test_params_and_metrics_are_logged_in_batches_not_value_by_value(store):
    client = CountingClient()
    params = {f"param_{i:03d}": i for i in range(150)}
    params["long"] = "x" * 2000
    tracker = MlflowSweepTracker("batched", params, client=client)
    assert client.calls["log_batch"] == 2, "151 params: MLflow's limit is 100 per batch"
    points = grid_points()
    tracker.log_points(points)
    assert client.calls["log_batch"] == 3, "12 datapoints x 6 scores in one call"
    tracker.log_point(*points[0])
    assert client.calls["log_batch"] == 4, "one datapoint, one call"
    tracker.end("completed")
    assert client.calls["log_metric"] == client.calls["log_param"] == client.calls["set_tag"] == 0

    run = store.get_run(store.search_runs([current_run_context().experiment_id])[0].info.run_id)
    assert run.data.params["param_149"] == "149" and len(run.data.params["long"]) == 500
    history = store.get_metric_history(run.info.run_id, "new_error_test_btc")
    steps = sorted({m.step for m in history})
    assert steps == [0, 1, 2]
    assert {m.step: m.value for m in history}[2] == pytest.approx(0.7)


def test_every_documented_metric_is_logged_with_its_step(store):
    tracker = MlflowSweepTracker("names", {})
    tracker.log_points(grid_points())
    run_id = tracker.run_id
    tracker.end("completed")
    expected = {
        f"{family}_{dataset}_{score}"
        for family in ("new_error", "strict_imitation") for dataset in ("train", "test")
        for score in ("performance", "btc", "bec", "nfr", "pfr", "lambda_c")
    }
    assert set(store.get_run(run_id).data.metrics) == expected
    for family in ("new_error", "strict_imitation"):
        for dataset in ("train", "test"):
            history = store.get_metric_history(run_id, f"{family}_{dataset}_lambda_c")
            assert sorted((m.step, m.value) for m in history) == [(0, 0.0), (1, 0.5), (2, 1.0)]
    assert metric_names(make_point(0.1, True, False))["btc"] == "new_error_test_btc"
    assert metric_names({**make_point(0.1, True, False), "family": "my-family"})["nfr"] == "my_family_test_nfr"


def test_a_missing_score_is_left_out_and_an_ended_run_refuses_points(store):
    tracker = MlflowSweepTracker("gaps", {})
    tracker.log_point({**make_point(0.0, True, True), "performance": None, "bec": float("nan")}, 0)
    run_id = tracker.run_id
    tracker.end("completed")
    metrics = store.get_run(run_id).data.metrics
    assert "new_error_train_performance" not in metrics and "new_error_train_bec" not in metrics
    assert metrics["new_error_train_btc"] == pytest.approx(0.9)
    with pytest.raises(RuntimeError, match="ended"):
        tracker.log_point(make_point(0.0, True, True), 0)
    tracker.end("completed")  # ending twice is harmless


def test_wrong_arguments_name_the_argument(store):
    with pytest.raises(TypeError, match="run_name"):
        MlflowSweepTracker("", {})
    with pytest.raises(TypeError, match="context"):
        MlflowSweepTracker("x", {}, context="0")


# -- a real sweep, logged through the SweepManager ---------------------------------------------------


@pytest.fixture
def counted_calls(monkeypatch):
    """Count the logging calls every MlflowClient receives (the real methods still run)."""
    calls = {"log_batch": 0, "log_metric": 0, "log_param": 0, "set_tag": 0}

    def counting(name):
        real = getattr(MlflowClient, name)

        def wrapper(self, *args, **kwargs):
            calls[name] += 1
            return real(self, *args, **kwargs)
        return wrapper

    for name in calls:
        monkeypatch.setattr(MlflowClient, name, counting(name))
    return calls


def sweep_manager(folder, **kwargs):
    from sweep_setup import build_manager

    return build_manager(folder, epochs=1, stepsize=0.5, use_ml_flow=True, **kwargs)


def test_a_synchronous_sweep_in_an_active_run_is_its_nested_child(store, tmp_path, counted_calls):
    mlflow.set_experiment("bc-sweeps")
    manager = sweep_manager(tmp_path / "sweep", ml_flow_run_name="lambda-sweep")
    with mlflow.start_run(run_name="model-update") as parent:
        manager.start_sweep_synchronous(progress_bar=False)
    experiment = store.get_experiment_by_name("bc-sweeps")
    [child] = store.search_runs([experiment.experiment_id], filter_string="tags.`mlflow.runName` = 'lambda-sweep'")
    assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
    assert child.info.status == "FINISHED"
    assert child.data.tags["mlflow.source.type"] == "LOCAL" and child.data.tags["mlflow.user"]
    assert child.data.params["lambda_c_stepsize"] == "0.5"

    points = manager.get_sweep_summary()["data"]
    assert len(points) == 12
    lambdas = manager.lambda_c_values
    for point in points:
        names = metric_names(point)
        for score in ("performance", "btc", "bec", "nfr", "pfr", "lambda_c"):
            history = store.get_metric_history(child.info.run_id, names[score])
            value = {m.step: m.value for m in history}[lambdas.index(point["lambda_c"])]
            assert value == pytest.approx(point[score]), names[score]
    # 12 datapoints x 6 scores + the parameters: batched, never one call per value
    assert counted_calls["log_metric"] == counted_calls["log_param"] == counted_calls["set_tag"] == 0
    assert 1 + 1 <= counted_calls["log_batch"] <= 1 + len(points)


def test_a_background_sweep_started_in_an_active_run_is_its_nested_child(store, tmp_path):
    manager = sweep_manager(tmp_path / "sweep", ml_flow_run_name="background-sweep")
    with mlflow.start_run(run_name="notebook-run") as parent:
        manager.start_sweep()  # the sweep logs from its own thread; the context is the caller's
        assert manager.wait(300)
    [child] = store.search_runs([parent.info.experiment_id],
                                filter_string="tags.`mlflow.runName` = 'background-sweep'")
    assert child.data.tags.get("mlflow.parentRunId") == parent.info.run_id
    assert child.info.status == "FINISHED"


def test_keyword_arguments_are_logged_as_the_user_wrote_them(store, tmp_path):
    """``optimizer_kwargs={"lr": 0.05}`` reads ``{'lr': 0.05}`` in MLflow, not ``{'lr': '0.05'}`` (a string)."""
    from backwardcompatibilityml.tracking import SweepTrackerFactory

    manager = sweep_manager(tmp_path / "sweep", strict_imitation_loss_kwargs={"reduction": "mean"})
    tracker = SweepTrackerFactory("kwargs", manager.config.configuration)()  # what a sweep's start builds
    tracker.end("completed")
    params = store.search_runs([tracker.experiment_id], filter_string="tags.`mlflow.runName` = 'kwargs'")[0].data.params
    assert params["optimizer_kwargs"] == "{'lr': 0.05}"
    assert params["strict_imitation_loss_kwargs"] == "{'reduction': 'mean'}"
    assert params["new_error_loss_kwargs"] == "{}"
    assert params["optimizer_class"] == "torch.optim.sgd.SGD" and params["lambda_c_stepsize"] == "0.5"
