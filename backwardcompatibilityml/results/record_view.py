"""Views of a datapoint computed from a stored JSON record (this project's JSON era, or the earlier tool's
record once :mod:`.legacy` has read it into the same form)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .views import MISSING, BaseView, ErrorTable

__all__ = ["RecordView", "integer_ids"]

_INT64_LIMIT = float(2 ** 63)


def integer_ids(values: Any, what: str) -> np.ndarray:
    """A list of instance ids (or classes) from a stored record as an int64 array.

    Parameters
    ----------
    values : list
        The stored list: integers, or floats with integer values (``3.0``).
    what : str
        What the list is, for the error message.

    Returns
    -------
    numpy.ndarray
        The values, int64, in the stored order.

    Raises
    ------
    ValueError
        If ``values`` is not a flat list of integers within int64 (a string,
        None, ``1.5``, a bool, a nested list...).
    """
    if not isinstance(values, (list, tuple, np.ndarray)):
        raise ValueError(f"{what} must be a list of integers, not {type(values).__name__}")
    if len(values) == 0:
        return np.empty(0, dtype=np.int64)
    try:
        array = np.asarray(values)
    except (OverflowError, ValueError, TypeError):
        raise ValueError(f"{what} must be a flat list of integers") from None
    kind = array.dtype.kind
    if array.ndim == 1 and kind == "i":
        return array.astype(np.int64, copy=False)
    if array.ndim == 1 and kind == "u" and int(array.max()) < 2 ** 63:
        return array.astype(np.int64)
    if array.ndim == 1 and kind == "f" and bool(np.all(np.isfinite(array))) \
            and bool(np.all(array == np.trunc(array))) and bool(np.all(np.abs(array) < _INT64_LIMIT)):
        return array.astype(np.int64)
    raise ValueError(f"{what} must be a flat list of integers within int64")


def _check_rows(record: Dict[str, Any], key: str) -> None:
    rows = record.get(key)
    if rows is None:
        return
    if not isinstance(rows, list) or not all(isinstance(row, dict) for row in rows):
        raise ValueError(f"{key} must be a list of objects")


def _check_record(record: Any) -> None:
    """Raise ValueError unless ``record`` has the shapes :class:`RecordView` reads (``docs/api.md``)."""
    if not isinstance(record, dict):
        raise ValueError(f"the record must be a JSON object, not {type(record).__name__}")
    classes = record.get("sorted_classes")
    if classes is not None and not isinstance(classes, list):
        raise ValueError("sorted_classes must be a list")
    for key in ("h1_accuracy_by_class", "h2_accuracy_by_class", "h2_incompatible_instance_ids_by_class"):
        _check_rows(record, key)
    instances = record.get("error_instances")
    if instances is not None and (
            not isinstance(instances, dict)
            or not all(entry is None or isinstance(entry, dict) for entry in instances.values())):
        raise ValueError("error_instances must be an object of objects keyed by instance id")


_INT64 = np.iinfo(np.int64)


def _int_or_missing(value: Any) -> int:
    """A stored label as an int64, or MISSING (not a whole number, or outside the int64 range)."""
    if isinstance(value, (bool, np.bool_)):
        return MISSING
    if isinstance(value, (int, np.integer)) or (isinstance(value, float) and value.is_integer()):
        number = int(value)
        return number if _INT64.min <= number <= _INT64.max else MISSING
    return MISSING


class RecordView(BaseView):
    """The views of one datapoint, computed from its full record.

    Parameters
    ----------
    record : dict
        The evaluation record in this project's format (``docs/api.md``):
        ``models_error_overlap``, ``*_accuracy_by_class``,
        ``h2_incompatible_instance_ids_by_class``, ``error_instances``.

    Raises
    ------
    ValueError
        If the record does not have those shapes (a field of the wrong type,
        ids that are not integers): it is checked here, so that no view
        computed later fails on it.
    """

    def __init__(self, record: Dict[str, Any]) -> None:
        super().__init__()
        _check_record(record)
        self.record_ = record
        overlap = record.get("models_error_overlap")
        if overlap is None or overlap == []:
            overlap = [[], [], []]
        if not isinstance(overlap, list) or len(overlap) < 2:
            raise ValueError("models_error_overlap must be a list of two or three id lists")
        self.h1_errors = np.unique(integer_ids(overlap[0], "models_error_overlap[0]"))
        self.h2_errors = np.unique(integer_ids(overlap[1], "models_error_overlap[1]"))
        for row in record.get("h2_incompatible_instance_ids_by_class") or []:
            if row.get("instance_ids") is not None:
                integer_ids(row["instance_ids"], "h2_incompatible_instance_ids_by_class instance_ids")
        try:
            self.class_rows()  # the per-class figures, from the shapes checked above
        except (TypeError, AttributeError) as error:
            raise ValueError(f"the per-class rows cannot be read: {error}") from None

    def scalars(self) -> Dict[str, Any]:
        return {k: v for k, v in self.record_.items() if not isinstance(v, (list, dict, tuple))}

    def counts(self) -> Dict[str, int]:
        common = np.intersect1d(self.h1_errors, self.h2_errors, assume_unique=True)
        return {"h1": int(self.h1_errors.size), "h2": int(self.h2_errors.size), "common": int(common.size)}

    def class_rows(self) -> Dict[str, List[Dict[str, Any]]]:
        record = self.record_
        rows: Dict[str, List[Dict[str, Any]]] = {"sorted_classes": list(record.get("sorted_classes") or [])}
        for key in ("h1_accuracy_by_class", "h2_accuracy_by_class"):
            rows[key] = []
            for row in record.get(key) or []:
                compact_row = {k: v for k, v in row.items() if not isinstance(v, (list, dict))}
                compact_row["error_count"] = len(row.get("error_instance_ids") or [])
                rows[key].append(compact_row)
        rows["h2_incompatible_count_by_class"] = [
            {"class": row.get("class"), "count": len(row.get("instance_ids") or [])}
            for row in record.get("h2_incompatible_instance_ids_by_class") or []
        ]
        return rows

    def _build_errors(self) -> ErrorTable:
        ids = np.union1d(self.h1_errors, self.h2_errors)
        in_h1 = np.isin(ids, self.h1_errors, assume_unique=True)
        in_h2 = np.isin(ids, self.h2_errors, assume_unique=True)
        instances = self.record_.get("error_instances") or {}
        keys = ("h1_prediction", "h2_prediction", "ground_truth")
        columns = {key: np.full(ids.shape[0], MISSING, dtype=np.int64) for key in keys}
        for position, instance_id in enumerate(ids.tolist()):
            entry = instances.get(str(instance_id))
            if entry:
                for key in keys:
                    columns[key][position] = _int_or_missing(entry.get(key))
        return ErrorTable(ids, columns, in_h1, in_h2, ErrorTable.regions_of(in_h1, in_h2), {})

    def _item_values(self, positions: np.ndarray) -> List[Dict[str, Any]]:
        instances = self.record_.get("error_instances") or {}
        values = []
        for instance_id in self.errors.ids[positions].tolist():
            entry = instances.get(str(instance_id)) or {}
            values.append({key: entry.get(key) for key in ("metadata", "h1_prediction", "h2_prediction",
                                                              "ground_truth")})
        return values

    def record(self) -> Dict[str, Any]:
        return self.record_
