"""Optional MLflow tracking of a sweep, with the real ``mlflow`` client."""

from __future__ import annotations

import os
from typing import Any, Dict, Optional

__all__ = ["require_mlflow", "MlflowSweepTracker"]

INSTALL_HINT = "use_ml_flow=True needs MLflow: pip install 'backwardcompatibilityml[mlflow]'"


def require_mlflow() -> Any:
    """Import and return ``mlflow``, or raise ImportError saying how to install it."""
    try:
        import mlflow  # noqa: F401
        from mlflow.tracking import MlflowClient  # noqa: F401
    except ImportError as error:
        raise ImportError(f"{INSTALL_HINT} ({error})") from error
    return mlflow


class MlflowSweepTracker:
    """One MLflow run per sweep: parameters at the start, metrics per lambda_c step.

    Uses :class:`mlflow.tracking.MlflowClient` against the configured tracking
    URI (``MLFLOW_TRACKING_URI`` or ``mlflow.set_tracking_uri``) and the
    experiment named by ``MLFLOW_EXPERIMENT_NAME`` (default ``"Default"``).
    Being explicit about the run (rather than ``mlflow.start_run``) keeps it
    safe to log from the sweep's thread.

    Parameters
    ----------
    run_name : str
        Name of the run.
    params : dict
        Parameters of the sweep, logged once.
    """

    def __init__(self, run_name: str, params: Dict[str, Any]) -> None:
        require_mlflow()
        from mlflow.tracking import MlflowClient

        self.client = MlflowClient()
        experiment_name = os.environ.get("MLFLOW_EXPERIMENT_NAME", "Default")
        experiment = self.client.get_experiment_by_name(experiment_name)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(experiment_name)
        self.run_id: Optional[str] = self.client.create_run(experiment_id, run_name=run_name).info.run_id
        for key, value in params.items():
            self.client.log_param(self.run_id, key, str(value)[:500])

    def log_point(self, point: Dict[str, Any], lambda_index: int) -> None:
        """Log a datapoint's metrics with ``step=lambda_index``.

        Names read ``<family>_<dataset>_<metric>``, e.g. ``new_error_test_btc``.
        """
        family = "new_error" if point["new-error"] else "strict_imitation"
        dataset = "train" if point["training"] else "test"
        metrics = {
            f"{family}_{dataset}_{name}": float(point[name])
            for name in ("performance", "btc", "bec", "nfr")
            if point[name] is not None
        }
        metrics[f"{family}_{dataset}_lambda_c"] = float(point["lambda_c"])
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value, step=lambda_index)

    def end(self, state: str) -> None:
        """End the run: ``completed`` -> FINISHED, ``cancelled`` -> KILLED, else FAILED."""
        if self.run_id is None:
            return
        status = {"completed": "FINISHED", "cancelled": "KILLED"}.get(state, "FAILED")
        self.client.set_terminated(self.run_id, status=status)
        self.run_id = None
