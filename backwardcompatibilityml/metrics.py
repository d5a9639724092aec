"""Model performance metrics over a whole dataset.

A metric has the signature ``metric(model, dataset, device) -> float``. A
metric may also carry an attribute ``from_predictions(predicted, expected) ->
float``; the sweep then computes it from predictions it already has instead
of running the model again (``model_accuracy`` does).
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple

import numpy as np
import torch

from .data import iterate_batches
from .device import DeviceLike, resolve_device
from .outputs import inference, predicted_labels, target_labels
from .validation import check_comparable_labels, check_label_array

__all__ = ["model_accuracy", "model_accuracy_by_class", "accuracy_from_predictions", "predict_dataset"]


def predict_dataset(model: Any, dataset: Iterable, device: DeviceLike = "cpu") -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run ``model`` once over ``dataset`` in eval mode without gradients.

    Returns
    -------
    instance_ids, predicted, expected : numpy.ndarray
        Global instance ids, predicted labels and targets, in iteration order.
    """
    torch_device = resolve_device(device)
    ids, predicted, expected = [], [], []
    with inference(model):
        for batch_ids, inputs, targets in iterate_batches(dataset, torch_device):
            ids.append(batch_ids)
            predicted.append(predicted_labels(model(inputs), name="model").cpu())
            expected.append(target_labels(targets).cpu())
    if not ids:
        empty = np.empty(0, dtype=np.int64)
        return empty, empty, empty
    return torch.cat(ids).numpy(), torch.cat(predicted).numpy(), torch.cat(expected).numpy()


def accuracy_from_predictions(predicted: Any, expected: Any) -> float:
    """Share of ``predicted`` labels equal to ``expected`` (0.0 for no instance)."""
    predicted = check_label_array(predicted, "predicted")
    expected = check_label_array(expected, "expected")
    if predicted.shape != expected.shape:
        raise ValueError(f"predicted and expected differ in length: {predicted.shape[0]} and {expected.shape[0]}")
    check_comparable_labels(predicted, "predicted", expected, "expected")
    return float(np.count_nonzero(predicted == expected)) / predicted.shape[0] if predicted.shape[0] else 0.0


def model_accuracy(model: Any, dataset: Iterable, device: DeviceLike = "cpu") -> float:
    """Accuracy of ``model`` on ``dataset``: correct instances / all instances.

    Counted over the whole dataset, not averaged over batches (a smaller last
    batch weighs what its instances weigh).

    Parameters
    ----------
    model : torch.nn.Module
        Returns logits, the triple ``(logits, softmax, log_softmax)`` or binary
        probabilities (threshold 0.5).
    dataset : iterable of (instance_ids, inputs, targets)
        The batches to evaluate.
    device : {"cpu", "cuda"}
        Where inputs are sent.

    Returns
    -------
    float
    """
    _, predicted, expected = predict_dataset(model, dataset, device)
    return accuracy_from_predictions(predicted, expected)


model_accuracy.from_predictions = accuracy_from_predictions  # type: ignore[attr-defined]


def model_accuracy_by_class(model: Any, dataset: Iterable, device: DeviceLike = "cpu") -> Dict[int, float]:
    """Accuracy of ``model`` on the instances of each ground-truth class.

    Returns
    -------
    dict
        ``{class: accuracy}`` for every class present in the targets, ordered by class.
    """
    _, predicted, expected = predict_dataset(model, dataset, device)
    classes, inverse = np.unique(expected, return_inverse=True)
    counts = np.bincount(inverse, minlength=classes.shape[0])
    correct = np.bincount(inverse, weights=(predicted == expected), minlength=classes.shape[0])
    return {int(c): float(k / n) for c, k, n in zip(classes, correct, counts)}
