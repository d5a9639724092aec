"""A sweep's status: state, progress in training steps and evaluation batches, ETA, running jobs.

:class:`SweepProgress` is fed by the runner (the events of the executor) and
read by any thread through :meth:`SweepProgress.snapshot`.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, Optional, Sequence

from .events import BatchDone, ExecutorNote, JobFailed, JobFinished, JobStarted, StepDone
from .jobs import TrainingJob

__all__ = ["SweepProgress", "stored_state", "IDLE", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "INTERRUPTED", "STATES"]

IDLE, RUNNING, COMPLETED, FAILED, CANCELLED = "idle", "running", "completed", "failed", "cancelled"
INTERRUPTED = "interrupted"
STATES = (IDLE, RUNNING, COMPLETED, FAILED, CANCELLED, INTERRUPTED)


def stored_state(state: Optional[str], points: int, total: int, is_locked: Callable[[], bool],
                 trainable: bool) -> str:
    """The state of a sweep read from its folder (no sweep of this manager runs).

    Parameters
    ----------
    state : str or None
        The state the summary records.
    points, total : int
        Datapoints stored, and datapoints of the whole sweep.
    is_locked : callable
        Whether a process holds the folder's sweep lock now.
    trainable : bool
        Whether the reader can train (a trainable manager never shows another process's sweep as its own).

    Returns
    -------
    str
        ``completed`` when every datapoint is stored; the recorded ``failed``
        or ``cancelled``; ``interrupted`` for a recorded ``running`` that no
        process holds any more; else ``running`` (read-only, another process
        sweeps) or ``idle``.
    """
    if points and points >= total:
        return COMPLETED
    if state in (FAILED, CANCELLED):
        return state
    if state == RUNNING:
        if not is_locked():
            return INTERRUPTED
        return IDLE if trainable else RUNNING
    return IDLE


class SweepProgress:
    """Thread-safe status of one sweep.

    Progress is measured in work units: one per training step and one per
    evaluation batch of each job, so that a fraction done means the same for
    every executor.

    Parameters
    ----------
    total_points : int
        Datapoints of the whole sweep.
    """

    def __init__(self, total_points: int) -> None:
        self._lock = threading.Lock()
        self._status: Dict[str, Any] = self._initial(total_points)
        self._units_done = 0
        self._units_total = 1
        self._units_at_start = 0
        self._started = time.monotonic()
        self._running: Dict[TrainingJob, None] = {}

    @staticmethod
    def _initial(total_points: int) -> Dict[str, Any]:
        return {
            "running": False, "state": IDLE, "percent_complete": 0.0, "lambda_c": None, "loss_family": None,
            "loss": None, "completed_points": 0, "total_points": total_points, "eta_seconds": None,
            "error": None, "executor": None, "executor_note": None, "running_jobs": [], "sweep_id": None,
        }

    # -- reading ---------------------------------------------------------------------
    def snapshot(self) -> Dict[str, Any]:
        """A copy of the status (see ``SweepManager.get_sweep_status``)."""
        with self._lock:
            status = dict(self._status)
            status["running_jobs"] = list(status["running_jobs"])
        status["running"] = status["state"] == RUNNING
        return status

    @property
    def state(self) -> str:
        with self._lock:
            return self._status["state"]

    # -- lifecycle ---------------------------------------------------------------------
    def set_stored(self, state: str, completed_points: int, total_points: int, error: Optional[str],
                   sweep_id: Optional[str] = None, executor: Optional[str] = None) -> None:
        """Describe a sweep read from its folder (nothing running here); ``sweep_id`` and ``executor`` from its summary."""
        with self._lock:
            self._status = self._initial(total_points)
            self._status.update(
                state=state, completed_points=completed_points,
                percent_complete=min(1.0, completed_points / total_points) if total_points else 0.0,
                error=error, sweep_id=sweep_id, executor=executor,
            )

    def begin(self, total_points: int, completed_points: int, done_fraction: float, sweep_id: str) -> None:
        """A sweep starts (or resumes with ``completed_points`` already stored); ``sweep_id`` names this run."""
        with self._lock:
            self._status = self._initial(total_points)
            self._status.update(
                state=RUNNING, running=True, completed_points=completed_points, percent_complete=done_fraction,
                sweep_id=sweep_id,
            )
            self._units_done = 0
            self._units_total = 1
            self._units_at_start = 0
            self._running = {}
            self._started = time.monotonic()

    def plan(self, jobs_done: int, jobs_left: int, units_per_job: int, executor: str) -> None:
        """The work ahead is known: ``units_per_job`` units for each job."""
        with self._lock:
            self._units_total = max(1, (jobs_done + jobs_left) * units_per_job)
            self._units_done = self._units_at_start = jobs_done * units_per_job
            self._status["percent_complete"] = self._units_done / self._units_total
            self._status["executor"] = executor
            self._started = time.monotonic()

    def set_completed_points(self, count: int) -> None:
        with self._lock:
            self._status["completed_points"] = count

    def finish(self, state: str, error: Optional[str]) -> None:
        """The sweep ended with ``state``.

        A completed sweep is at 1.0; one that ended otherwise is at the share
        of its points stored, as a reader of the folder reports it (work on
        unfinished jobs is redone by a resume, so it does not count).
        """
        with self._lock:
            self._status.update(state=state, running=False, error=error, eta_seconds=None, running_jobs=[])
            self._running = {}
            if state == COMPLETED:
                self._status["percent_complete"] = 1.0
            else:
                total = self._status["total_points"]
                self._status["percent_complete"] = min(1.0, self._status["completed_points"] / total) if total else 0.0

    # -- events ------------------------------------------------------------------------
    def on_event(self, event: Any) -> None:
        """Update the status from an executor's event."""
        with self._lock:
            if isinstance(event, StepDone):
                self._status["loss"] = event.losses[-1] if event.losses else None
                self._advance(len(event.jobs))
            elif isinstance(event, BatchDone):
                self._advance(len(event.jobs))
            elif isinstance(event, JobStarted):
                for job in event.jobs:
                    self._running[job] = None
                self._show_running()
            elif isinstance(event, JobFinished):
                self._running.pop(event.result.job, None)
                self._show_running()
            elif isinstance(event, JobFailed):
                self._running.pop(event.job, None)
                self._show_running()
            elif isinstance(event, ExecutorNote):
                self._status["executor_note"] = event.message
                if event.executor:
                    self._status["executor"] = event.executor

    def _show_running(self) -> None:
        jobs: Sequence[TrainingJob] = list(self._running)
        self._status["running_jobs"] = [{"lambda_c": job.lambda_c, "family": job.family} for job in jobs]
        if jobs:
            self._status["lambda_c"] = jobs[0].lambda_c
            self._status["loss_family"] = jobs[0].family

    def _advance(self, units: int) -> None:
        self._units_done += units
        fraction = min(1.0, self._units_done / self._units_total)
        self._status["percent_complete"] = max(self._status["percent_complete"], fraction)
        done_here = self._units_done - self._units_at_start
        if done_here > 0:
            elapsed = time.monotonic() - self._started
            self._status["eta_seconds"] = elapsed / done_here * max(0, self._units_total - self._units_done)


