"""One compatibility training: (h1, h2, lambda_c, loss family) -> trained h2."""

from __future__ import annotations

import inspect

import math
from typing import Any, Callable, Iterable, Mapping, Optional

import torch

from .data import ReferenceOutputs, iterate_batches
from .device import DeviceLike, resolve_device
from .loss.base import CompatibilityLoss
from .validation import check_kwargs, check_lambda_c, check_loss_class, check_optimizer_class, check_positive_int
from .validation import check_class  # noqa: F401  (re-exported: imported from here by other modules)

__all__ = ["TrainingCancelled", "NonFiniteLossError", "train_compatible_model", "check_positive_int", "check_class"]


class TrainingCancelled(Exception):
    """Raised inside a training or an evaluation when its ``should_stop`` callback says so."""


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or infinite."""


def step_needs_closure(optimizer: Any) -> bool:
    """Whether ``optimizer.step`` requires a closure that re-evaluates the loss (such as LBFGS)."""
    try:
        parameter = inspect.signature(optimizer.step).parameters.get("closure")
    except (TypeError, ValueError):  # pragma: no cover - a builtin without a signature
        return False
    return parameter is not None and parameter.default is inspect.Parameter.empty


def note_training_step(error: BaseException, epoch: int, batch: int, step: int, ids: Any,
                       model: torch.nn.Module) -> None:
    """Add to ``error`` where the training was when it was raised (a note: its type and message stay).

    Parameters
    ----------
    error : BaseException
        Raised by a training step.
    epoch, batch, step : int
        The epoch, the batch within it and the step since the training began, counted from 0 (shown from 1).
    ids : Tensor
        The batch's instance ids (their number is shown).
    model : torch.nn.Module
        The model in training: a batch of one instance gets a hint where it has BatchNorm layers, which
        cannot train on one (a dataset whose size leaves one instance over makes such a last batch).
    """
    rows = int(ids.shape[0]) if isinstance(ids, torch.Tensor) and ids.dim() else None
    where = f"while training at epoch {epoch + 1}, batch {batch + 1} (step {step + 1})"
    if rows is not None:
        where += f", on a batch of {rows} instance{'s' if rows != 1 else ''}"
    if rows == 1 and any(isinstance(module, torch.nn.modules.batchnorm._BatchNorm) for module in model.modules()):
        where += "; BatchNorm cannot train on one instance, and DataLoader(drop_last=True) or another batch size " \
                 "leaves it out"
    add_note(error, where)


def add_note(error: BaseException, note: str) -> None:
    """``error.add_note(note)``, also before Python 3.11 (where notes are kept in ``__notes__`` by hand)."""
    if hasattr(error, "add_note"):
        error.add_note(note)
    else:  # pragma: no cover - Python 3.9 and 3.10
        error.__notes__ = [*getattr(error, "__notes__", []), note]


def train_compatible_model(
    h1: Any,
    h2: torch.nn.Module,
    training_set: Iterable,
    *,
    loss_class: type,
    lambda_c: float,
    optimizer_class: type,
    optimizer_kwargs: Optional[Mapping[str, Any]] = None,
    number_of_epochs: int = 1,
    loss_kwargs: Optional[Mapping[str, Any]] = None,
    device: DeviceLike = "cpu",
    reference_outputs: Optional[ReferenceOutputs] = None,
    on_step: Optional[Callable[[float], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> torch.nn.Module:
    """Train ``h2`` in place with a compatibility loss against the fixed model ``h1``.

    h2 runs forward exactly once per training step. h1's outputs come from
    ``reference_outputs`` (computed once per instance and reused, see
    :class:`~backwardcompatibilityml.data.ReferenceOutputs`); pass the same
    object to several trainings to run h1 only once for all of them.

    Parameters
    ----------
    h1 : torch.nn.Module
        Reference model; never updated.
    h2 : torch.nn.Module
        Model to train, updated in place and left in eval mode.
    training_set : iterable of (instance_ids, inputs, targets)
        Re-iterable batches (a list or a DataLoader).
    loss_class : type
        A compatibility loss class such as
        :class:`~backwardcompatibilityml.loss.BCCrossEntropyLoss`, built as
        ``loss_class(h1, h2, lambda_c, **loss_kwargs)``.
    lambda_c : float
        Dissonance weight, finite and ``>= 0``.
    optimizer_class : type
        A :class:`torch.optim.Optimizer` class, built as
        ``optimizer_class(h2.parameters(), **optimizer_kwargs)``.
    optimizer_kwargs, loss_kwargs : mapping, optional
        Extra keyword arguments.
    number_of_epochs : int
        Passes over ``training_set`` (``>= 1``).
    device : {"cpu", "cuda"}
        Where the inputs are sent. h2 must already live there.
    reference_outputs : ReferenceOutputs, optional
        Cache of h1's outputs on ``training_set``; a fresh one when omitted.
    on_step : callable, optional
        Called with the loss value after every optimizer step.
    should_stop : callable, optional
        Checked before every step; when it returns True,
        :class:`TrainingCancelled` is raised.

    Returns
    -------
    torch.nn.Module
        ``h2``, trained.

    Raises
    ------
    NonFiniteLossError
        If the loss becomes NaN or infinite.
    Exception
        Whatever a training step raises, with a note of where it was (:func:`note_training_step`).
    """
    torch_device = resolve_device(device)
    check_loss_class(loss_class, "loss_class")
    check_optimizer_class(optimizer_class, "optimizer_class")
    check_positive_int(number_of_epochs, "number_of_epochs")
    lambda_c = check_lambda_c(lambda_c)
    loss_kwargs = check_kwargs(loss_kwargs, "loss_kwargs")
    optimizer_kwargs = check_kwargs(optimizer_kwargs, "optimizer_kwargs")
    if reference_outputs is None:
        reference_outputs = ReferenceOutputs(h1, torch_device)
    loss_fn = loss_class(h1, h2, lambda_c, **loss_kwargs)
    takes_reference = isinstance(loss_fn, CompatibilityLoss)
    optimizer = optimizer_class(h2.parameters(), **optimizer_kwargs)
    needs_closure = step_needs_closure(optimizer)
    h2.train()
    try:
        step = 0
        for epoch in range(number_of_epochs):
            for batch, (ids, inputs, targets) in enumerate(iterate_batches(training_set, torch_device)):
                if should_stop is not None and should_stop():
                    raise TrainingCancelled()
                h1_output = reference_outputs.for_batch(ids, inputs) if takes_reference else None

                def closure() -> torch.Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    if takes_reference:
                        value = loss_fn(inputs, targets, h1_output=h1_output)
                    else:
                        value = loss_fn(inputs, targets)
                    value.backward()
                    return value

                try:
                    if needs_closure:  # LBFGS and the like evaluate the loss as often as their method needs
                        loss = optimizer.step(closure)
                    else:
                        loss = closure()
                        optimizer.step()
                except Exception as error:
                    note_training_step(error, epoch, batch, step, ids, h2)
                    raise
                value = float(loss.detach())
                step += 1
                if not math.isfinite(value):
                    raise NonFiniteLossError(
                        f"the training loss became {value} at epoch {epoch + 1}, step {step} "
                        f"(lambda_c={lambda_c}); try a smaller learning rate"
                    )
                if on_step is not None:
                    on_step(value)
    finally:
        h2.eval()
    return h2
