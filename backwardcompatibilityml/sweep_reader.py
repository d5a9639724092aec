"""The read side of a sweep folder: status, summary, records, views and the configuration they were made with.

:class:`SweepReader` opens a folder and serves what it holds; it never
trains. :class:`~backwardcompatibilityml.sweep_management.SweepManager`
extends it with the configuration of a new sweep and the training lifecycle.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any, Dict, List, Optional, Tuple

from .engine.config import SweepConfig
from .engine.progress import FAILED, RUNNING, SweepProgress, stored_state
from .engine.records import SweepRecords
from .store import SUMMARY_FILE, SweepStore

__all__ = ["SweepReader"]

logger = logging.getLogger("backwardcompatibilityml.sweep_management")


class SweepReader:
    """Serves the results of a sweep folder: its status, summary, datapoint records, views and tables.

    Parameters
    ----------
    folder_name : str
        The sweep's folder.
    config : SweepConfig, optional
        The configuration of the sweep that will write the folder (the folder
        is then opened for writing and created if missing); None opens it
        read-only, with the configuration stored in it.

    Raises
    ------
    ValueError
        If ``config`` is None and the folder holds no sweep (or is not a folder).

    Notes
    -----
    A folder whose results were made with another configuration (a
    different fingerprint) is served as it is, with a warning in the log,
    until a new sweep replaces it.

    A reader opened read-only follows a sweep that another process writes
    into the folder: every read first checks (two ``stat`` calls) whether the
    folder or its summary changed since it was read, and reads it again if
    so; while the stored state is ``running`` it also checks that the writer
    still holds the folder's lock, so a writer that died shows as
    ``interrupted``.
    """

    def __init__(self, folder_name: str, config: Optional[SweepConfig] = None) -> None:
        self._open(folder_name, config)
        has_summary = self._load_folder()
        if config is None and not has_summary and not self._records.points:
            raise ValueError(f"{folder_name!r} holds no sweep (no sweep_summary.json and no evaluation files)")

    def _open(self, folder_name: str, config: Optional[SweepConfig]) -> None:
        self.config = config
        self._store = SweepStore(folder_name, writable=config is not None)
        self.folder_name = self._store.folder
        self._records = SweepRecords(self._store, config.get_instance_metadata if config is not None else None)
        total = config.total_points if config is not None else 0
        self._progress = SweepProgress(total)
        self._follow_lock = threading.Lock()

    def _folder_signature(self) -> Tuple[int, ...]:
        """What a write into the folder changes: the listing's time, and the summary's inode, time and size
        (every summary is a new file moved into place)."""
        stamps: List[int] = []
        for path in (self.folder_name, self._store.path(SUMMARY_FILE)):
            try:
                found = os.stat(path)
            except OSError:
                stamps += [-1, -1, -1]
            else:
                stamps += [found.st_ino, found.st_mtime_ns, found.st_size]
        return tuple(stamps)

    def _follow_folder(self) -> None:
        """For a read-only reader: read the folder again if another process's sweep changed it (or died)."""
        if self.config is not None:
            return  # a trainable manager: its own runner keeps its state; another sweep cannot write here
        with self._follow_lock:  # one reload at a time: the API reads from several threads
            signature = self._folder_signature()
            if signature == self._signature and not (
                    self._progress.state == RUNNING and not self._store.is_locked()):
                return
            self._load_folder()

    def _load_folder(self) -> bool:
        """Read the folder (points, state, totals); whether it holds a readable summary."""
        self._signature = self._folder_signature()  # before reading: a write during the read is seen next time
        found = self._records.load()  # a dict whose known fields have their types (SweepStore.read_summary)
        summary = found or {}
        points = self._records.points
        stored_values = summary.get("lambda_c_values")
        stored_values = stored_values if isinstance(stored_values, list) else []
        families = summary.get("families")
        families = families if isinstance(families, list) and families else [None, None]
        if self.config is not None:
            total = self.config.total_points
        else:
            total = 2 * len(families) * len(stored_values) or len(points)
        total = max(total, len(points))
        state = stored_state(summary.get("state"), len(points), total, self._store.is_locked, self.config is not None)
        self._progress.set_stored(state, len(points), total, summary.get("error") if state == FAILED else None,
                                  summary.get("sweep_id"), summary.get("executor"))
        stored = summary.get("fingerprint")
        if self.config is not None and points and stored and stored != self.config.fingerprint():
            logger.warning(
                "the results in %s were made with other models, data or settings; they are shown until a new "
                "sweep replaces them", self.folder_name,
            )
        return found is not None

    # -- the sweep's configuration ------------------------------------------------------
    @property
    def lambda_c_values(self) -> List[float]:
        """The lambda_c grid of this sweep."""
        if self.config is not None:
            return list(self.config.lambda_c_values)
        return list(self._records.extra.get("lambda_c_values") or [])

    def configuration(self) -> Dict[str, Any]:
        """The settings that make two sweeps comparable (the resume fingerprint covers them)."""
        if self.config is None:
            return dict(self._records.extra.get("configuration") or {})
        return self.config.configuration()

    def fingerprint(self) -> Optional[str]:
        """A hash of :meth:`configuration`, the initial weights of h1 and h2, the datasets' sizes and the seed."""
        if self.config is None:
            return self._records.extra.get("fingerprint")
        return self.config.fingerprint()

    # -- reading results ---------------------------------------------------------------------
    def get_sweep_status(self) -> Dict[str, Any]:
        """A snapshot of the sweep's progress.

        Returns
        -------
        dict
            ``running``, ``state`` (idle / running / completed / failed /
            cancelled / interrupted), ``percent_complete`` (0..1, measured in
            training steps and evaluation batches), ``lambda_c`` and
            ``loss_family`` of the current training, ``loss`` (last step),
            ``completed_points``, ``total_points``, ``eta_seconds``, ``error``
            ("Type: message" or None), ``executor`` (the executor running the
            trainings), ``executor_note`` (e.g. why vectorised training fell
            back) and ``running_jobs`` (``[{lambda_c, family}]`` training now).
        """
        self._follow_folder()
        return self._progress.snapshot()

    def get_sweep_summary(self) -> Dict[str, Any]:
        """``{h1_performance, performance_metric, families, datapoint_layout, data}`` with every datapoint so far.

        ``h1_performance`` is h1's performance on the test set; each entry of
        ``data`` carries h1's performance on its own dataset too, its
        ``family`` and ``dataset``, and the seed's booleans (``new-error``,
        ``strict-imitation``, ``training``, ``testing``). The summary and its
        points are the caller's own copies.
        """
        self._follow_folder()
        return self._records.summary()

    def get_evaluation(self, datapoint_index: int) -> Dict[str, Any]:
        """The seed's full evaluation record of a datapoint, built on demand from its stored columns.

        A new dict at every call, the caller's own.

        Raises
        ------
        KeyError
            If no such datapoint has been evaluated.
        CorruptDatapointError
            If it is stored but its files cannot be read (damaged, truncated).
        """
        self._follow_folder()
        return self._records.record(datapoint_index)

    def get_evaluation_view(self, datapoint_index: int) -> Any:
        """The datapoint's views (counts, per-class figures, instance pages) computed from its columns.

        Raises
        ------
        KeyError
            If no such datapoint has been evaluated.
        CorruptDatapointError
            If it is stored but its files cannot be read.
        """
        self._follow_folder()
        return self._records.view(datapoint_index)

    def dataframe(self, datapoint_index: int) -> Any:
        """A :class:`pandas.DataFrame` of a datapoint's per-instance columns (needs the ``[pandas]`` extra).

        Columns: ``instance_id``, ``ground_truth``, ``h1_prediction``,
        ``h1_confidence``, ``h2_prediction`` and ``h2_confidence`` (see
        ``docs/results-format.md``).

        Raises
        ------
        KeyError
            If no such datapoint has been evaluated.
        CorruptDatapointError
            If it is stored but its files cannot be read.
        ImportError
            If pandas is not installed.
        """
        self._follow_folder()
        self._records.view(datapoint_index)  # KeyError for an unknown datapoint
        return self._records.files.dataframe(datapoint_index)
