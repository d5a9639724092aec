"""The results of one sweep folder: writing datapoints as columns, reading points, views and records back.

:class:`ResultFiles` is what the engine's :class:`~backwardcompatibilityml.
engine.records.SweepRecords` and the REST API use. It reads every format a
sweep folder may hold: this project's columns (``<i>-evaluation.json`` and
``.arrow``), and read-only the JSON records (``<i>-evaluation-data.json``) of
this project's JSON era and of the earlier tool. Views and records are cached
per datapoint in small LRU caches, checked against the file on every access
(a datapoint rewritten by a new sweep is never served stale).
"""

from __future__ import annotations

import copy
import json
import logging
import os
import threading
from collections import OrderedDict
from typing import Any, Callable, Dict, Hashable, Iterator, List, Mapping, Optional, Tuple

import numpy as np

from ..evaluation import default_instance_metadata, metric_name
from ..store import POINT_FIELDS, SUMMARY_FILE, SweepStore, listed_point
from .checks import READ_ERRORS, check_datapoint_info, check_h2_columns, check_point, check_reference_columns
from .column_view import ColumnView, ReferenceColumns
from .columns import info_name, read_columns, reference_name
from .datapoint_files import datapoint_files, load_record
from .errors import CorruptDatapointError
from .legacy import point_of_record
from .record_view import RecordView
from .views import BaseView
from .writer import datapoint_point, ensure_reference, reference_difference, write_result

__all__ = ["ResultFiles", "CorruptDatapointError", "VIEW_CACHE_SIZE"]

logger = logging.getLogger(__name__)

VIEW_CACHE_SIZE = 8


class _Lru:
    """A small thread-safe LRU of ``key -> (signature, value)``."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: "OrderedDict[Hashable, Tuple[Any, Any]]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, signature: Any) -> Any:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] != signature:
                return None
            self._items.move_to_end(key)
            return found[1]

    def put(self, key: Hashable, signature: Any, value: Any) -> Any:
        with self._lock:
            self._items[key] = (signature, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def _signature(path: str) -> Optional[Tuple[int, int, int]]:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return stat.st_ino, stat.st_mtime_ns, stat.st_size


def _checked(point: Dict[str, Any], index: int, source: str) -> Optional[Dict[str, Any]]:
    """``point`` when its fields have their types (:func:`~.checks.check_point`), else None and a warning."""
    try:
        check_point(point, source)
    except ValueError as error:
        logger.warning("ignoring the point of datapoint %d: %s", index, error)
        return None
    return point


class ResultFiles:
    """Reads and writes the per-datapoint results of one sweep folder.

    Parameters
    ----------
    store : SweepStore or str
        The folder (a path is opened read-only).
    get_instance_metadata : callable, optional
        ``instance_id -> str`` for instance rows and full records (default:
        the id as text). Records of older folders keep the metadata they stored.
    """

    def __init__(self, store: Any, get_instance_metadata: Optional[Callable[[int], str]] = None) -> None:
        if isinstance(store, (str, os.PathLike)):
            store = SweepStore(store, writable=False)
        self.store = store
        self.get_instance_metadata = get_instance_metadata or default_instance_metadata
        self._views = _Lru(VIEW_CACHE_SIZE)
        self._references = _Lru(4)
        self._alignment: Dict[str, Optional[np.ndarray]] = {}
        self._performance_metric: Optional[str] = None

    @classmethod
    def open_folder(cls, folder: "str | os.PathLike[str]",
                    get_instance_metadata: Optional[Callable[[int], str]] = None) -> "ResultFiles":
        """Open a sweep folder read-only (any format).

        Raises
        ------
        ValueError
            If the folder does not exist or holds no sweep (no summary and no datapoint).
        """
        files = cls(SweepStore(folder, writable=False), get_instance_metadata)
        if files.store.read_summary() is None and not files.read_points():
            raise ValueError(f"{os.fspath(folder)!r} holds no sweep (no sweep_summary.json and no evaluation files)")
        return files

    def forget(self) -> None:
        """Drop every cached view, record and reference (a new sweep starts)."""
        self._views.clear()
        self._references.clear()
        self._alignment = {}

    # -- writing -----------------------------------------------------------------------
    def reference_difference(self, references: Mapping[str, Any]) -> Optional[str]:
        """Why the stored references do not describe these datasets (see :func:`.writer.reference_difference`), or None."""
        for reference in references.values():
            reason = reference_difference(self.store, reference)
            if reason is not None:
                return reason
        return None

    def write_references(self, references: Mapping[str, Any]) -> None:
        """Store h1's columns of each dataset (kept when the stored ones match)."""
        self._alignment = {name: ensure_reference(self.store, reference) for name, reference in references.items()}
        self._references.clear()

    def write_result(self, result: Any, context: Any) -> List[Dict[str, Any]]:
        """Store a finished job's datapoints; return their summary entries.

        ``context`` is the sweep's PreparedContext (its ``references`` and
        ``performance_metric``), or a mapping of references.
        """
        references = getattr(context, "references", context)
        metric = getattr(context, "performance_metric", None)
        name = metric_name(metric) if metric is not None else None
        alignment = {k: v for k, v in self._alignment.items() if k in references}
        return write_result(self.store, result, references, performance_metric=name,
                            alignment=alignment if len(alignment) == len(references) else None)

    # -- listing ---------------------------------------------------------------------
    def is_stored(self, datapoint_index: Any) -> bool:
        """Whether the folder holds a file of the datapoint (readable or not)."""
        try:
            index = int(datapoint_index)
        except (TypeError, ValueError, OverflowError):
            return False
        return index >= 0 and (os.path.isfile(self.store.path(info_name(index)))
                               or os.path.isfile(self.store.path(self.store.evaluation_name(index))))

    def read_points(self, summary: Optional[Mapping[str, Any]] = None) -> Dict[int, Dict[str, Any]]:
        """The summary entry of every readable datapoint stored in the folder, by index.

        Column datapoints are read from their small JSON files; JSON-era
        records from the summary where it lists them complete (their files
        can be large), else from the record itself. A datapoint whose file
        cannot be read (damaged, or JSON of the wrong shape), or whose point
        has a field of a wrong type (:func:`~.checks.check_point`), is left
        out with a warning in the log; :meth:`view` then raises
        :class:`CorruptDatapointError` for an unreadable one. ``summary`` is the folder's
        summary when the caller has just read it (read here otherwise).
        """
        infos, records = datapoint_files(self.store.folder)
        if summary is None:
            summary = self.store.read_summary() or {}
        data = summary.get("data")
        listed = {p["datapoint_index"]: p for p in (data if isinstance(data, list) else []) if listed_point(p)}
        points: Dict[int, Dict[str, Any]] = {}
        for index, name in records.items():
            point = _checked(point_of_record(listed[index]), index, SUMMARY_FILE) if index in listed else None
            if point is None:  # not listed, or listed with a field of a wrong type: the record itself
                try:
                    point = _checked(point_of_record(load_record(self.store, index, name, summary)), index, name)
                except KeyError:  # removed since it was listed
                    continue
                except CorruptDatapointError as error:
                    logger.warning("skipping datapoint %d of %s: %s", index, self.store.folder, error.reason)
            if point is not None:
                points[index] = point
        for index, name in infos.items():
            info = self.store.read_json(name)
            if info is None:  # gone, or unreadable (read_json logged why)
                continue
            if isinstance(info, dict) and all(field in info for field in POINT_FIELDS):
                point = _checked(datapoint_point(info), index, name)
                if point is not None:
                    points[index] = point
            else:
                logger.warning("skipping datapoint %d of %s: %s is not a datapoint's JSON object",
                               index, self.store.folder, name)
        return dict(sorted(points.items()))

    # -- reading one datapoint --------------------------------------------------------
    def _reference(self, dataset: str) -> ReferenceColumns:
        path = self.store.path(reference_name(dataset))
        signature = _signature(path)
        if signature is None:
            raise FileNotFoundError(f"{reference_name(dataset)} is missing")
        found = self._references.get(dataset, signature)
        if found is None:
            columns = read_columns(path)
            check_reference_columns(columns, reference_name(dataset))
            found = self._references.put(dataset, signature, ReferenceColumns(columns))
        return found

    def view(self, datapoint_index: int) -> BaseView:
        """The views of a datapoint.

        Raises
        ------
        KeyError
            If the datapoint is not stored (or a new sweep has just moved its files away).
        CorruptDatapointError
            If it is stored but its files cannot be read (truncated, damaged,
            of the wrong shape); the reason is logged.
        """
        index = int(datapoint_index)
        info_path = self.store.path(info_name(index))
        signature = _signature(info_path)
        if signature is not None:
            view = self._views.get(index, signature)
            if view is None:
                view = self._views.put(index, signature, self._column_view(index, info_path))
            return view
        name = self.store.evaluation_name(index)
        signature = _signature(self.store.path(name))
        if signature is None:
            raise KeyError(index)
        view = self._views.get(index, signature)
        if view is None:
            try:
                record = load_record(self.store, index, name)
                record_view = RecordView(record)
            except CorruptDatapointError as error:
                logger.warning("cannot read datapoint %d of %s: %s", index, self.store.folder, error.reason)
                raise
            except ValueError as error:
                logger.warning("cannot read datapoint %d of %s: %s", index, self.store.folder, error)
                raise CorruptDatapointError(index, f"{name}: {error}") from None
            view = self._views.put(index, signature, record_view)
        return view

    def _column_view(self, index: int, info_path: str) -> ColumnView:
        """The view of a column datapoint (KeyError when its JSON file is gone, CorruptDatapointError when
        any of its files cannot be read)."""
        try:
            with open(info_path) as handle:
                info = json.load(handle)
            dataset, columns = check_datapoint_info(info, info_name(index))
            reference = self._reference(dataset)
            h2 = read_columns(self.store.path(columns))
            check_h2_columns(h2)
            return ColumnView(info, reference, h2, self.get_instance_metadata)
        except READ_ERRORS as error:
            if not os.path.exists(info_path):  # a new sweep moved the datapoint away (its JSON file first)
                raise KeyError(index) from None
            logger.warning("cannot read datapoint %d of %s: %s", index, self.store.folder, error)
            raise CorruptDatapointError(index, str(error)) from None

    def record(self, datapoint_index: int) -> Dict[str, Any]:
        """The seed's full evaluation record of a datapoint, built on demand.

        Every call returns a new dict, the caller's own: changing it changes
        nothing stored, cached or seen by other readers.

        Raises
        ------
        KeyError
            If the datapoint is not stored.
        CorruptDatapointError
            If it is stored but its files cannot be read.
        """
        view = self.view(datapoint_index)
        if isinstance(view, RecordView):  # a folder of the JSON era: the view holds the stored record
            return copy.deepcopy(view.record())
        return view.record()

    def dataframe(self, datapoint_index: int) -> Any:
        """A pandas DataFrame of a datapoint's per-instance columns.

        Columns ``instance_id``, ``ground_truth``, ``h1_prediction``,
        ``h2_prediction``, ``h1_confidence``, ``h2_confidence`` (every instance,
        in the dataset's reference order). A datapoint of an older JSON folder
        gives its error instances only (no confidences) and a ``region`` column.

        Raises
        ------
        ImportError
            If pandas is not installed (``pip install backwardcompatibilityml[pandas]``).
        KeyError
            If the datapoint is not stored.
        CorruptDatapointError
            If it is stored but its files cannot be read.
        """
        try:
            import pandas as pd
        except ImportError:
            raise ImportError(
                "dataframe() needs pandas, an optional dependency: pip install 'backwardcompatibilityml[pandas]'"
            ) from None
        view = self.view(datapoint_index)
        if isinstance(view, ColumnView):
            return pd.DataFrame(view.dataframe_columns())
        table = view.errors
        frame = pd.DataFrame({"instance_id": table.ids})
        for key in ("ground_truth", "h1_prediction", "h2_prediction"):
            values = table.columns[key]
            frame[key] = pd.array(np.where(values == np.iinfo(np.int64).min, None, values).tolist(), dtype="Int64")
        frame["region"] = pd.Categorical.from_codes(table.region, ["progress", "common", "regress"])
        return frame

    def instances_csv(self, datapoint_index: int, region: Optional[str] = None, class_: Optional[int] = None,
                      model: Optional[str] = None, sort: str = "instance_id") -> Iterator[str]:
        """The filtered, sorted error instances of a datapoint as CSV text, in chunks."""
        view = self.view(datapoint_index)
        return view.csv_chunks(view.select(region, class_, model, sort))
