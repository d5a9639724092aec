"""Views of a datapoint computed from a stored JSON record (this project's JSON era, or the earlier tool's
record once :mod:`.legacy` has read it into the same form)."""

from __future__ import annotations

from typing import Any, Dict, List

import numpy as np

from .views import MISSING, BaseView, ErrorTable

__all__ = ["RecordView"]


def _int_or_missing(value: Any) -> int:
    if isinstance(value, (bool, np.bool_)):
        return MISSING
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return MISSING


class RecordView(BaseView):
    """The views of one datapoint, computed from its full record.

    Parameters
    ----------
    record : dict
        The evaluation record in this project's format (``docs/api.md``):
        ``models_error_overlap``, ``*_accuracy_by_class``,
        ``h2_incompatible_instance_ids_by_class``, ``error_instances``.
    """

    def __init__(self, record: Dict[str, Any]) -> None:
        super().__init__()
        self.record_ = record
        overlap = record.get("models_error_overlap") or [[], [], []]
        self.h1_errors = np.unique(np.asarray(overlap[0], dtype=np.int64))
        self.h2_errors = np.unique(np.asarray(overlap[1], dtype=np.int64))

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
