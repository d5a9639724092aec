"""Writing a sweep's results as columns: h1's per dataset once, h2's and a small JSON per datapoint.

Every file goes through the store's atomic write (temporary file, fsync,
``os.replace``). A datapoint's columns are written before its JSON file, so
a datapoint whose JSON file exists is complete.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Dict, List, Mapping, Optional

import numpy as np

from ..evaluation import DatasetReference
from ..scores import (
    error_compatibility_score, negative_flip_rate, positive_flip_rate, trust_compatibility_score,
)
from ..store import POINT_FIELDS
from .columns import FORMAT, columns_name, info_name, narrow_labels, read_columns, reference_name, write_columns

__all__ = ["ensure_reference", "reference_difference", "write_reference", "write_datapoint", "write_result", "datapoint_point"]

logger = logging.getLogger(__name__)
_SEED_FAMILIES = ("new-error", "strict-imitation")


def write_reference(store: Any, reference: DatasetReference) -> None:
    """Write ``<dataset>-reference.arrow``: ids, ground truth, h1's predictions and confidences."""
    write_columns(store, reference_name(reference.name), {
        "instance_id": np.asarray(reference.ids, dtype=np.int64),
        "ground_truth": narrow_labels(reference.targets),
        "h1_prediction": narrow_labels(reference.h1_predictions),
        "h1_confidence": np.asarray(reference.h1_confidences, dtype=np.float32),
    }, {"bcml.dataset": reference.name, "bcml.h1_performance": repr(reference.h1_performance)})


def reference_difference(store: Any, reference: DatasetReference) -> Optional[str]:
    """Why the stored reference of ``reference``'s dataset does not describe the same data, or None.

    Compared, in the stored row order: the instance ids (as a set: a
    shuffling loader may reorder them), the ground truth and h1's
    predictions (h1's weights are part of a sweep's fingerprint, so other
    predictions mean other inputs). A missing or unreadable file is None:
    there is nothing to contradict.
    """
    path = store.path(reference_name(reference.name))
    if not os.path.exists(path):
        return None
    try:
        stored = read_columns(path)
        ids = stored["instance_id"]
    except Exception:
        return None
    if ids.shape != reference.ids.shape:
        return f"the {reference.name} set holds {len(reference.ids)} instances, the stored results {ids.shape[0]}"
    rows = _rows_in_stored_order(ids, reference)
    if rows is None:
        return f"the {reference.name} set holds other instances (ids) than the stored results"
    for column, values, what in (("ground_truth", reference.targets, "labels"),
                                 ("h1_prediction", reference.h1_predictions, "inputs (h1 predicts otherwise)")):
        if column in stored and not np.array_equal(np.asarray(stored[column], dtype=np.int64),
                                                   np.asarray(values, dtype=np.int64)[rows]):
            return f"the {reference.name} set has other {what} than when the stored results were made"
    return None


def ensure_reference(store: Any, reference: DatasetReference) -> Optional[np.ndarray]:
    """Make the stored reference of ``reference``'s dataset usable; return how to align h2's columns to it.

    A missing reference file is written. A stored one with the same ids in
    the same order is kept (None is returned). One with the same ids in
    another order (a shuffling DataLoader on a resumed sweep) is kept too,
    and the rows of ``reference`` in the stored order are returned: h2's
    columns must be taken in that order. Any other stored file is replaced.
    """
    path = store.path(reference_name(reference.name))
    if os.path.exists(path):
        try:
            stored = read_columns(path)["instance_id"]
        except Exception as error:  # unreadable: replace it
            logger.warning("replacing the unreadable reference file of the %s set: %s", reference.name, error)
        else:
            if np.array_equal(stored, reference.ids):
                return None
            rows = _rows_in_stored_order(stored, reference)
            if rows is not None:
                return rows
            logger.warning("the stored reference of the %s set holds other instances; replacing it", reference.name)
    write_reference(store, reference)
    return None


def _rows_in_stored_order(stored_ids: np.ndarray, reference: DatasetReference) -> Optional[np.ndarray]:
    """The rows of ``reference`` in the order of a stored reference's ids, or None when they are other instances."""
    if stored_ids.shape != reference.ids.shape:
        return None
    try:
        return reference.row_array(stored_ids)
    except ValueError:
        return None


def datapoint_point(info: Mapping[str, Any]) -> Dict[str, Any]:
    """The summary entry of a datapoint's JSON file: the seed's point fields plus ``family`` and ``dataset``."""
    point = {field: info.get(field) for field in POINT_FIELDS}
    point["family"] = info.get("family")
    point["dataset"] = info.get("dataset")
    return point


def write_datapoint(
    store: Any,
    datapoint_index: int,
    reference: DatasetReference,
    outputs: Any,
    *,
    lambda_c: float,
    family: str,
    performance_metric: Optional[str] = None,
    rows: Optional[np.ndarray] = None,
) -> Dict[str, Any]:
    """Write one datapoint (``<i>-evaluation.arrow``, then ``<i>-evaluation.json``); return its point.

    Parameters
    ----------
    store : SweepStore
        The folder.
    datapoint_index : int
        Index of the datapoint.
    reference : DatasetReference
        h1's columns on the dataset (its ``name`` is the dataset's).
    outputs : H2Outputs
        h2's columns, aligned to ``reference``.
    lambda_c, family, performance_metric
        What the datapoint is.
    rows : numpy.ndarray, optional
        Rows of ``reference`` in the stored reference's order (from :func:`ensure_reference`).
    """
    predictions = np.asarray(outputs.predictions)
    confidences = np.asarray(outputs.confidences, dtype=np.float32)
    if predictions.shape[0] != len(reference) or confidences.shape[0] != len(reference):
        raise ValueError(
            f"h2's columns on the {reference.name} set have {predictions.shape[0]} rows, its reference {len(reference)}"
        )
    h1, truth = reference.h1_predictions, reference.targets
    if rows is not None:
        predictions, confidences, h1, truth = predictions[rows], confidences[rows], h1[rows], truth[rows]
    write_columns(store, columns_name(datapoint_index), {
        "h2_prediction": narrow_labels(predictions),
        "h2_confidence": confidences,
    }, {"bcml.dataset": reference.name, "bcml.datapoint_index": str(int(datapoint_index))})
    h1_wrong, h2_wrong = h1 != truth, predictions != truth
    h1_errors, h2_errors = int(np.count_nonzero(h1_wrong)), int(np.count_nonzero(h2_wrong))
    common = int(np.count_nonzero(h1_wrong & h2_wrong))
    testing = reference.name == "testing"
    info = {
        "format": FORMAT,
        "datapoint_index": int(datapoint_index),
        "lambda_c": float(lambda_c),
        "family": family,
        "dataset": reference.name,
        "training": reference.name == "training",
        "testing": testing,
        **{name: family == name for name in _SEED_FAMILIES},
        "performance_metric": performance_metric,
        "dataset_size": int(len(reference)),
        "h1_performance": reference.h1_performance,
        "h2_performance": outputs.performance,
        "performance": outputs.performance,
        "btc": trust_compatibility_score(h1, predictions, truth),
        "bec": error_compatibility_score(h1, predictions, truth),
        "nfr": negative_flip_rate(h1, predictions, truth),
        "pfr": positive_flip_rate(h1, predictions, truth),
        "counts": {
            "h1_errors": h1_errors, "h2_errors": h2_errors, "common_errors": common,
            "progress": h1_errors - common, "regress": h2_errors - common,
        },
        "columns": columns_name(datapoint_index),
        "reference": reference_name(reference.name),
        "rows": int(len(reference)),
    }
    store.write_json(info_name(datapoint_index), info)
    return datapoint_point(info)


def write_result(
    store: Any,
    result: Any,
    references: Mapping[str, DatasetReference],
    *,
    performance_metric: Optional[str] = None,
    alignment: Optional[Mapping[str, Optional[np.ndarray]]] = None,
) -> List[Dict[str, Any]]:
    """Store a finished job's datapoints (one per dataset); return their summary entries.

    The trained model's state is not written here (the runner saves it first).

    Parameters
    ----------
    store : SweepStore
        The folder.
    result : JobResult
        The job and h2's outputs per dataset (``"training"``, ``"testing"``).
    references : mapping of str to DatasetReference
        h1's columns per dataset.
    performance_metric : str, optional
        Name of the metric, recorded with each datapoint.
    alignment : mapping, optional
        Per dataset, what :func:`ensure_reference` returned; when absent the
        stored reference is checked (and written if missing) here.
    """
    job = result.job
    points = []
    for dataset_index, name in enumerate(("training", "testing")):
        reference = references[name]
        if alignment is not None and name in alignment:
            rows = alignment[name]
        else:
            rows = ensure_reference(store, reference)
        points.append(write_datapoint(
            store, job.datapoint_indices[dataset_index], reference, result.outputs[name],
            lambda_c=job.lambda_c, family=job.family, performance_metric=performance_metric, rows=rows,
        ))
    return points
