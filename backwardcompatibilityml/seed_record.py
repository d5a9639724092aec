"""The seed's full evaluation record, and the one-call evaluation of the JSON era.

:func:`build_record` turns the four label columns of a datapoint (ids, ground
truth, h1's and h2's predictions) into the record of ``docs/api.md``, every id
list sorted; ``get_evaluation(i)`` builds it on demand from the stored
columns, and the tests use it as the reference of every view.
:func:`evaluate_models` is the one-call form of the earlier engine (h1 from a
:class:`~backwardcompatibilityml.data.ReferenceOutputs` cache, h2 run once).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Iterable, List, Optional

import numpy as np
import torch

from .data import ReferenceOutputs, iterate_batches
from .device import DeviceLike, resolve_device
from .metrics import model_accuracy
from .outputs import inference, predicted_labels, target_labels
from .scores import (
    error_compatibility_score,
    negative_flip_rate,
    positive_flip_rate,
    trust_compatibility_score,
)
from .training import TrainingCancelled

__all__ = ["Predictions", "predict_with_reference", "build_record", "evaluate_models", "default_instance_metadata"]


def default_instance_metadata(instance_id: int) -> str:
    """The metadata shown for an instance when the user gives no callback.

    Parameters
    ----------
    instance_id : int
        The global instance id.

    Returns
    -------
    str
        The id as a decimal string.
    """
    return str(int(instance_id))


class Predictions:
    """Ids, labels and both models' predictions for every instance of a dataset."""

    def __init__(self, ids: np.ndarray, expected: np.ndarray, h1: np.ndarray, h2: np.ndarray) -> None:
        self.ids, self.expected, self.h1, self.h2 = ids, expected, h1, h2


def predict_with_reference(
    h2: Any,
    dataset: Iterable,
    reference: ReferenceOutputs,
    *,
    device: DeviceLike = "cpu",
    discriminant_pivot: float = 0.5,
    on_batch: Optional[Callable[[], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> Predictions:
    """Predict every instance with h2 (one forward per batch) and h1 (from its cache)."""
    torch_device = resolve_device(device)
    ids: List[torch.Tensor] = []
    expected: List[torch.Tensor] = []
    h1_labels: List[torch.Tensor] = []
    h2_labels: List[torch.Tensor] = []
    with inference(h2):
        for batch_ids, inputs, targets in iterate_batches(dataset, torch_device):
            if should_stop is not None and should_stop():
                raise TrainingCancelled()
            h1_out = reference.for_batch(batch_ids, inputs)
            h2_out = h2(inputs)
            ids.append(batch_ids)
            expected.append(target_labels(targets).cpu())
            h1_labels.append(predicted_labels(h1_out, discriminant_pivot, "h1").cpu())
            h2_labels.append(predicted_labels(h2_out, discriminant_pivot, "h2").cpu())
            if on_batch is not None:
                on_batch()
    if not ids:
        empty = np.empty(0, dtype=np.int64)
        return Predictions(empty, empty, empty, empty)
    return Predictions(*(torch.cat(part).numpy().astype(np.int64) for part in (ids, expected, h1_labels, h2_labels)))


def _ids_by_class(ids: np.ndarray, classes_of_ids: np.ndarray, classes: np.ndarray) -> List[List[int]]:
    """Split ``ids`` by class (each list sorted), one list per entry of ``classes``."""
    order = np.lexsort((ids, classes_of_ids))
    sorted_ids, sorted_classes = ids[order], classes_of_ids[order]
    bounds = np.searchsorted(sorted_classes, classes, side="left"), np.searchsorted(sorted_classes, classes, side="right")
    return [sorted_ids[lo:hi].tolist() for lo, hi in zip(*bounds)]


def _finite_or_none(value: Any) -> Optional[float]:
    """A float, or None for NaN/infinity (which JSON cannot hold)."""
    value = float(value)
    return value if np.isfinite(value) else None


def build_record(
    predictions: Predictions,
    *,
    h1_performance: float,
    h2_performance: float,
    get_instance_metadata: Callable[[int], str] = default_instance_metadata,
) -> Dict[str, Any]:
    """Turn predictions into the evaluation record described in ``docs/api.md``."""
    ids, expected, h1, h2 = predictions.ids, predictions.expected, predictions.h1, predictions.h2
    right1, right2 = h1 == expected, h2 == expected
    classes, inverse = np.unique(expected, return_inverse=True)
    counts = np.bincount(inverse, minlength=classes.shape[0])

    def accuracy_by_class(right: np.ndarray) -> List[Dict[str, Any]]:
        correct = np.bincount(inverse, weights=right, minlength=classes.shape[0])
        error_ids = _ids_by_class(ids[~right], expected[~right], classes)
        return [
            {"class": int(c), "accuracy": float(k / n), "count": int(n), "error_instance_ids": e}
            for c, k, n, e in zip(classes, correct, counts, error_ids)
        ]

    incompatible = right1 & ~right2
    incompatible_ids = _ids_by_class(ids[incompatible], expected[incompatible], classes)
    wrong_either = ~right1 | ~right2
    error_order = np.argsort(ids[wrong_either], kind="stable")
    error_ids = ids[wrong_either][error_order]
    error_h1 = h1[wrong_either][error_order].tolist()
    error_h2 = h2[wrong_either][error_order].tolist()
    error_truth = expected[wrong_either][error_order].tolist()
    error_instances = {
        str(i): {
            "instance_id": i,
            "metadata": str(get_instance_metadata(i)),
            "h1_prediction": p1,
            "h2_prediction": p2,
            "ground_truth": t,
        }
        for i, p1, p2, t in zip(error_ids.tolist(), error_h1, error_h2, error_truth)
    }
    return {
        "dataset_size": int(ids.shape[0]),
        "h1_performance": _finite_or_none(h1_performance),
        "h2_performance": _finite_or_none(h2_performance),
        "performance": _finite_or_none(h2_performance),
        "btc": trust_compatibility_score(h1, h2, expected),
        "bec": error_compatibility_score(h1, h2, expected),
        "nfr": negative_flip_rate(h1, h2, expected),
        "pfr": positive_flip_rate(h1, h2, expected),
        "models_error_overlap": [
            np.sort(ids[~right1]).tolist(),
            np.sort(ids[~right2]).tolist(),
            np.sort(ids[~right1 & ~right2]).tolist(),
        ],
        "sorted_classes": classes.astype(np.int64).tolist(),
        "h1_accuracy_by_class": accuracy_by_class(right1),
        "h2_accuracy_by_class": accuracy_by_class(right2),
        "h2_incompatible_instance_ids_by_class": [
            {"class": int(c), "instance_ids": i} for c, i in zip(classes, incompatible_ids)
        ],
        "error_instances": error_instances,
    }


def evaluate_models(
    h2: Any,
    dataset: Iterable,
    reference: ReferenceOutputs,
    *,
    device: DeviceLike = "cpu",
    performance_metric: Callable = model_accuracy,
    h1_performance: Optional[float] = None,
    get_instance_metadata: Optional[Callable[[int], str]] = None,
    discriminant_pivot: float = 0.5,
    on_batch: Optional[Callable[[], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> Dict[str, Any]:
    """Evaluate h2 against the reference model on ``dataset``.

    h2 runs once per batch; h1's outputs come from ``reference``. A
    ``performance_metric`` with a ``from_predictions`` attribute (such as
    :func:`~backwardcompatibilityml.metrics.model_accuracy`) is computed from
    those predictions; any other metric is called as
    ``performance_metric(model, dataset, device)`` and runs the model again.

    Parameters
    ----------
    h2 : torch.nn.Module
        The new model.
    dataset : iterable of (instance_ids, inputs, targets)
        The batches to evaluate on.
    reference : ReferenceOutputs
        h1 and the cache of its outputs on ``dataset``.
    device : {"cpu", "cuda"}
        Where inputs are sent.
    performance_metric : callable
        ``metric(model, dataset, device) -> float``.
    h1_performance : float, optional
        h1's performance on ``dataset`` if already known.
    get_instance_metadata : callable, optional
        ``instance_id -> str`` for the error instances (default: the id as text).
    discriminant_pivot : float
        Threshold of binary models.
    on_batch, should_stop : callable, optional
        Progress callback after each batch; cancellation check before each.

    Returns
    -------
    dict
        The record: ``dataset_size``, ``h1_performance``, ``h2_performance``,
        ``btc``, ``bec``, ``nfr``, ``pfr``, ``models_error_overlap``,
        ``sorted_classes``, ``h1_accuracy_by_class``, ``h2_accuracy_by_class``,
        ``h2_incompatible_instance_ids_by_class`` and ``error_instances``.
    """
    predictions = predict_with_reference(
        h2, dataset, reference, device=device, discriminant_pivot=discriminant_pivot,
        on_batch=on_batch, should_stop=should_stop,
    )
    from_predictions = getattr(performance_metric, "from_predictions", None)
    if from_predictions is not None:
        h2_performance = from_predictions(predictions.h2, predictions.expected)
        if h1_performance is None:
            h1_performance = from_predictions(predictions.h1, predictions.expected)
    else:
        h2_performance = performance_metric(h2, dataset, device)
        if h1_performance is None:
            h1_performance = performance_metric(reference.model, dataset, device)
    return build_record(
        predictions,
        h1_performance=h1_performance,
        h2_performance=h2_performance,
        get_instance_metadata=get_instance_metadata or default_instance_metadata,
    )
