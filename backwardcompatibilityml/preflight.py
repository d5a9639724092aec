"""A dry run of a sweep's first batch, before anything is trained or served.

Many wrong inputs only fail deep inside the first training step, with a
message that names nothing the user wrote (``mat1 and mat2 shapes cannot be
multiplied``, ``Target 6 is out of bounds``, ``'<' not supported between
instances of 'str' and 'float'``). :func:`preflight` runs the first batch of
each dataset through h1, h2 and every loss class, and builds the optimizer on
a stand-in for h2's parameters, so that these errors are raised at
construction as ``TypeError`` / ``ValueError`` naming the argument and what
was expected.

Nothing observable changes: h2 and h1 are run in eval mode without gradients
(their train/eval mode is restored), no optimizer touches h2, and torch's
random number generators are restored afterwards, a DataLoader's own
``generator=`` included (a shuffling DataLoader draws from them when it is
iterated). The first batch is read from the dataset's
:func:`~backwardcompatibilityml.data.evaluation_view`, the instances in order,
as h1's reference reads them: a loader that samples with replacement may
repeat an instance within a batch, and that is not an error.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch

from .data import evaluation_view, iterate_batches, preserved_generators
from .device import resolve_device
from .loss.base import CompatibilityLoss
from .outputs import class_count, inference, is_binary_output, validate_output
from .random_state import kept_random_state
from .training import step_needs_closure
from .validation import check_loss_class

__all__ = ["preflight", "LossSpec", "loss_specs_of_families", "check_model_devices", "check_discriminant_pivots"]

# The SweepManager's argument names of the seed's two families.
_FAMILY_ARGUMENTS = {
    "new-error": ("NewErrorLossClass", "new_error_loss_kwargs"),
    "strict-imitation": ("StrictImitationLossClass", "strict_imitation_loss_kwargs"),
}
_DRY_RUN_LAMBDA_C = 0.5  # any lambda_c > 0: the dissonance is computed too


@dataclass(frozen=True)
class LossSpec:
    """A loss class to try, with the names of the arguments it came from (for the messages)."""

    argument: str
    loss_class: type
    loss_kwargs: Mapping[str, Any]
    kwargs_argument: str
    family_index: int = 0  # 0: suggest New Error losses in messages, 1: Strict Imitation ones


def loss_specs_of_families(families: Sequence[Any]) -> List[LossSpec]:
    """:class:`LossSpec` of each loss family (objects with ``name``, ``loss_class`` and ``loss_kwargs``).

    The seed's two families are named by the SweepManager's arguments
    (``NewErrorLossClass``...), others by their place (``families[2].loss_class``).
    """
    return [
        family if isinstance(family, LossSpec) else _spec_of_family(family, index)
        for index, family in enumerate(families)
    ]


def _spec_of_family(family: Any, index: int) -> LossSpec:
    argument, kwargs_argument = _FAMILY_ARGUMENTS.get(
        family.name, (f"families[{index}].loss_class", f"families[{index}].loss_kwargs")
    )
    suggestion = 1 if family.name == "strict-imitation" else 0
    return LossSpec(argument, family.loss_class, dict(family.loss_kwargs), kwargs_argument, suggestion)


def check_discriminant_pivots(specs: Sequence[LossSpec]) -> None:
    """Raise ``ValueError`` if binary losses of a sweep ask for different ``discriminant_pivot`` values.

    A binary model's probabilities become labels at one threshold, and a
    sweep compares h1's labels with every h2's: with a pivot per family,
    the second family's BTC and BEC would compare h1 at one threshold with
    h2 at another. The pivot has no effect on multi-class losses (they warn
    when given one), so they may differ there; a loss class that does not
    say whether it is binary (no ``binary`` attribute) counts as binary.
    """
    pivots = [(spec, float(spec.loss_kwargs.get("discriminant_pivot", 0.5))) for spec in specs]
    if len({pivot for _spec, pivot in pivots}) < 2:
        return
    if all(getattr(spec.loss_class, "binary", True) is False for spec in specs):
        return
    (first, first_pivot), (other, other_pivot) = pivots[0], next(p for p in pivots if p[1] != pivots[0][1])
    raise ValueError(
        f"{other.kwargs_argument}['discriminant_pivot'] is {other_pivot:g} but "
        f"{first.kwargs_argument}['discriminant_pivot'] is {first_pivot:g}: a sweep turns h1's and every h2's "
        "probabilities into labels at one threshold, so every loss family must use the same discriminant_pivot"
    )


def check_model_devices(model: Any, name: str) -> None:
    """Raise ``ValueError`` if ``model``'s parameters and buffers are not all on one real device.

    A model split over two devices, or with tensors on PyTorch's ``meta``
    device (shapes without data), fails deep inside the first step otherwise.
    """
    tensors = list(getattr(model, "parameters", lambda: [])()) + list(getattr(model, "buffers", lambda: [])())
    devices = sorted({str(tensor.device) for tensor in tensors})
    if "meta" in devices:
        raise ValueError(
            f"{name} has parameters on the 'meta' device (shapes without data): give a model with real "
            f"weights, e.g. built on 'cpu', or materialised with {name}.to_empty(device=...) and load_state_dict"
        )
    if len(devices) > 1:
        raise ValueError(
            f"{name} has its parameters on {len(devices)} devices ({', '.join(devices)}); "
            f"a sweep needs the whole model on one device, e.g. {name}.to({devices[0]!r})"
        )


def preflight(
    h1: torch.nn.Module,
    h2: torch.nn.Module,
    training_set: Iterable,
    test_set: Iterable,
    losses: Sequence[Any],
    optimizer_class: type,
    optimizer_kwargs: Optional[Mapping[str, Any]],
    device: Any = "cpu",
    *,
    instance_callbacks: Optional[Mapping[str, Optional[Callable[[int], Any]]]] = None,
) -> None:
    """Dry-run the first batch of each dataset through h1, h2 and each loss; raise early and clearly.

    Checks, in this order: h1 and h2 each sit on one real device; each dataset
    yields at least one non-empty batch of torch tensors with unique instance
    ids; h1 and h2 take its inputs and return one row per instance, without
    NaN; its labels are class indices that h1's and h2's outputs can score;
    each loss class is built with its keyword arguments and computes a finite
    loss on the training set's first batch (forward only), and binary losses
    share one ``discriminant_pivot`` (:func:`check_discriminant_pivots`); the optimizer is
    built with its keyword arguments on a stand-in of h2's parameters and
    takes one step there. h1, h2 and the random number generators are left as
    they were.

    Parameters
    ----------
    h1, h2 : torch.nn.Module
        The reference and the new model, already on ``device``.
    training_set, test_set : iterable of (instance_ids, inputs, targets)
        The datasets of the sweep.
    losses : sequence of LossSpec or of loss families
        The loss classes to try; families (``name``, ``loss_class``,
        ``loss_kwargs``) are named by the SweepManager's arguments.
    optimizer_class : type
        The optimizer class.
    optimizer_kwargs : mapping or None
        Its keyword arguments.
    device : str or torch.device
        Where the inputs go.
    instance_callbacks : mapping of str to callable, optional
        Callbacks such as ``{"get_instance_metadata": f}``, each called once
        with the first instance id of the training set.

    Raises
    ------
    TypeError, ValueError
        Naming the argument at fault and what was expected; the original
        error is chained as ``__cause__``.
    """
    torch_device = resolve_device(device)
    specs = loss_specs_of_families(losses)
    check_model_devices(h1, "h1")
    check_model_devices(h2, "h2")
    with kept_random_state(torch_device):
        batches = {}
        for name, dataset in (("training_set", training_set), ("test_set", test_set)):
            ids, inputs, targets = _first_batch(dataset, name, torch_device)
            outputs = {"h1": _forward(h1, "h1", inputs, name), "h2": _forward(h2, "h2", inputs, name)}
            for model_name, output in outputs.items():
                _check_output_against_labels(output, targets, model_name, name)
            _check_class_counts(outputs["h1"], outputs["h2"], name)
            batches[name] = (ids, inputs, targets, outputs["h1"])
        _check_training_steps(training_set)
        ids, inputs, targets, h1_output = batches["training_set"]
        for spec in specs:
            _dry_run_loss(spec, h1, h2, inputs, targets, h1_output)
        check_discriminant_pivots(specs)
        _dry_run_optimizer(h2, optimizer_class, dict(optimizer_kwargs or {}))
    for name, callback in (instance_callbacks or {}).items():
        if callback is not None:
            _call_instance_callback(callback, name, int(ids[0]))


# -- datasets -------------------------------------------------------------------------------
def _first_batch(dataset: Iterable, name: str, device: torch.device) -> Tuple[torch.Tensor, Any, torch.Tensor]:
    """The first batch of ``dataset`` that holds instances, checked; errors name the dataset."""
    batches = 0
    try:
        with preserved_generators(dataset):
            for ids, inputs, targets in iterate_batches(evaluation_view(dataset), device):
                batches += 1
                if ids.numel() == 0:
                    continue
                _check_batch(ids, inputs, targets, name)
                return ids, inputs, targets
    except Exception as error:
        if str(error).startswith(name):
            raise
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(f"{name} cannot be read as batches (instance_ids, inputs, targets): {error}") from error
    if batches == 0:
        raise ValueError(f"{name} has no batches; a sweep needs at least one instance in each dataset")
    which = "its only batch is empty" if batches == 1 else f"all its {batches} batches are empty"
    raise ValueError(f"{name} has no instances ({which})")


def _check_training_steps(training_set: Iterable) -> None:
    """Refuse a training DataLoader whose ``drop_last`` leaves no batch although its data has instances."""
    if getattr(training_set, "drop_last", False) and evaluation_view(training_set) is not training_set \
            and len(training_set) == 0:  # type: ignore[arg-type]
        raise ValueError(
            "training_set has no batches: drop_last=True with a batch size above its number of instances "
            "leaves nothing to train on"
        )


def _check_batch(ids: torch.Tensor, inputs: Any, targets: torch.Tensor, name: str) -> None:
    if isinstance(inputs, np.ndarray):
        raise TypeError(
            f"{name} yields numpy arrays as inputs; batches must hold torch tensors: convert them with "
            "torch.from_numpy(...), or wrap the arrays in a torch.utils.data.TensorDataset and a DataLoader"
        )
    unique, counts = torch.unique(ids, return_counts=True)
    if (counts > 1).any():
        repeated = int(unique[counts > 1][0])
        raise ValueError(f"{name} repeats the instance id {repeated} in its first batch; instance ids must be unique")


def _describe(inputs: Any) -> str:
    if isinstance(inputs, torch.Tensor):
        return f"inputs of shape {tuple(inputs.shape)} and dtype {inputs.dtype}"
    return f"inputs of type {type(inputs).__name__}"


# -- models -----------------------------------------------------------------------------------
def _forward(model: Any, model_name: str, inputs: Any, dataset_name: str) -> Any:
    try:
        with inference(model) as running:
            output = running(inputs)
    except Exception as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(
            f"{model_name} cannot take the inputs of {dataset_name}: its first batch has {_describe(inputs)}, "
            f"and {model_name} raised {type(error).__name__}: {error}"
        ) from error
    validate_output(output, model_name)
    return output


def _check_output_against_labels(output: Any, targets: torch.Tensor, model_name: str, dataset_name: str) -> None:
    tensor = output if isinstance(output, torch.Tensor) else output[0]
    size = targets.shape[0]
    if tensor.dim() == 0 or tensor.shape[0] != size:
        rows = tensor.shape[0] if tensor.dim() else 0
        raise ValueError(
            f"{model_name} returned {rows} rows for the first batch of {dataset_name}, which holds {size} "
            "instances; a model must return one row per instance"
        )
    if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{model_name} returns NaN or infinite values on the first batch of {dataset_name}")
    binary = is_binary_output(output)
    if binary:
        _check_probabilities(output, model_name, dataset_name)
    flat = targets[:, 0] if targets.dim() == 2 and targets.shape[1] == 1 else targets
    if flat.dim() != 1:
        raise ValueError(
            f"labels of {dataset_name} must have shape (N,), got {tuple(targets.shape)} in its first batch"
        )
    if not binary and (flat.dtype.is_floating_point or flat.dtype == torch.bool):
        raise ValueError(
            f"labels of {dataset_name} must be integer class indices for {model_name}'s {tensor.shape[1]} "
            f"classes, got dtype {flat.dtype}"
        )
    if flat.numel() == 0:
        return
    low, high = flat.min().item(), flat.max().item()
    classes = class_count(output)
    if low < 0:
        raise ValueError(f"labels of {dataset_name} include {low:g}; class indices start at 0")
    if high >= classes:
        what = "probabilities of a binary model (labels 0 and 1)" if binary else f"{classes} classes"
        raise ValueError(f"labels of {dataset_name} reach {high:g} but {model_name} returns {what}")


def _check_class_counts(h1_output: Any, h2_output: Any, dataset_name: str) -> None:
    """h1 and h2 must score the same classes: the losses and scores compare them class by class."""
    h1_classes, h2_classes = class_count(h1_output), class_count(h2_output)
    if h1_classes != h2_classes:
        raise ValueError(
            f"h1 returns {h1_classes} classes and h2 returns {h2_classes} on the first batch of {dataset_name}; "
            "both models must score the same classes"
        )


def _check_probabilities(output: Any, model_name: str, dataset_name: str) -> None:
    """A binary model returns probabilities; logits (values outside [0, 1]) would be thresholded as such."""
    probabilities = output if isinstance(output, torch.Tensor) else output[1]
    if not probabilities.is_floating_point():
        return
    low, high = probabilities.min().item(), probabilities.max().item()
    if low < 0 or high > 1:
        raise ValueError(
            f"{model_name} returns one value per instance, read as the probability of class 1 of a binary "
            f"model, but its values on the first batch of {dataset_name} span [{low:.3g}, {high:.3g}]; "
            f"return probabilities (e.g. torch.sigmoid of the logits), or logits of shape (N, 2) for a "
            f"multi-class loss"
        )


# -- losses and optimizer ------------------------------------------------------------------------
def _dry_run_loss(spec: LossSpec, h1: Any, h2: Any, inputs: Any, targets: torch.Tensor, h1_output: Any) -> None:
    check_loss_class(spec.loss_class, spec.argument, spec.family_index)
    label = f"{spec.argument} ({spec.loss_class.__name__})"
    try:
        loss_fn = spec.loss_class(h1, h2, _DRY_RUN_LAMBDA_C, **dict(spec.loss_kwargs))
    except Exception as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(
            f"{label} cannot be built with {spec.kwargs_argument}={dict(spec.loss_kwargs)!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    try:
        with inference(h2):
            if isinstance(loss_fn, CompatibilityLoss):
                value = loss_fn(inputs, targets, h1_output=h1_output)
            else:
                value = loss_fn(inputs, targets)
    except Exception as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(
            f"{label} fails on the first batch of training_set: {type(error).__name__}: {error}"
        ) from error
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        if not isinstance(value, torch.Tensor):
            got = type(value).__name__
        elif value.dim() == 1 and value.shape[0] == targets.shape[0]:  # one value per instance
            got = (f"a tensor of shape {tuple(value.shape)} (reduction='none' gives one value per instance; "
                   "a sweep needs 'mean' or 'sum')")
        else:
            got = f"a tensor of shape {tuple(value.shape)}"
        raise TypeError(f"{label} must return a scalar tensor, got {got}")
    if not math.isfinite(float(value)):
        raise ValueError(
            f"{label} gives a {float(value)} loss on the first batch of training_set before any training; "
            "check the inputs and the models' outputs"
        )


def _dry_run_optimizer(h2: torch.nn.Module, optimizer_class: type, optimizer_kwargs: Mapping[str, Any]) -> None:
    """Build the optimizer on zero stand-ins of h2's trainable parameters and take one step there."""
    stand_ins = [torch.nn.Parameter(torch.zeros_like(p)) for p in h2.parameters() if p.requires_grad]
    if not stand_ins:
        raise ValueError("h2 has no trainable parameters (none with requires_grad=True); the sweep trains h2")
    label = f"OptimizerClass ({getattr(optimizer_class, '__name__', optimizer_class)})"
    try:
        optimizer = optimizer_class(stand_ins, **optimizer_kwargs)
    except Exception as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(
            f"optimizer_kwargs={dict(optimizer_kwargs)!r} do not fit {label}: {type(error).__name__}: {error}"
        ) from error
    if step_needs_closure(optimizer):  # LBFGS: training hands it a closure; its step is not dry-run here
        return
    for parameter in stand_ins:
        parameter.grad = torch.zeros_like(parameter)
    try:
        optimizer.step()
    except Exception as error:
        kind = TypeError if isinstance(error, TypeError) else ValueError
        raise kind(
            f"{label} with optimizer_kwargs={dict(optimizer_kwargs)!r} cannot take a training step: "
            f"{type(error).__name__}: {error}"
        ) from error


def _call_instance_callback(callback: Callable[[int], Any], name: str, instance_id: int) -> None:
    try:
        callback(instance_id)
    except Exception as error:
        raise ValueError(
            f"{name} raised on the instance id {instance_id} (the first of training_set): "
            f"{type(error).__name__}: {error}"
        ) from error
