"""Evaluate the K members of a stacked model: one stacked pass per batch, K sets of columns.

The columns equal those of :func:`~backwardcompatibilityml.evaluation.predict_outputs`
for each member alone: labels and confidences come from the same
:func:`~backwardcompatibilityml.evaluation.labels_and_confidences`, run on
every member's rows (see :meth:`~.stacking.StackedModel.stacked_forward`),
and are placed in the reference's row order.
"""

from __future__ import annotations

from typing import Callable, Dict, List, Sequence, Tuple

import numpy as np
import torch

from ..data import iterate_batches
from ..evaluation import DatasetReference, RowTracker, labels_and_confidences, measure_performance
from ..training import TrainingCancelled
from .context import PreparedContext
from .events import BatchDone, EventSink
from .families import DATASETS
from .jobs import H2Outputs, TrainingJob
from .stacking import StackedModel

__all__ = ["evaluate_stacked"]


def evaluate_stacked(
    stacked: StackedModel,
    jobs: Sequence[TrainingJob],
    members: List[int],
    context: PreparedContext,
    sink: EventSink,
    should_stop: Callable[[], bool],
    discriminant_pivot: float,
) -> Tuple[Dict[int, Dict[str, H2Outputs]], Dict[int, BaseException]]:
    """h2's columns on both datasets for the members ``members`` (indices into the stack).

    Returns
    -------
    outputs : dict
        ``{member: {"training": H2Outputs, "testing": H2Outputs}}`` for every member that succeeded.
    failures : dict
        ``{member: exception}`` for members whose outputs hold NaN or whose metric failed.

    Raises
    ------
    TrainingCancelled
        When ``should_stop()`` turns true (checked before every batch).
    ValueError
        If a dataset no longer yields the instances of its reference (every member fails alike).
    """
    # Row by row (labels, confidences): NaN is read from the confidences, which a NaN output always reaches.
    head = stacked.stacked_forward(
        lambda output: labels_and_confidences(output, discriminant_pivot, "h2")[:2],
        lambda outputs: labels_and_confidences(outputs, discriminant_pivot, "h2", members=True)[:2])
    outputs: Dict[int, Dict[str, H2Outputs]] = {k: {} for k in members}
    failures: Dict[int, BaseException] = {}
    needs_model = getattr(context.performance_metric, "from_predictions", None) is None
    stacked.train(False)
    for name in DATASETS:
        live = [k for k in members if k not in failures]
        if not live:
            break
        batch_done = BatchDone(tuple(jobs[k] for k in live))  # one event object for every batch
        predictions, confidences, has_nan = _predict(
            stacked, head, context.dataset(name), context.references[name], context.device,
            lambda: sink.put(batch_done), should_stop,
        )
        for k in live:
            if has_nan[k]:
                failures[k] = ValueError(f"h2 produced NaN outputs on the {name} set; try a smaller learning rate")
                continue
            try:
                # A metric without from_predictions runs a model: a stand-alone copy of this member.
                model = stacked.member_module(k) if needs_model else None
                performance = measure_performance(
                    context.performance_metric, model, context.dataset(name), context.device,
                    predictions[k], context.references[name].targets, model_name="h2", dataset_name=name,
                )
            except TrainingCancelled:
                raise
            except Exception as error:
                failures[k] = error
                continue
            # Row views of the (K, N) arrays, not copies: the block lives as long as the chunk's
            # results, and a copy per member would double the evaluation's peak memory.
            outputs[k][name] = H2Outputs(predictions=predictions[k], confidences=confidences[k],
                                         performance=performance)
    return {k: v for k, v in outputs.items() if k not in failures}, failures


def _predict(
    stacked: StackedModel,
    head: Callable,
    dataset,
    reference: DatasetReference,
    device: torch.device,
    on_batch: Callable[[], None],
    should_stop: Callable[[], bool],
) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels ``(K, N)``, confidences ``(K, N)`` and a NaN flag per member, in reference row order."""
    size, count = len(reference), stacked.size
    predictions = np.zeros((count, size), dtype=np.int64)
    confidences = np.zeros((count, size), dtype=np.float32)
    tracker = RowTracker(reference)
    parts: List[Tuple[np.ndarray, torch.Tensor, torch.Tensor]] = []
    nan_flags: List[torch.Tensor] = []
    with torch.no_grad():
        for batch_ids, inputs, _targets in iterate_batches(dataset, device):
            if should_stop():
                raise TrainingCancelled()
            rows = tracker.rows(batch_ids)
            labels, confs = head(stacked.params, stacked.buffers, inputs)
            parts.append((rows, labels, confs))  # kept on the device until the end: no sync per batch
            nan_flags.append(torch.isnan(confs).any(dim=1))
            on_batch()
    tracker.check_complete()
    if parts:
        all_rows = np.concatenate([rows for rows, _, _ in parts])
        predictions[:, all_rows] = torch.cat([labels for _, labels, _ in parts], dim=1).cpu().numpy()
        confidences[:, all_rows] = torch.cat([confs for _, _, confs in parts], dim=1).cpu().numpy()
    flags = torch.stack(nan_flags).any(dim=0).cpu().numpy() if nan_flags else np.zeros(count, dtype=bool)
    return predictions, confidences, flags
