"""The results of one sweep folder as the manager sees them: the points index and the summary.

:class:`SweepRecords` keeps the summary entry of every stored datapoint in
memory (a few numbers each), writes each job's datapoints through the
columnar result files (:mod:`backwardcompatibilityml.results`), writes the
summary after them (at most every :data:`SUMMARY_INTERVAL_S` while a sweep
runs: each write holds every point, so one per job would make a sweep of
many small jobs quadratic), and reads full records and views back on demand with a
small cache, so memory does not grow with the number of datapoints or
instances.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..callbacks import named_callback
from ..results import ResultFiles
from .config import SweepConfig
from .context import PreparedContext
from .families import describe_families, datapoint_layout
from .jobs import JobResult

__all__ = ["SweepRecords", "SUMMARY_INTERVAL_S"]

#: Least time between two summaries written while a sweep runs (:meth:`SweepRecords.summary_due`).
#: The points themselves are in their own files as soon as a job ends; readers list them from there.
SUMMARY_INTERVAL_S = 0.5

_SUMMARY_EXTRA_KEYS = (
    "h1_performance", "performance_metric", "fingerprint", "configuration", "lambda_c_values", "families",
    "datapoint_layout", "executor", "sweep_id",
)


class SweepRecords:
    """Points, summary and stored records of one sweep folder.

    Parameters
    ----------
    store : SweepStore
        The sweep folder.
    get_instance_metadata : callable, optional
        ``instance_id -> str`` for the instance lists (default: the id as text).
    """

    def __init__(self, store: Any, get_instance_metadata: Optional[Callable[[int], str]] = None) -> None:
        self.store = store
        self.files = ResultFiles(store, named_callback("get_instance_metadata", get_instance_metadata))
        self._lock = threading.RLock()
        self.points: Dict[int, Dict[str, Any]] = {}
        self.extra: Dict[str, Any] = {}
        self._summary_written = float("-inf")  # time.monotonic() of the last summary written
        self._summary_behind = False  # points stored since then

    # -- reading the folder ----------------------------------------------------------
    def load(self) -> Optional[Dict[str, Any]]:
        """Read the points and the summary's extras from the folder; return the stored summary.

        The summary is read once (a damaged one logs its warning once); None
        when the folder has none, or none that can be read.
        """
        stored = self.store.read_summary()
        summary = stored if isinstance(stored, dict) else {}
        points = self.files.read_points(summary)
        with self._lock:
            self.points = points
            self.extra = {key: summary.get(key) for key in _SUMMARY_EXTRA_KEYS}
        # The file caches stay: each entry is checked against its file's signature, so a reader that follows
        # another process's sweep keeps the views and references that did not change.
        return stored if isinstance(stored, dict) else None

    def stored_points(self) -> Dict[int, Dict[str, Any]]:
        """The summary entry of every datapoint stored in the folder, by index."""
        return self.files.read_points()

    def reset(self, keep: Mapping[int, Dict[str, Any]]) -> None:
        """Forget every point but ``keep`` (a new sweep starts or resumes)."""
        with self._lock:
            self.points = dict(keep)
            self.files.forget()

    # -- writing ---------------------------------------------------------------------
    def begin_sweep(self, config: SweepConfig, executor: Optional[str] = None,
                    sweep_id: Optional[str] = None) -> None:
        """Remember what the summary says about the sweep that starts (``sweep_id``: this run's id)."""
        with self._lock:
            self.extra.update(
                sweep_id=sweep_id,
                fingerprint=config.fingerprint(),
                configuration=config.configuration(),
                performance_metric=config.configuration()["performance_metric"],
                lambda_c_values=list(config.lambda_c_values),
                families=describe_families(config.families),
                datapoint_layout=datapoint_layout(config.families),
            )
            if executor is not None:
                self.extra["executor"] = executor

    def stale_reason(self, context: PreparedContext) -> Optional[str]:
        """Why the kept points were made on other data than ``context``'s (a resume), or None."""
        with self._lock:
            if not self.points:
                return None
        return self.files.reference_difference(context.references)

    def set_references(self, context: PreparedContext) -> None:
        """Store h1's columns of each dataset (once per sweep)."""
        self.files.write_references(context.references)
        with self._lock:
            testing = context.references["testing"].h1_performance
            self.extra["h1_performance"] = testing

    def write_result(self, result: JobResult, context: PreparedContext) -> List[Dict[str, Any]]:
        """Store a finished job's datapoints; return their summary entries."""
        points = self.files.write_result(result, context)
        with self._lock:
            for point in points:
                self.points[point["datapoint_index"]] = point
            self._summary_behind = True
        return points

    def write_summary(self, state: str, error: Optional[str] = None, executor: Optional[str] = None) -> None:
        """Write ``sweep_summary.json`` with every point so far (``executor``: the one that trains, when known)."""
        if executor is not None:
            with self._lock:
                self.extra["executor"] = executor
        with self._lock:  # the points written, and the flag that says none is missing, read together
            summary = self.summary()
            behind, self._summary_behind = self._summary_behind, False
        summary.update({key: self.extra.get(key) for key in _SUMMARY_EXTRA_KEYS if key not in summary})
        summary["state"] = state
        summary["error"] = error
        try:
            self.store.write_summary(summary)
        except BaseException:
            with self._lock:
                self._summary_behind = self._summary_behind or behind
            raise
        self._summary_written = time.monotonic()

    def summary_due(self) -> bool:
        """Whether points were stored since the last summary and :data:`SUMMARY_INTERVAL_S` has passed since it.

        A running sweep writes the summary when this says so (checked at every
        executor event); the summary written when the sweep ends holds every
        point in any case.
        """
        return self._summary_behind and time.monotonic() - self._summary_written >= SUMMARY_INTERVAL_S

    # -- the read side ---------------------------------------------------------------
    def summary_points(self) -> List[Dict[str, Any]]:
        """The stored points, by index (copies: the caller may change them)."""
        with self._lock:
            return [dict(self.points[i]) for i in sorted(self.points)]

    def summary(self) -> Dict[str, Any]:
        """``{h1_performance, performance_metric, families, datapoint_layout, data}``.

        The points are copies: a caller that changes them (a notebook scaling
        ``performance``) changes neither the stored summary nor what later
        readers and the running sweep's next summary see.
        """
        with self._lock:
            points = [dict(self.points[i]) for i in sorted(self.points)]
            extra = dict(self.extra)
        h1_test = next((p["h1_performance"] for p in points if p.get("testing")), extra.get("h1_performance"))
        return {
            "h1_performance": h1_test,
            "performance_metric": extra.get("performance_metric"),
            "families": extra.get("families") or _families_of(points),
            "datapoint_layout": extra.get("datapoint_layout"),
            "data": points,
        }

    def _check_listed(self, datapoint_index: int) -> None:
        """KeyError unless the datapoint is a stored point; CorruptDatapointError when its files are
        there but could not be read when the folder was loaded (so it is not a point)."""
        with self._lock:
            if datapoint_index in self.points:
                return
        if self.files.is_stored(datapoint_index):
            self.files.view(datapoint_index)  # raises CorruptDatapointError when its files cannot be read
        raise KeyError(datapoint_index)

    def record(self, datapoint_index: int) -> Dict[str, Any]:
        """The seed's full evaluation record of a datapoint, built on demand.

        Raises
        ------
        KeyError
            If the datapoint is not stored.
        CorruptDatapointError
            If it is stored but its files cannot be read.
        """
        self._check_listed(datapoint_index)
        return self.files.record(datapoint_index)

    def view(self, datapoint_index: int) -> Any:
        """The view object of a datapoint (counts, per-class, pages), computed from its columns.

        Raises
        ------
        KeyError
            If the datapoint is not stored.
        CorruptDatapointError
            If it is stored but its files cannot be read.
        """
        self._check_listed(datapoint_index)
        return self.files.view(datapoint_index)


def _families_of(points: List[Dict[str, Any]]) -> List[Dict[str, str]]:
    """The seed's families, for summaries written before families were listed."""
    families = []
    if any(p.get("new-error") for p in points) or not points:
        families.append({"name": "new-error", "label": "New Error"})
    if any(p.get("strict-imitation") for p in points) or not points:
        families.append({"name": "strict-imitation", "label": "Strict Imitation"})
    return families
