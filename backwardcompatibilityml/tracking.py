"""Optional MLflow tracking of a sweep, following the conventions of MLflow's fluent API.

A sweep is logged as one MLflow run:

* in the **active experiment** (``mlflow.set_experiment``, else the
  ``MLFLOW_EXPERIMENT_NAME`` / ``MLFLOW_EXPERIMENT_ID`` variables, else
  ``Default``), exactly as ``mlflow.start_run()`` would choose it;
* as a **nested child run** (tag ``mlflow.parentRunId``) when the user has an
  active run, in that run's experiment;
* with the **context tags** MLflow's fluent API records (``mlflow.source.name``,
  ``mlflow.source.type``, ``mlflow.user``, the git commit, notebook and
  Databricks tags...), resolved by MLflow's own run-context registry;
* with **batched** logging: the parameters in one ``log_batch`` call, the
  metrics of each datapoint (or of several) in one call.

The run is written with an explicit :class:`mlflow.tracking.MlflowClient`
(never pushed on MLflow's thread-local stack of active runs), so logging from
the sweep's thread neither needs nor disturbs the user's active run.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

__all__ = [
    "require_mlflow", "MlflowRunContext", "current_run_context", "MlflowSweepTracker", "SweepTrackerFactory",
    "metric_names", "configuration_params", "SWEEP_ID_TAG",
]

logger = logging.getLogger(__name__)

INSTALL_HINT = "use_ml_flow=True needs MLflow: pip install 'backwardcompatibilityml[mlflow]'"

#: Scores logged for every datapoint, in this order (see :func:`metric_names`).
POINT_METRICS = ("performance", "btc", "bec", "nfr", "pfr", "lambda_c")
#: ``point["training"]`` -> the dataset part of a metric name.
DATASET_NAMES = {True: "train", False: "test"}
#: Longest parameter value logged (MLflow servers before 2.x accept 500 characters).
MAX_PARAM_LENGTH = 500
#: Batch limits of MLflow's ``log_batch`` (``mlflow.utils.validation``).
MAX_PARAMS_PER_BATCH = 100
MAX_METRICS_PER_BATCH = 1000
#: The run tag that holds the sweep's ``sweep_id`` (as in the status and ``sweep_summary.json``).
SWEEP_ID_TAG = "backwardcompatibilityml.sweep_id"


def require_mlflow() -> Any:
    """Import and return ``mlflow``, or raise ImportError saying how to install it."""
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    return mlflow


@dataclass(frozen=True)
class MlflowRunContext:
    """Where a new run goes: its experiment and, when nested, its parent run.

    Attributes
    ----------
    experiment_id : str
        The experiment of the new run.
    parent_run_id : str or None
        The run to nest under (None: a top-level run).
    """

    experiment_id: str
    parent_run_id: Optional[str] = None


def _active_experiment_id() -> str:
    """The experiment ``mlflow.start_run()`` would use now (active, environment, or default)."""
    require_mlflow()
    from mlflow.tracking import MlflowClient, fluent

    resolve = getattr(fluent, "_get_experiment_id", None)  # what start_run itself uses (MLflow 1.x-3.x)
    if resolve is not None:
        return str(resolve())
    # Should a later MLflow drop that helper: the variables set_experiment and users set.
    from mlflow.environment_variables import MLFLOW_EXPERIMENT_ID, MLFLOW_EXPERIMENT_NAME

    if MLFLOW_EXPERIMENT_ID.get():
        return str(MLFLOW_EXPERIMENT_ID.get())
    client = MlflowClient()
    name = MLFLOW_EXPERIMENT_NAME.get() or "Default"
    experiment = client.get_experiment_by_name(name)
    return str(experiment.experiment_id if experiment else client.create_experiment(name))


def current_run_context() -> MlflowRunContext:
    """Capture, in the calling thread, where MLflow's fluent API would put a new run.

    MLflow keeps the active run per thread. A sweep started in the background
    logs from its own thread, so the context must be captured in the thread
    that starts the sweep (the notebook's) and handed to
    :class:`MlflowSweepTracker`.

    Returns
    -------
    MlflowRunContext
        With an active run: that run's experiment and the run as parent.
        Otherwise the active experiment and no parent.
    """
    mlflow = require_mlflow()
    active = mlflow.active_run()
    if active is not None:
        return MlflowRunContext(str(active.info.experiment_id), active.info.run_id)
    return MlflowRunContext(_active_experiment_id(), None)


def metric_names(point: Mapping[str, Any]) -> Dict[str, str]:
    """The MLflow metric name of each score of a datapoint: ``<family>_<dataset>_<score>``.

    ``family`` is the loss family with ``-`` turned into ``_`` (``new_error``,
    ``strict_imitation``), ``dataset`` is ``train`` or ``test``, ``score`` one
    of :data:`POINT_METRICS`.
    """
    family = point.get("family") or ("new-error" if point["new-error"] else "strict-imitation")
    prefix = f"{str(family).replace('-', '_')}_{DATASET_NAMES[bool(point['training'])]}"
    return {score: f"{prefix}_{score}" for score in POINT_METRICS}


def configuration_params(configuration: Mapping[str, Any]) -> Dict[str, Any]:
    """The sweep's configuration as MLflow parameters, keyword arguments written as the user wrote them.

    :meth:`SweepConfig.configuration <backwardcompatibilityml.engine.config.SweepConfig.configuration>`
    keeps each keyword-argument mapping (``optimizer_kwargs``,
    ``<family>_loss_kwargs``) with its values as ``repr`` texts
    (``{"lr": "0.05"}``), so that it is JSON and fingerprints alike. Logged
    through ``str`` that would read ``{'lr': '0.05'}``, as if the learning
    rate were a string; it is logged as ``{'lr': 0.05}`` instead. Other
    values are returned unchanged.
    """
    params: Dict[str, Any] = {}
    for key, value in configuration.items():
        if isinstance(value, Mapping) and all(isinstance(text, str) for text in value.values()):
            value = "{" + ", ".join(f"{name!r}: {text}" for name, text in value.items()) + "}"
        params[str(key)] = value
    return params


class MlflowSweepTracker:
    """One MLflow run per sweep: parameters at the start, metrics per lambda_c step.

    Uses :class:`mlflow.tracking.MlflowClient` against the configured tracking
    URI (``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``). See the
    module's docstring for the experiment, nesting and tags.

    Parameters
    ----------
    run_name : str
        Name of the run.
    params : dict
        Parameters of the sweep, logged once (values as text, at most 500 characters).
    context : MlflowRunContext, optional
        Experiment and parent run, as captured by :func:`current_run_context`
        in the thread that started the sweep. Default: captured now, in the
        calling thread.
    tags : mapping, optional
        Extra tags of the run; they override the context's tags.
    client : mlflow.tracking.MlflowClient, optional
        The client to log with (default: a new one for the current tracking URI).

    Attributes
    ----------
    run_id : str or None
        The run's id (None once ended).
    parent_run_id : str or None
        The parent run's id, when nested.
    """

    def __init__(
        self,
        run_name: str,
        params: Mapping[str, Any],
        *,
        context: Optional[MlflowRunContext] = None,
        tags: Optional[Mapping[str, Any]] = None,
        client: Any = None,
    ) -> None:
        require_mlflow()
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient
        from mlflow.tracking.context.registry import resolve_tags
        from mlflow.utils.mlflow_tags import MLFLOW_PARENT_RUN_ID, MLFLOW_RUN_NAME

        from . import __version__

        if not isinstance(run_name, str) or not run_name:
            raise TypeError(f"run_name must be a non-empty string, got {run_name!r}")
        if context is not None and not isinstance(context, MlflowRunContext):
            raise TypeError(f"context must be an MlflowRunContext, got {type(context).__name__}")
        self.client = client if client is not None else MlflowClient()
        context = context if context is not None else current_run_context()
        own_tags: Dict[str, Any] = {MLFLOW_RUN_NAME: run_name, "backwardcompatibilityml.version": __version__}
        if context.parent_run_id is not None:
            own_tags[MLFLOW_PARENT_RUN_ID] = context.parent_run_id
        own_tags.update(tags or {})
        resolved = {key: str(value) for key, value in resolve_tags(own_tags).items()}
        run = self.client.create_run(context.experiment_id, tags=resolved, run_name=run_name)
        self.run_id: Optional[str] = run.info.run_id
        self.experiment_id = context.experiment_id
        self.parent_run_id = context.parent_run_id
        entries = [Param(str(key), str(value)[:MAX_PARAM_LENGTH]) for key, value in params.items()]
        for start in range(0, len(entries), MAX_PARAMS_PER_BATCH):
            self.client.log_batch(self.run_id, params=entries[start:start + MAX_PARAMS_PER_BATCH])

    def log_point(self, point: Mapping[str, Any], lambda_index: int) -> None:
        """Log a datapoint's scores with ``step=lambda_index``, in one ``log_batch`` call.

        Names read ``<family>_<dataset>_<score>``, e.g. ``new_error_test_btc``
        (see :func:`metric_names`); a score that is None is left out.
        """
        self.log_points([(point, lambda_index)])

    def log_points(self, points: Iterable[Tuple[Mapping[str, Any], int]]) -> None:
        """Log several ``(point, lambda_index)`` pairs in as few ``log_batch`` calls as MLflow allows."""
        from mlflow.entities import Metric

        if self.run_id is None:
            raise RuntimeError("the MLflow run has ended")
        timestamp = int(time.time() * 1000)
        metrics: List[Any] = []
        for point, lambda_index in points:
            for score, name in metric_names(point).items():
                value = point.get(score)
                if value is None or (isinstance(value, float) and math.isnan(value)):
                    continue
                metrics.append(Metric(name, float(value), timestamp, int(lambda_index)))
        self._log_metrics(metrics)

    def _log_metrics(self, metrics: Sequence[Any]) -> None:
        for start in range(0, len(metrics), MAX_METRICS_PER_BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[start:start + MAX_METRICS_PER_BATCH])

    def end(self, state: str) -> None:
        """End the run: ``completed`` -> FINISHED, ``cancelled`` -> KILLED, else FAILED."""
        if self.run_id is None:
            return
        status = {"completed": "FINISHED", "cancelled": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None


class SweepTrackerFactory:
    """Builds the :class:`MlflowSweepTracker` of each sweep, nested where the sweep was started.

    The runner calls :meth:`capture` in the thread that starts a background
    sweep (MLflow's active run is per thread) and calls the factory from the
    sweep's thread. A context captured is used by the next tracker only;
    without one (a synchronous sweep) the tracker captures the context of the
    thread that builds it, which is then the caller's.

    Parameters
    ----------
    run_name : str
        Name of each run.
    params : callable
        Returns the sweep's configuration (``SweepConfig.configuration``),
        called when a tracker is built and logged through
        :func:`configuration_params`.
    """

    def __init__(self, run_name: str, params: Callable[[], Mapping[str, Any]]) -> None:
        self.run_name = run_name
        self.params = params
        self._context: Optional[MlflowRunContext] = None
        self._lock = threading.Lock()

    def capture(self) -> None:
        """Note the calling thread's experiment and active run for the next tracker."""
        try:
            context: Optional[MlflowRunContext] = current_run_context()
        except Exception:  # the tracker, built in the sweep, reports the error as the sweep's failure
            logger.warning("could not read MLflow's active run and experiment", exc_info=True)
            context = None
        with self._lock:
            self._context = context

    def __call__(self, sweep_id: Optional[str] = None) -> MlflowSweepTracker:
        """The tracker of one run of the sweep; ``sweep_id`` (the status's) becomes the run's tag
        ``backwardcompatibilityml.sweep_id``, which links the MLflow run to the folder's summary."""
        with self._lock:
            context, self._context = self._context, None
        tags = {SWEEP_ID_TAG: sweep_id} if sweep_id else None
        return MlflowSweepTracker(self.run_name, configuration_params(self.params()), context=context, tags=tags)
