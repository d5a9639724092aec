"""What every view of one datapoint offers: counts, per-class figures, filtered pages, CSV.

A view is built from one of two sources and answers the same questions:

* :class:`~.column_view.ColumnView` from the per-instance columns of a
  datapoint (every figure is computed with vectorised numpy);
* :class:`~.record_view.RecordView` from a stored JSON record (folders of
  this project's JSON era and of the earlier tool).

Views are immutable snapshots of one datapoint and are safe to share between
threads: what they derive lazily is computed once, under a lock.
"""

from __future__ import annotations

import csv
import io
import json
import threading
from dataclasses import dataclass
from collections import OrderedDict
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

__all__ = [
    "REGIONS", "SORT_KEYS", "CSV_COLUMNS", "FULL_RECORD_MAX_ERRORS", "FullRecordTooLarge", "ErrorTable",
    "BaseView", "to_json_bytes",
]

REGIONS = ("progress", "common", "regress")
SORT_KEYS = ("instance_id", "h1_prediction", "h2_prediction", "ground_truth")
CSV_COLUMNS = (
    "instance_id", "metadata", "h1_prediction", "h2_prediction", "ground_truth", "region",
    "h1_confidence", "h2_confidence",
)
#: ``?full=1`` (and any caller of ``full_json``) refuses a record that lists more error instances than this.
FULL_RECORD_MAX_ERRORS = 100_000
MISSING = np.iinfo(np.int64).min  # a label a stored record does not give
_CSV_ROWS_PER_CHUNK = 2_000
_WIDER = {1: np.int16, 2: np.int32, 4: np.int64}
_SELECTIONS_KEPT = 4  # filtered, sorted position lists kept per view (paging through one filter is then free)


class FullRecordTooLarge(ValueError):
    """The full record of a datapoint lists more error instances than a caller accepts.

    Attributes
    ----------
    errors : int
        Error instances (h1's or h2's) the record would list.
    limit : int
        The most that was accepted.
    """

    def __init__(self, errors: int, limit: int) -> None:
        super().__init__(
            f"the full record lists {errors:,} error instances, over the limit of {limit:,}; page through "
            "the instances or download them as CSV instead"
        )
        self.errors = errors
        self.limit = limit


def _clean(value: Any) -> Any:
    """JSON-safe value: numpy scalars unwrapped, NaN and infinities as None."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json_bytes(value: Any) -> bytes:
    """Strict, compact JSON of ``value`` (numpy scalars unwrapped, NaN and infinities as null).

    Plain JSON values (what records hold) go straight to the C encoder; only
    a value it refuses is walked in Python first.
    """
    try:
        text = json.dumps(value, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps(_clean(value), separators=(",", ":"), allow_nan=False)
    return text.encode("utf-8")


@dataclass(frozen=True)
class ErrorTable:
    """Every instance h1 or h2 gets wrong, sorted by instance id.

    Attributes
    ----------
    ids : numpy.ndarray
        ``int64`` instance ids, ascending.
    columns : dict of str to numpy.ndarray
        ``h1_prediction``, ``h2_prediction``, ``ground_truth`` (signed
        integers; ``MISSING`` where a stored record lacks the value).
    in_h1, in_h2 : numpy.ndarray
        Whether h1 / h2 gets the instance wrong.
    region : numpy.ndarray
        0 progress (h1 wrong only), 1 common, 2 regress (h2 wrong only).
    confidences : dict of str to numpy.ndarray
        ``h1_confidence``, ``h2_confidence`` when known (column views).
    """

    ids: np.ndarray
    columns: Dict[str, np.ndarray]
    in_h1: np.ndarray
    in_h2: np.ndarray
    region: np.ndarray
    confidences: Dict[str, np.ndarray]

    @staticmethod
    def regions_of(in_h1: np.ndarray, in_h2: np.ndarray) -> np.ndarray:
        """Region codes of error instances from their two error flags (at least one is set):
        h1 only 0 + 0 = 0, both 1 + 0 = 1, h2 only 1 + 1 = 2."""
        region = in_h2.astype(np.int8)
        region += ~in_h1
        return region


class BaseView:
    """The views of one datapoint (see the module docstring).

    Subclasses provide :meth:`scalars`, :meth:`counts`, :meth:`class_rows`,
    :meth:`_build_errors`, :meth:`record`, :meth:`error_total` and
    :meth:`_item_values`.
    """

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._compact: Optional[bytes] = None
        self._errors: Optional[ErrorTable] = None
        self._selections: "OrderedDict[Tuple[Any, ...], np.ndarray]" = OrderedDict()  # paging reuses them

    # -- to implement ----------------------------------------------------------------
    def scalars(self) -> Dict[str, Any]:
        """The datapoint's scalar fields (the summary point, h2_performance, performance_metric, ...)."""
        raise NotImplementedError

    def counts(self) -> Dict[str, int]:
        """``{"h1": errors of h1, "h2": errors of h2, "common": errors of both}``."""
        raise NotImplementedError

    def class_rows(self) -> Dict[str, List[Dict[str, Any]]]:
        """``sorted_classes``, ``h1_accuracy_by_class``, ``h2_accuracy_by_class`` (rows with
        ``class``, ``accuracy``, ``count``, ``error_count``) and ``h2_incompatible_count_by_class``."""
        raise NotImplementedError

    def _build_errors(self) -> ErrorTable:
        raise NotImplementedError

    def record(self) -> Dict[str, Any]:
        """The seed's full evaluation record of the datapoint (``docs/api.md``)."""
        raise NotImplementedError

    def error_total(self) -> int:
        """Instances that h1 or h2 gets wrong."""
        counts = self.counts()
        return counts["h1"] + counts["h2"] - counts["common"]

    def _item_values(self, positions: np.ndarray) -> List[Dict[str, Any]]:
        """``metadata`` and the three labels of the error instances at ``positions``."""
        raise NotImplementedError

    # -- the error table -------------------------------------------------------------
    @property
    def errors(self) -> ErrorTable:
        """The error instances (computed on first use, then kept)."""
        if self._errors is None:
            with self._lock:
                if self._errors is None:
                    self._errors = self._build_errors()
        return self._errors

    @property
    def ids(self) -> np.ndarray:
        """Ids of the error instances, ascending."""
        return self.errors.ids

    @property
    def columns(self) -> Dict[str, np.ndarray]:
        """Labels of the error instances (``h1_prediction``, ``h2_prediction``, ``ground_truth``)."""
        return self.errors.columns

    # -- compact ---------------------------------------------------------------------
    def compact(self, defaults: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The compact view: scalars, counts and per-class figures, no id lists.

        Parameters
        ----------
        defaults : mapping, optional
            Scalar fields to fill where the datapoint lacks them (``performance_metric``).
        """
        view = {k: v for k, v in self.scalars().items() if not isinstance(v, (list, dict, tuple))}
        for key, value in (defaults or {}).items():
            if view.get(key) is None:
                view[key] = value
        counts = self.counts()
        view["error_counts"] = {"h1": int(counts["h1"]), "h2": int(counts["h2"])}
        view["regions"] = {
            "progress": int(counts["h1"] - counts["common"]),
            "common": int(counts["common"]),
            "regress": int(counts["h2"] - counts["common"]),
        }
        view.update(self.class_rows())
        view["incompatible_total"] = int(sum(row["count"] for row in view["h2_incompatible_count_by_class"]))
        return view

    def compact_json(self, defaults: Optional[Mapping[str, Any]] = None) -> bytes:
        """:meth:`compact` as JSON bytes, computed once per view."""
        with self._lock:
            if self._compact is None:
                self._compact = to_json_bytes(self.compact(defaults))
            return self._compact

    def full_json(self, max_errors: Optional[int] = FULL_RECORD_MAX_ERRORS) -> bytes:
        """The full record as JSON bytes (not cached: it can be large).

        Raises
        ------
        FullRecordTooLarge
            If the record lists more than ``max_errors`` error instances (None: no limit).
        """
        total = self.error_total()
        if max_errors is not None and total > max_errors:
            raise FullRecordTooLarge(total, max_errors)
        return to_json_bytes(self.record())

    # -- instance lists --------------------------------------------------------------
    def select(self, region: Optional[str] = None, class_: Optional[int] = None,
               model: Optional[str] = None, sort: str = "instance_id") -> np.ndarray:
        """Positions (into :attr:`ids`) of the error instances that pass the filters, in order.

        Parameters
        ----------
        region : {"progress", "common", "regress"}, optional
        class_ : int, optional
            Ground-truth class to keep.
        model : {"h1", "h2"}, optional
            Keep that model's errors.
        sort : str
            One of :data:`SORT_KEYS`, optionally prefixed by ``-`` (descending);
            ties keep ascending instance ids.
        """
        query = (region, class_, model, sort)
        with self._lock:
            if query in self._selections:
                self._selections.move_to_end(query)
                return self._selections[query]
        positions = self._select(region, class_, model, sort)
        positions.setflags(write=False)
        with self._lock:
            self._selections[query] = positions
            while len(self._selections) > _SELECTIONS_KEPT:
                self._selections.popitem(last=False)
        return positions

    def _select(self, region: Optional[str], class_: Optional[int], model: Optional[str], sort: str) -> np.ndarray:
        if region is not None and region not in REGIONS:
            raise ValueError(f"region must be one of {REGIONS}, got {region!r}")
        if model not in (None, "h1", "h2"):
            raise ValueError(f"model must be 'h1' or 'h2', got {model!r}")
        key = sort[1:] if sort.startswith("-") else sort
        if key not in SORT_KEYS:
            raise ValueError(f"sort must be one of {SORT_KEYS}, optionally prefixed by '-', got {sort!r}")
        table = self.errors
        mask = np.ones(table.ids.shape, dtype=bool)
        if region is not None:
            mask &= table.region == REGIONS.index(region)
        if class_ is not None:
            mask &= table.columns["ground_truth"] == class_
        if model == "h1":
            mask &= table.in_h1
        elif model == "h2":
            mask &= table.in_h2
        positions = np.flatnonzero(mask)
        descending = sort.startswith("-")
        if key == "instance_id":  # ids are unique and ascending
            return positions[::-1].copy() if descending else positions
        values = table.columns[key][positions]
        if descending:  # negated in a wider type (-(-128) does not fit an int8), int16 still radix-sorts
            values = -values.astype(_WIDER.get(values.dtype.itemsize, np.int64))
        # ids are unique and ascending in ``positions``: a stable sort keeps id order on ties
        # (a radix sort for labels of 16 bits or less).
        order = np.argsort(values, kind="stable")
        return positions[order]

    def items(self, positions: Sequence[int]) -> List[Dict[str, Any]]:
        """Rows of the instance table for ``positions`` (from :meth:`select`)."""
        positions = np.asarray(positions, dtype=np.int64)
        table = self.errors
        rows = self._item_values(positions)
        for row, position in zip(rows, positions.tolist()):
            row["instance_id"] = int(table.ids[position])
            row["region"] = REGIONS[int(table.region[position])]
        return [
            {key: row.get(key) for key in
             ("instance_id", "metadata", "h1_prediction", "h2_prediction", "ground_truth", "region")}
            for row in rows
        ]

    def item(self, position: int) -> Dict[str, Any]:
        """One row of the instance table."""
        return self.items([position])[0]

    def page(self, region: Optional[str] = None, class_: Optional[int] = None, model: Optional[str] = None,
             sort: str = "instance_id", offset: int = 0, limit: int = 50) -> Dict[str, Any]:
        """``{"total", "offset", "limit", "items"}``: one page of the filtered, sorted error instances."""
        positions = self.select(region, class_, model, sort)
        return {
            "total": int(positions.size), "offset": offset, "limit": limit,
            "items": self.items(positions[offset:offset + limit]),
        }

    def csv_chunks(self, positions: np.ndarray) -> Iterator[str]:
        """The rows at ``positions`` as CSV text (header first), in chunks of a few thousand rows."""
        table = self.errors
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        yield buffer.getvalue()
        confidences = [table.confidences.get(name) for name in ("h1_confidence", "h2_confidence")]
        for start in range(0, positions.shape[0], _CSV_ROWS_PER_CHUNK):
            chunk = positions[start:start + _CSV_ROWS_PER_CHUNK]
            buffer.seek(0)
            buffer.truncate()
            extra = [[] if c is None else [float(v) for v in c[chunk]] for c in confidences]
            for k, row in enumerate(self.items(chunk)):
                writer.writerow([row[name] for name in CSV_COLUMNS[:6]]
                                + [("%.6g" % c[k]) if c else "" for c in extra])
            yield buffer.getvalue()
