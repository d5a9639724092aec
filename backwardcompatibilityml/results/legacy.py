"""Reading ``<i>-evaluation-data.json`` records of older folders into this project's record format.

Two older formats are read (read-only):

* this project's JSON era: the record of ``docs/api.md``, used as it is;
* the earlier tool's: ``error_instances`` is a list, incompatible ids are
  under ``incompatibleInstanceIds``, id lists are in batch order, per-class
  accuracy, NFR, PFR and the family flags are absent, and BTC / BEC were
  averaged over batches (BEC over h1's errors).

An earlier-tool record is rebuilt in this project's form: id lists sorted,
``error_instances`` keyed by id, one incompatible row per class, and BTC,
BEC, NFR and PFR recomputed over the whole dataset from its id lists with
this project's definitions (the stored values stay as ``earlier_tool_btc``
and ``earlier_tool_bec``). What the earlier tool did not record stays
empty: ``h1_accuracy_by_class`` and ``h2_accuracy_by_class`` are ``[]``, and
h1's performance is known only on the test set (from its summary).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ..store import POINT_FIELDS
from .record_view import integer_ids

__all__ = ["EARLIER_TOOL", "JSON_ERA", "record_format", "normalize_record", "point_of_record", "family_of_index"]

EARLIER_TOOL = "earlier-tool"
JSON_ERA = "json"
_SEED_FAMILIES = ("new-error", "strict-imitation")


def record_format(record: Mapping[str, Any]) -> str:
    """``"earlier-tool"`` or ``"json"`` (this project's JSON era)."""
    if isinstance(record.get("error_instances"), list):
        return EARLIER_TOOL
    rows = record.get("h2_incompatible_instance_ids_by_class") or []
    if any(isinstance(row, dict) and "incompatibleInstanceIds" in row for row in rows):
        return EARLIER_TOOL
    if "h1_accuracy_by_class" not in record and "nfr" not in record:
        return EARLIER_TOOL
    return JSON_ERA


def family_of_index(datapoint_index: int) -> str:
    """The seed's family of a datapoint index (New Error train, test, then Strict Imitation train, test)."""
    return _SEED_FAMILIES[(int(datapoint_index) // 2) % 2]


def _sorted_ids(values: Any, what: str = "an id list") -> List[int]:
    return np.unique(integer_ids(values if values is not None else [], what)).tolist()


def _int(value: Any, what: str) -> int:
    """An integer field of a stored record (an int, or a float with an integer value).

    Raises
    ------
    ValueError
        If ``value`` is anything else (a string, None, a bool, ``1.5``).
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    raise ValueError(f"{what} must be an integer, not {value!r:.40}")


def _number(value: Any, what: str) -> float:
    """A numeric field of a stored record as a float (ValueError for a string, None, a bool...)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ValueError(f"{what} must be a number, not {value!r:.40}")


def _ratio(numerator: int, denominator: int, empty: float) -> float:
    return numerator / denominator if denominator else empty


def _as_int(value: Any) -> Any:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value).is_integer() \
        else value


def normalize_record(record: Dict[str, Any], datapoint_index: int, summary: Optional[Mapping[str, Any]] = None,
                     ) -> Dict[str, Any]:
    """A stored record in this project's format (a JSON-era record comes back as it is).

    Parameters
    ----------
    record : dict
        The parsed ``<i>-evaluation-data.json``.
    datapoint_index : int
        Its index (from the file name).
    summary : mapping, optional
        The folder's parsed ``sweep_summary.json``: the earlier tool kept the
        family flags and h1's test performance there.

    Raises
    ------
    ValueError
        If a field the earlier tool's format needs has the wrong type (an
        instance id or a class that is not an integer...).
    """
    if record_format(record) == JSON_ERA:
        record.setdefault("datapoint_index", datapoint_index)
        return record
    summary = summary or {}
    point = next((p for p in summary.get("data") or []
                  if isinstance(p, dict) and p.get("datapoint_index") == datapoint_index), {})
    overlap = record.get("models_error_overlap") or [[], [], []]
    if not isinstance(overlap, list):
        raise ValueError("models_error_overlap must be a list of id lists")
    overlap = overlap + [[], [], []]
    h1_errors = _sorted_ids(overlap[0], "models_error_overlap[0]")
    h2_errors = _sorted_ids(overlap[1], "models_error_overlap[1]")
    common = np.intersect1d(h1_errors, h2_errors).tolist()
    size = _int(record.get("dataset_size") or 0, "dataset_size")
    n1, n2, nc = len(h1_errors), len(h2_errors), len(common)
    testing = bool(record.get("testing", point.get("testing", datapoint_index % 2 == 1)))
    family = ("new-error" if point.get("new-error") else "strict-imitation" if point.get("strict-imitation")
              else family_of_index(datapoint_index))
    instances: Dict[str, Dict[str, Any]] = {}
    for entry in record.get("error_instances") or []:
        if isinstance(entry, dict) and "instance_id" in entry:
            instance_id = _int(entry["instance_id"], "instance_id")
            instances[str(instance_id)] = {
                "instance_id": instance_id,
                "metadata": entry.get("metadata") if entry.get("metadata") not in (None, "") else str(instance_id),
                "h1_prediction": _as_int(entry.get("h1_prediction")),
                "h2_prediction": _as_int(entry.get("h2_prediction")),
                "ground_truth": _as_int(entry.get("ground_truth")),
            }
    classes = [_int(c, "a class of sorted_classes") for c in record.get("sorted_classes") or []]
    incompatible: Dict[int, List[int]] = {c: [] for c in classes}
    for row in record.get("h2_incompatible_instance_ids_by_class") or []:
        if isinstance(row, dict) and "class" in row:
            ids = row.get("incompatibleInstanceIds", row.get("instance_ids")) or []
            incompatible.setdefault(_int(row["class"], "class"), []).extend(_sorted_ids(ids, "incompatibleInstanceIds"))
    h2_performance = record.get("h2_performance", point.get("performance"))
    return {
        "datapoint_index": _int(record.get("datapoint_index", datapoint_index), "datapoint_index"),
        "lambda_c": _number(record.get("lambda_c", point.get("lambda_c", 0.0)), "lambda_c"),
        "training": not testing,
        "testing": testing,
        "new-error": family == "new-error",
        "strict-imitation": family == "strict-imitation",
        "family": family,
        "dataset": "testing" if testing else "training",
        "record_format": EARLIER_TOOL,
        "performance_metric": record.get("performance_metric"),
        "dataset_size": size,
        "h1_performance": summary.get("h1_performance") if testing else None,
        "h2_performance": h2_performance,
        "performance": h2_performance,
        "btc": _ratio(size - n1 - n2 + nc, size - n1, 1.0),
        "bec": _ratio(nc, n2, 1.0),
        "nfr": _ratio(n2 - nc, size, 0.0),
        "pfr": _ratio(n1 - nc, size, 0.0),
        "earlier_tool_btc": record.get("btc"),
        "earlier_tool_bec": record.get("bec"),
        "models_error_overlap": [h1_errors, h2_errors, common],
        "sorted_classes": classes,
        "h1_accuracy_by_class": [],
        "h2_accuracy_by_class": [],
        "h2_incompatible_instance_ids_by_class": [
            {"class": c, "instance_ids": sorted(set(ids))} for c, ids in sorted(incompatible.items())
        ],
        "error_instances": {key: instances[key] for key in sorted(instances, key=int)},
    }


def point_of_record(record: Mapping[str, Any]) -> Dict[str, Any]:
    """The summary entry of a record in this project's format (with ``family`` and ``dataset``)."""
    point = {field: record.get(field) for field in POINT_FIELDS}
    point["family"] = record.get("family") or (
        "new-error" if record.get("new-error") else "strict-imitation" if record.get("strict-imitation")
        else family_of_index(record.get("datapoint_index", 0)))
    point["dataset"] = record.get("dataset") or ("testing" if record.get("testing") else "training")
    return point
