"""Views of a datapoint computed from its per-instance columns (vectorised numpy).

:class:`ReferenceColumns` holds a dataset's fixed columns (ids, ground truth,
h1) and what follows from them alone (classes, h1's errors), computed once
and shared by every datapoint of that dataset. :class:`ColumnView` adds one
datapoint's h2 columns.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, List, Mapping, Optional

import numpy as np

from ..seed_record import Predictions, build_record, default_instance_metadata
from .views import BaseView, ErrorTable

__all__ = ["ReferenceColumns", "ColumnView", "INTERNAL_FIELDS"]

#: Fields of a datapoint's JSON file that describe the files, not the datapoint.
INTERNAL_FIELDS = ("format", "columns", "reference", "rows", "counts")
_DIRECT_BINS = 1 << 20  # labels in [0, 2**20) are binned by value, others through np.unique


class ReferenceColumns:
    """A dataset's fixed columns and the figures that depend on them alone.

    Parameters
    ----------
    columns : mapping of str to numpy.ndarray
        ``instance_id``, ``ground_truth``, ``h1_prediction``, ``h1_confidence``
        (as read from ``<dataset>-reference.arrow``).
    """

    def __init__(self, columns: Mapping[str, np.ndarray]) -> None:
        self.ids = columns["instance_id"]
        self.truth = columns["ground_truth"]
        self.h1 = columns["h1_prediction"]
        self.h1_confidence = columns.get("h1_confidence")
        self.size = int(self.ids.shape[0])
        self._lock = threading.Lock()
        self._ready = False

    def __len__(self) -> int:
        return self.size

    def _prepare(self) -> None:
        with self._lock:
            if self._ready:
                return
            truth = self.truth
            low = int(truth.min()) if self.size else 0
            high = int(truth.max()) if self.size else -1
            if low >= 0 and high < _DIRECT_BINS:
                bins = truth if truth.dtype.kind == "i" else truth.astype(np.int64)
                counts = np.bincount(bins, minlength=high + 1)
                present = np.flatnonzero(counts)
                self.classes = present.astype(np.int64)
            else:
                self.classes, bins = np.unique(truth, return_inverse=True)
                counts = np.bincount(bins, minlength=self.classes.shape[0])
                present = np.arange(self.classes.shape[0])
            self.bins, self.n_bins, self.present = bins, counts.shape[0], present
            self.class_counts = counts[present]
            self.h1_wrong = self.h1 != truth
            self.h1_errors = int(np.count_nonzero(self.h1_wrong))
            self.h1_errors_by_class = self.per_class(self.h1_wrong)
            self.ids_increasing = self.size < 2 or bool(np.all(self.ids[1:] > self.ids[:-1]))
            self._ready = True

    def ready(self) -> "ReferenceColumns":
        """This object, with its derived figures computed."""
        if not self._ready:
            self._prepare()
        return self

    def per_class(self, mask: np.ndarray) -> np.ndarray:
        """How many instances of ``mask`` fall in each class of :attr:`classes`."""
        return np.bincount(self.bins[mask], minlength=self.n_bins)[self.present]


class ColumnView(BaseView):
    """The views of one datapoint, computed from its columns.

    Parameters
    ----------
    info : dict
        The datapoint's JSON file (scores, counts, the summary point's fields).
    reference : ReferenceColumns
        Its dataset's fixed columns.
    h2 : mapping of str to numpy.ndarray
        ``h2_prediction`` and ``h2_confidence``, in the reference's rows.
    get_instance_metadata : callable, optional
        ``instance_id -> str`` for the instance rows (default: the id as text).
    """

    def __init__(self, info: Dict[str, Any], reference: ReferenceColumns, h2: Mapping[str, np.ndarray],
                 get_instance_metadata: Optional[Callable[[int], str]] = None) -> None:
        super().__init__()
        if h2["h2_prediction"].shape[0] != reference.size:
            raise ValueError(
                f"datapoint {info.get('datapoint_index')} has {h2['h2_prediction'].shape[0]} rows, its "
                f"reference {reference.size}"
            )
        self.info = info
        self.reference = reference.ready()
        self.h2 = h2["h2_prediction"]
        self.h2_confidence = h2.get("h2_confidence")
        self.get_instance_metadata = get_instance_metadata or default_instance_metadata
        self._counts: Optional[Dict[str, Any]] = None

    def scalars(self) -> Dict[str, Any]:
        return {k: v for k, v in self.info.items() if k not in INTERNAL_FIELDS}

    def _h2_wrong(self) -> np.ndarray:
        return self.h2 != self.reference.truth

    def _figures(self) -> Dict[str, Any]:
        with self._lock:
            if self._counts is None:
                reference = self.reference
                h2_wrong = self._h2_wrong()
                both = reference.h1_wrong & h2_wrong
                incompatible = h2_wrong & ~reference.h1_wrong
                self._counts = {
                    "h1": reference.h1_errors,
                    "h2": int(np.count_nonzero(h2_wrong)),
                    "common": int(np.count_nonzero(both)),
                    "h2_by_class": reference.per_class(h2_wrong),
                    "incompatible_by_class": reference.per_class(incompatible),
                }
            return self._counts

    def counts(self) -> Dict[str, int]:
        figures = self._figures()
        return {key: figures[key] for key in ("h1", "h2", "common")}

    def class_rows(self) -> Dict[str, List[Dict[str, Any]]]:
        reference, figures = self.reference, self._figures()
        classes = reference.classes.tolist()
        counts = reference.class_counts.tolist()

        def accuracy_rows(errors: np.ndarray) -> List[Dict[str, Any]]:
            return [
                {"class": c, "accuracy": float((n - e) / n), "count": n, "error_count": e}
                for c, n, e in zip(classes, counts, errors.tolist())
            ]

        return {
            "sorted_classes": classes,
            "h1_accuracy_by_class": accuracy_rows(reference.h1_errors_by_class),
            "h2_accuracy_by_class": accuracy_rows(figures["h2_by_class"]),
            "h2_incompatible_count_by_class": [
                {"class": c, "count": n} for c, n in zip(classes, figures["incompatible_by_class"].tolist())
            ],
        }

    def _build_errors(self) -> ErrorTable:
        reference = self.reference
        h2_wrong = self._h2_wrong()
        rows = np.flatnonzero(reference.h1_wrong | h2_wrong)
        ids = reference.ids[rows]
        if not reference.ids_increasing:
            order = np.argsort(ids, kind="stable")
            rows, ids = rows[order], ids[order]
        in_h1, in_h2 = reference.h1_wrong[rows], h2_wrong[rows]
        columns = {  # the stored (narrow) label types
            "h1_prediction": reference.h1[rows],
            "h2_prediction": self.h2[rows],
            "ground_truth": reference.truth[rows],
        }
        confidences = {}
        if reference.h1_confidence is not None:
            confidences["h1_confidence"] = reference.h1_confidence[rows]
        if self.h2_confidence is not None:
            confidences["h2_confidence"] = self.h2_confidence[rows]
        return ErrorTable(ids.astype(np.int64), columns, in_h1, in_h2, ErrorTable.regions_of(in_h1, in_h2),
                          confidences)

    def _item_values(self, positions: np.ndarray) -> List[Dict[str, Any]]:
        table = self.errors
        ids = table.ids[positions].tolist()
        labels = [table.columns[k][positions].tolist() for k in ("h1_prediction", "h2_prediction", "ground_truth")]
        return [
            {"metadata": str(self.get_instance_metadata(i)), "h1_prediction": p1, "h2_prediction": p2,
             "ground_truth": t}
            for i, p1, p2, t in zip(ids, *labels)
        ]

    def record(self) -> Dict[str, Any]:
        """The seed's full record, built from the columns (large: every error id, several times)."""
        reference = self.reference
        predictions = Predictions(
            reference.ids.astype(np.int64), reference.truth.astype(np.int64),
            reference.h1.astype(np.int64), self.h2.astype(np.int64),
        )
        unknown = float("nan")  # stored as null by the record
        h2_performance = self.info.get("h2_performance", self.info.get("performance"))
        record = build_record(
            predictions,
            h1_performance=unknown if self.info.get("h1_performance") is None else self.info["h1_performance"],
            h2_performance=unknown if h2_performance is None else h2_performance,
            get_instance_metadata=self.get_instance_metadata,
        )
        for key, value in self.scalars().items():
            record.setdefault(key, value)
        return record

    def dataframe_columns(self) -> Dict[str, np.ndarray]:
        """Every instance's columns (reference order): ids, labels of both models, confidences."""
        reference = self.reference
        columns = {
            "instance_id": reference.ids, "ground_truth": reference.truth,
            "h1_prediction": reference.h1, "h2_prediction": self.h2,
        }
        if reference.h1_confidence is not None:
            columns["h1_confidence"] = reference.h1_confidence
        if self.h2_confidence is not None:
            columns["h2_confidence"] = self.h2_confidence
        return columns
