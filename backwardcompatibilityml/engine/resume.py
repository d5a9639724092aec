"""Resuming a sweep: which jobs still need to run, given what the folder already stores.

A partial sweep of the same configuration (same fingerprint) is resumed: the
jobs whose model state and datapoints are all stored are kept and skipped.
Anything else (another configuration, a complete sweep, a grid that does not
match) starts from scratch, with the earlier results kept aside by the store
(``previous/<UTC time>/``).
"""

from __future__ import annotations

import logging
from typing import Any, List

from .config import SweepConfig
from .jobs import TrainingJob, plan_jobs

__all__ = ["jobs_to_run", "start_clean"]

logger = logging.getLogger("backwardcompatibilityml.sweep_management")


def jobs_to_run(config: SweepConfig, store: Any, results: Any) -> List[TrainingJob]:
    """Every job not yet done; resume a partial sweep of the same configuration, else start clean.

    Call it only while holding the folder's lock: starting clean clears the folder.

    Parameters
    ----------
    config : SweepConfig
        What the sweep trains.
    store : SweepStore
        The sweep folder (``folder``, ``read_summary()``, ``has_model_state(lambda_c, family)``,
        ``clear()``).
    results : object
        The read side of the results (``stored_points()``, ``reset(keep)``); reset to the
        datapoints kept by a resume, or to none.

    Returns
    -------
    list of TrainingJob
        The jobs to run, in plan order.
    """
    jobs = plan_jobs(config.lambda_c_values, config.families, config.seed)
    summary = store.read_summary() or {}
    points = results.stored_points()
    done = [
        job for job in jobs
        if all(i in points for i in job.datapoint_indices)
        and store.has_model_state(job.lambda_c, job.family)
    ]
    same_config = summary.get("fingerprint") == config.fingerprint()
    folder = store.folder
    if same_config and 0 < len(done) < len(jobs):
        logger.info("resuming the sweep in %s: %d of %d trainings already done", folder, len(done), len(jobs))
        keep = {i for job in done for i in job.datapoint_indices}
        results.reset({i: points[i] for i in keep})
        return [job for job in jobs if job not in done]
    if points or done:
        reason = "the previous sweep is complete" if same_config and len(done) == len(jobs) else (
            "the stored results were made with other models, data or settings" if not same_config
            else "the stored results do not match this sweep's grid"
        )
    else:
        reason = "the folder holds no finished results"
    return start_clean(config, store, results, reason)


def start_clean(config: SweepConfig, store: Any, results: Any, reason: str) -> List[TrainingJob]:
    """Set the folder's results aside (``previous/<UTC time>/``), forget them, and return every job.

    Call it only while holding the folder's lock. ``reason`` says why, in the log.
    """
    kept = store.clear()
    if kept:
        logger.info("starting the sweep in %s from scratch (%s); the earlier results were moved to %s",
                    store.folder, reason, kept)
    else:
        logger.info("starting the sweep in %s from scratch (%s)", store.folder, reason)
    results.reset({})
    return plan_jobs(config.lambda_c_values, config.families, config.seed)
