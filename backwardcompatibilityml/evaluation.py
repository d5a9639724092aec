"""Evaluate models on a dataset: h1's fixed columns once, h2's columns per job, and the seed's record.

* :func:`prepare_reference` runs h1 once over a dataset and keeps its
  per-instance columns (ids, ground truth, h1's predictions and confidences)
  as numpy arrays in a :class:`DatasetReference`, together with the cache of
  h1's raw outputs that the training losses read.
* :func:`predict_outputs` runs h2 once per batch and returns its predictions
  and confidences aligned to that reference (an ``H2Outputs``).
* :func:`build_record` and :func:`evaluate_models` (the seed's full record,
  and the JSON era's one-call evaluation) live in :mod:`.seed_record` and are
  importable from here.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import numpy as np
import torch

from .data import ReferenceOutputs, iterate_batches
from .device import DeviceLike, resolve_device
from .metrics import model_accuracy
from .outputs import (
    binary_probabilities, class_count, eval_mode, inference, is_binary_output, log_probabilities, target_labels,
)
from .seed_record import Predictions, build_record, default_instance_metadata, evaluate_models, predict_with_reference
from .training import TrainingCancelled

__all__ = [
    "DatasetReference", "RowAlignedOutputs", "prepare_reference", "predict_outputs", "labels_and_confidences", "measure_performance",
    "MetricError",
    "default_instance_metadata", "evaluate_models", "metric_name", "Predictions", "predict_with_reference",
    "build_record",
]


def metric_name(metric: Callable) -> str:
    """Name under which a performance metric is reported."""
    return getattr(metric, "__name__", type(metric).__name__)


class MetricError(RuntimeError):
    """The sweep's ``performance_metric`` raised while measuring a model."""


def _as_finite_number(value: Any) -> Optional[float]:
    """``value`` as a finite float: a number, or a tensor or numpy array holding one; None otherwise."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.item()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def measure_performance(
    metric: Callable,
    model: Any,
    dataset: Iterable,
    device: torch.device,
    predictions: np.ndarray,
    targets: np.ndarray,
    *,
    model_name: str,
    dataset_name: str,
) -> float:
    """A model's performance on a dataset by the sweep's metric, checked.

    A metric with ``from_predictions`` is computed from ``predictions`` and
    ``targets``; any other is called as ``metric(model, dataset, device)``,
    the documented signature: ``device`` as a string (``"cpu"``, ``"cuda"``),
    and ``model`` in eval mode, as the library's own predictions are made
    (the train/eval mode of each of its submodules is restored afterwards,
    so a metric that runs h1 cannot update its BatchNorm statistics).

    Raises
    ------
    ValueError
        If the metric returns something other than a finite number.
    MetricError
        If the metric raises (the message names ``performance_metric``).
    """
    name = metric_name(metric)
    from_predictions = getattr(metric, "from_predictions", None)
    try:
        if from_predictions is not None:
            value = from_predictions(predictions, targets)
        else:
            with eval_mode(model):
                value = metric(model, dataset, str(device))
    except TrainingCancelled:
        raise
    except Exception as error:
        raise MetricError(
            f"performance_metric {name} raised {type(error).__name__} measuring {model_name} on the "
            f"{dataset_name} set: {error}"
        ) from error
    number = _as_finite_number(value)
    if number is None:
        raise ValueError(
            f"performance_metric {name} returned {value!r} for {model_name} on the {dataset_name} set; "
            "it must return a finite number"
        )
    return number


def labels_and_confidences(
    output: Any, discriminant_pivot: float = 0.5, name: str = "model", *, members: bool = False
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Predicted labels, the probability of each predicted label, and whether any output is NaN.

    Parameters
    ----------
    output : Tensor or tuple of Tensor
        What the model returned (logits, the triple, or binary probabilities).
    discriminant_pivot : float
        Threshold of binary models.
    name : str
        Name of the model for error messages.
    members : bool, default False
        ``output`` holds K stacked models' outputs (see :mod:`~backwardcompatibilityml.outputs`).

    Returns
    -------
    labels : Tensor
        ``int64``, shape ``(N,)`` (``(K, N)`` with ``members``).
    confidences : Tensor
        ``float32``, shape ``(N,)`` (``(K, N)`` with ``members``): the probability the model gives
        its predicted label. A NaN output gives a NaN confidence in its own row (and member).
    has_nan : Tensor
        A boolean scalar, whether any output is NaN (of any member), on the output's device
        so that reading it can wait.
    """
    if is_binary_output(output, members=members):
        probabilities = binary_probabilities(output, name, members=members)
        labels = (probabilities > discriminant_pivot).long()
        confidences = torch.where(labels == 1, probabilities, 1.0 - probabilities)
        has_nan = torch.isnan(probabilities).any()
    else:
        log_probs = log_probabilities(output, name, members=members)
        best, labels = log_probs.max(dim=-1)
        confidences = best.exp()
        has_nan = torch.isnan(best).any()  # max propagates NaN: a row with one NaN has a NaN maximum
    return labels.long(), confidences.float(), has_nan


class _RowIndex:
    """Finds the reference row of instance ids: arithmetic for a range, binary search otherwise."""

    def __init__(self, ids: np.ndarray, dataset_name: str) -> None:
        self.size = int(ids.shape[0])
        self.dataset_name = dataset_name
        self.first: Optional[int] = None
        self.order: Optional[np.ndarray] = None
        increasing = self.size < 2 or bool(np.all(ids[1:] > ids[:-1]))
        if increasing and self.size and int(ids[-1]) - int(ids[0]) == self.size - 1:
            self.first = int(ids[0])
            self.sorted = ids[:0]
        elif increasing:
            self.sorted = ids
        else:
            self.order = np.argsort(ids, kind="stable")
            self.sorted = ids[self.order]

    def rows(self, batch_ids: np.ndarray) -> np.ndarray:
        if self.first is not None:
            rows = batch_ids - self.first
            unknown = (rows < 0) | (rows >= self.size)
        else:
            positions = np.minimum(np.searchsorted(self.sorted, batch_ids), max(self.size - 1, 0))
            unknown = self.sorted[positions] != batch_ids if self.size else np.ones(batch_ids.shape, bool)
            rows = positions if self.order is None else self.order[positions]
        if unknown.any():
            raise ValueError(
                f"instance id {int(batch_ids[unknown][0])} of the {self.dataset_name} set was not there when h1's "
                "reference was computed; a dataset must yield the same instances on every pass"
            )
        return rows.astype(np.int64, copy=False)


class RowAlignedOutputs(ReferenceOutputs):
    """h1's raw outputs on a dataset, stored in the rows of its :class:`DatasetReference`.

    The same interface as :class:`~backwardcompatibilityml.data.ReferenceOutputs`
    (``for_batch(ids, inputs)``), but the rows are found with the reference's
    vectorised row index instead of a dictionary of Python ints: no object per
    instance, and a batch is gathered with one tensor index. A batch holding
    an id the reference lacks is answered by running h1 (and not cached).

    Parameters
    ----------
    model : torch.nn.Module
        h1.
    device : torch.device
        Device of the inputs.
    outputs : list
        h1's outputs of every batch of the pass that made the reference, in order.
    """

    def __init__(self, model: Any, device: torch.device, outputs: List[Any]) -> None:
        super().__init__(model, device, "h1")
        self._triple = bool(outputs) and isinstance(outputs[0], (tuple, list))
        parts = len(outputs[0]) if self._triple else 1
        self._buffers = [
            torch.cat([output[k] if self._triple else output for output in outputs]) for k in range(parts)
        ] if outputs else None
        self._size = int(self._buffers[0].shape[0]) if self._buffers else 0
        self._index: Optional[_RowIndex] = None

    def stored(self) -> Any:
        """h1's stored outputs of every row of the reference, in row order (None when none were kept)."""
        if self._buffers is None:
            return None
        return tuple(self._buffers) if self._triple else self._buffers[0]

    def for_batch(self, ids: torch.Tensor, inputs: Any) -> Any:
        """h1's outputs for the instances ``ids`` (from the stored rows; h1 runs only for unknown ids)."""
        if self._index is None or self._buffers is None:
            return self.run(inputs)
        try:
            rows = self._index.rows(ids.detach().cpu().numpy().astype(np.int64, copy=False))
        except ValueError:
            return self.run(inputs)
        index = torch.from_numpy(rows).to(self._buffers[0].device)
        parts = [buffer.index_select(0, index) for buffer in self._buffers]
        return tuple(parts) if self._triple else parts[0]


def _frozen(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


@dataclass(frozen=True, eq=False)
class DatasetReference:
    """h1's fixed per-instance columns on one dataset, computed once per sweep.

    Attributes
    ----------
    name : str
        ``"training"`` or ``"testing"``.
    ids : numpy.ndarray
        ``int64`` global instance ids, in the dataset's first-iteration order
        (the row order of every column of this dataset).
    targets, h1_predictions : numpy.ndarray
        ``int64`` ground truth and h1's predicted labels.
    h1_confidences : numpy.ndarray
        ``float32`` probability h1 gives its predicted label.
    h1_performance : float or None
        h1's performance on the dataset by the sweep's metric.
    outputs : ReferenceOutputs
        h1's raw outputs by instance id, read by the training losses: a
        :class:`RowAlignedOutputs` in the reference's rows (empty, so that h1
        runs when asked, for a dataset whose raw outputs were not kept).
    """

    name: str
    ids: np.ndarray
    targets: np.ndarray
    h1_predictions: np.ndarray
    h1_confidences: np.ndarray
    h1_performance: Optional[float]
    outputs: ReferenceOutputs
    _index: _RowIndex = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        sizes = {a.shape[0] for a in (self.ids, self.targets, self.h1_predictions, self.h1_confidences)}
        if len(sizes) != 1:
            raise ValueError(f"the columns of the {self.name} reference differ in length: {sorted(sizes)}")
        object.__setattr__(self, "_index", _RowIndex(self.ids, self.name))

    def __len__(self) -> int:
        return int(self.ids.shape[0])

    def row_array(self, batch_ids: Any) -> np.ndarray:
        """Rows (numpy ``int64``) of the instances ``batch_ids``; ValueError for an unknown id."""
        if isinstance(batch_ids, torch.Tensor):
            batch_ids = batch_ids.detach().cpu().numpy()
        return self._index.rows(np.asarray(batch_ids, dtype=np.int64))

    def rows_of(self, batch_ids: torch.Tensor) -> torch.Tensor:
        """Rows (a CPU ``int64`` tensor) of the instances ``batch_ids`` in this reference's columns."""
        return torch.from_numpy(self.row_array(batch_ids))


class RowTracker:
    """Maps each batch of one pass over a dataset to rows of its reference, and checks the pass.

    Refuses an instance seen twice in the pass (naming its id) and, at
    :meth:`check_complete`, a pass that missed instances of the reference.
    """

    def __init__(self, reference: DatasetReference) -> None:
        self.reference = reference
        self.seen = np.zeros(len(reference), dtype=bool)
        self.yielded = 0

    def rows(self, batch_ids: Any) -> np.ndarray:
        """The reference rows of a batch's instance ids."""
        rows = self.reference.row_array(batch_ids)
        again = self.seen[rows]
        if again.any():
            raise ValueError(
                f"instance ids must be unique within one pass over the {self.reference.name} set; "
                f"id {int(self.reference.ids[rows[again][0]])} appears twice"
            )
        self.seen[rows] = True
        self.yielded += rows.shape[0]
        return rows

    def check_complete(self) -> None:
        """Raise ValueError unless the pass yielded every instance of the reference exactly once."""
        name, size = self.reference.name, len(self.reference)
        distinct = int(np.count_nonzero(self.seen))
        if self.yielded != distinct:
            raise ValueError(
                f"instance ids must be unique within one pass over the {name} set; a batch repeats an id"
            )
        if distinct != size:
            raise ValueError(
                f"the {name} set yielded {distinct} of the {size} instances it held when h1's reference was "
                "computed; a dataset must yield the same instances on every pass"
            )


def _first_duplicate(ids: np.ndarray) -> Optional[int]:
    """The id whose second occurrence comes first in ``ids``, or None when all are unique."""
    if ids.shape[0] < 2 or bool(np.all(ids[1:] > ids[:-1])):
        return None
    order = np.argsort(ids, kind="stable")
    ordered = ids[order]
    repeats = np.flatnonzero(ordered[1:] == ordered[:-1])
    if repeats.size == 0:
        return None
    return int(ids[order[repeats + 1].min()])


def _check_labels(raw: np.ndarray, ids: np.ndarray, classes: int, binary: bool, name: str) -> None:
    """Every label of a dataset must be one h1 can score: a class index below ``classes``, or in [0, 1] if binary.

    ``raw`` holds the labels as the dataset gave them, as floats (before the
    stored column's ``.long()``: a binary model's targets may be soft). A label
    outside would fail the trainings only once they reach its batch (or, in
    a test set, count silently as an error of both models).
    """
    if binary:
        outside = np.flatnonzero(~np.isfinite(raw) | (raw < 0) | (raw > 1))
        expected = "in [0, 1] (h1 is a binary model: labels 0 and 1, or soft targets)"
    else:
        outside = np.flatnonzero((raw != np.floor(raw)) | (raw < 0) | (raw >= classes))  # NaN: not its floor
        expected = f"class indices in [0, {classes})"
    if outside.size:
        first = int(outside[0])
        raise ValueError(
            f"the {name} set holds label {raw[first]:g} (instance id {int(ids[first])}) but h1 scores "
            f"{classes} classes; labels must be {expected}"
            + (f"; {outside.size} labels are outside" if outside.size > 1 else "")
        )


def prepare_reference(
    h1: Any,
    dataset: Iterable,
    name: str,
    *,
    device: DeviceLike = "cpu",
    performance_metric: Callable = model_accuracy,
    discriminant_pivot: float = 0.5,
    keep_outputs: Optional[bool] = None,
    on_batch: Optional[Callable[[], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> DatasetReference:
    """Run h1 once over ``dataset`` and keep its columns (and, for training, its raw outputs).

    Parameters
    ----------
    h1 : torch.nn.Module
        The reference model (run in eval mode without gradients; its mode is restored).
    dataset : iterable of (instance_ids, inputs, targets)
        The batches.
    name : str
        Name of the dataset (``"training"``, ``"testing"``), used in messages and files.
    device : {"cpu", "cuda"}
        Where inputs are sent.
    performance_metric : callable
        ``metric(model, dataset, device) -> float``; one with ``from_predictions``
        is computed from h1's predictions without running h1 again.
    discriminant_pivot : float
        Threshold of binary models.
    keep_outputs : bool, optional
        Keep h1's raw outputs in ``outputs`` (what the training losses read).
        Default: only for the dataset named ``"training"``; a test set keeps
        only its columns.
    on_batch, should_stop : callable, optional
        Progress callback after each batch; cancellation check before each.

    Raises
    ------
    ValueError
        If the dataset has no instances, repeats an instance id within one
        pass (the message names the first repeated id), if h1's outputs hold
        NaN, if a label is not one h1 scores (a class index outside
        ``[0, C)``, or outside ``[0, 1]`` for a binary h1; the message names
        the instance id), or if the metric returns something other than a
        finite number.
    MetricError
        If the metric raises.
    """
    if not isinstance(name, str) or not name:
        raise TypeError(f"name must be a non-empty string, got {name!r}")
    torch_device = resolve_device(device)
    if keep_outputs is None:
        keep_outputs = name == "training"
    runner = ReferenceOutputs(h1, torch_device, "h1")
    kept: List[Any] = []
    parts: Dict[str, List[torch.Tensor]] = {"ids": [], "targets": [], "labels": [], "confidences": [], "nan": []}
    classes: Optional[int] = None  # what h1 scores, read from its first output
    binary = False
    raw_targets: List[torch.Tensor] = []
    for batch_ids, inputs, targets in iterate_batches(dataset, torch_device):
        if should_stop is not None and should_stop():
            raise TrainingCancelled()
        output = runner.run(inputs)
        if classes is None:
            classes, binary = class_count(output), is_binary_output(output)
        if keep_outputs:
            kept.append(output)
        labels, confidences, has_nan = labels_and_confidences(output, discriminant_pivot, "h1")
        # Predicted labels are class indices: int32 while batches accumulate, int64 once, in one array.
        for key, value in zip(parts, (batch_ids, target_labels(targets), labels.int(), confidences, has_nan)):
            parts[key].append(value)
        raw_targets.append(targets.reshape(-1).double())  # as given: .long() would make 1.5 a 1, NaN anything
        if on_batch is not None:
            on_batch()
    size = sum(int(part.shape[0]) for part in parts["ids"])
    if size == 0:
        raise ValueError(f"the {name} set has no instances")
    if bool(torch.stack(parts.pop("nan")).any()):
        raise ValueError(f"h1 produced NaN outputs on the {name} set; check h1 and the inputs")
    columns = {}
    for key, dtype in (("ids", np.int64), ("targets", np.int64), ("labels", np.int64), ("confidences", np.float32)):
        columns[key] = torch.cat(parts.pop(key)).cpu().numpy().astype(dtype, copy=False)  # one column at a time
    ids, targets, labels, confidences = columns["ids"], columns["targets"], columns["labels"], columns["confidences"]
    duplicate = _first_duplicate(ids)
    if duplicate is not None:
        raise ValueError(
            f"instance ids must be unique within one pass over the {name} set; id {duplicate} appears twice"
        )
    assert classes is not None
    _check_labels(torch.cat(raw_targets).cpu().numpy(), ids, classes, binary, name)
    h1_performance = measure_performance(
        performance_metric, h1, dataset, torch_device, labels, targets, model_name="h1", dataset_name=name,
    )
    outputs = RowAlignedOutputs(h1, torch_device, kept)  # rows in first-iteration order: the reference's
    del kept
    reference = DatasetReference(
        name=name, ids=_frozen(ids), targets=_frozen(targets), h1_predictions=_frozen(labels),
        h1_confidences=_frozen(confidences), h1_performance=h1_performance, outputs=outputs,
    )
    outputs._index = reference._index
    return reference


def _h2_outputs_class() -> type:
    from .engine.jobs import H2Outputs  # imported here: the engine imports this module

    return H2Outputs


def predict_outputs(
    model: Any,
    dataset: Iterable,
    reference: DatasetReference,
    *,
    device: DeviceLike = "cpu",
    performance_metric: Callable = model_accuracy,
    discriminant_pivot: float = 0.5,
    on_batch: Optional[Callable[[], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> Any:
    """Run h2 once per batch of ``dataset``; its columns come back in ``reference``'s row order.

    Parameters
    ----------
    model : torch.nn.Module
        h2 (run in eval mode without gradients; its mode is restored).
    dataset : iterable of (instance_ids, inputs, targets)
        The batches; any order (a shuffling DataLoader is fine), the same instances as ``reference``.
    reference : DatasetReference
        h1's columns on ``dataset`` (from :func:`prepare_reference`).
    device, performance_metric, discriminant_pivot, on_batch, should_stop
        As :func:`prepare_reference`.

    Returns
    -------
    H2Outputs
        ``predictions`` (``int64``), ``confidences`` (``float32``) aligned to
        ``reference.ids``, and ``performance``.

    Raises
    ------
    ValueError
        If h2's outputs hold NaN, the dataset yields an instance twice, one
        that the reference lacks, or not all of them, or the metric returns
        something other than a finite number.
    MetricError
        If the metric raises.
    """
    if not isinstance(reference, DatasetReference):
        raise TypeError(f"reference must be a DatasetReference, got {type(reference).__name__}")
    torch_device = resolve_device(device)
    name, size = reference.name, len(reference)
    predictions = np.zeros(size, dtype=np.int64)
    confidences = np.zeros(size, dtype=np.float32)
    tracker = RowTracker(reference)
    deferred: List[Tuple[np.ndarray, torch.Tensor, torch.Tensor]] = []  # device results, moved at the end
    nan_flags: List[torch.Tensor] = []
    on_cpu = torch_device.type == "cpu"
    with inference(model):
        for batch_ids, inputs, _targets in iterate_batches(dataset, torch_device):
            if should_stop is not None and should_stop():
                raise TrainingCancelled()
            rows = tracker.rows(batch_ids)
            labels, confs, has_nan = labels_and_confidences(model(inputs), discriminant_pivot, "h2")
            if on_cpu:
                if bool(has_nan):
                    raise ValueError(f"h2 produced NaN outputs on the {name} set; try a smaller learning rate")
                predictions[rows] = labels.numpy()
                confidences[rows] = confs.numpy()
            else:
                deferred.append((rows, labels, confs))
                nan_flags.append(has_nan)
            if on_batch is not None:
                on_batch()
    if nan_flags and bool(torch.stack(nan_flags).any()):
        raise ValueError(f"h2 produced NaN outputs on the {name} set; try a smaller learning rate")
    if deferred:
        all_rows = np.concatenate([rows for rows, _, _ in deferred])
        predictions[all_rows] = torch.cat([labels for _, labels, _ in deferred]).cpu().numpy()
        confidences[all_rows] = torch.cat([confs for _, _, confs in deferred]).cpu().numpy()
        del deferred
    tracker.check_complete()
    performance = measure_performance(
        performance_metric, model, dataset, torch_device, predictions, reference.targets,
        model_name="h2", dataset_name=name,
    )
    return _h2_outputs_class()(predictions=predictions, confidences=confidences, performance=performance)
