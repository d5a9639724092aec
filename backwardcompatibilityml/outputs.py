"""Turn what a model returns into the tensors the library works with.

Models may return

* a tensor of logits of shape ``(N, C)`` (multi-class),
* the triple ``(logits, softmax, log_softmax)`` (multi-class), or
* probabilities of shape ``(N,)`` or ``(N, 1)`` (binary models), alone or as the
  middle element of such a triple.

Every module of the package goes through the two functions below, so that one
place decides how a model output is read. With ``members=True`` they read the
outputs of K models stacked along a leading dimension (``(K, N, C)`` logits,
``(K, N)`` or ``(K, N, 1)`` probabilities), as the vectorized executor
computes them, and return ``(K, N, ...)``.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator

import torch

from .class_softmax import log_softmax

__all__ = [
    "validate_output", "log_probabilities", "binary_probabilities", "predicted_labels", "is_binary_output",
    "class_count", "target_labels", "inference", "eval_mode",
]


def _pick(output: Any, index: int, name: str) -> torch.Tensor:
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, (tuple, list)) and len(output) == 3 and all(
        isinstance(part, torch.Tensor) for part in output
    ):
        return output[index]
    raise TypeError(
        f"{name} must return a tensor or a triple (logits, softmax, log_softmax) of tensors; "
        f"it returned {type(output).__name__}"
        + (f" of length {len(output)}" if isinstance(output, (tuple, list)) else "")
    )


def validate_output(output: Any, name: str = "model") -> Any:
    """Return ``output`` unchanged if it is a tensor or a triple of tensors, else raise ``TypeError``."""
    _pick(output, 0, name)
    return output


def _shape_text(members: bool, *dims: str) -> str:
    """``"(N, C)"``, with a leading ``K`` for members; a single dimension reads ``"(N,)"``."""
    names = (("K",) if members else ()) + dims
    return "(" + ", ".join(names) + ("," if len(names) == 1 else "") + ")"


def log_probabilities(output: Any, name: str = "model", *, members: bool = False) -> torch.Tensor:
    """Log-probabilities of shape ``(N, C)`` from a multi-class model output.

    A single tensor is read as logits and passed through ``log_softmax``; this
    is also right for a tensor that already holds log-probabilities, since
    ``log_softmax`` leaves those unchanged. For a triple, its third element
    (``log_softmax``) is used as given. The result may be a non-contiguous
    view (see :mod:`~backwardcompatibilityml.class_softmax`).

    Parameters
    ----------
    output : Tensor or tuple of Tensor
        What the model returned.
    name : str
        Name of the model, used in error messages (``"h1"``, ``"h2"``).
    members : bool, default False
        ``output`` holds K stacked models' outputs, ``(K, N, C)``; so does the result.
    """
    rank = 3 if members else 2
    if isinstance(output, torch.Tensor):
        if output.dim() != rank:
            raise TypeError(
                f"{name} must return logits of shape {_shape_text(members, 'N', 'C')} for a multi-class loss; "
                f"it returned shape {tuple(output.shape)}"
            )
        return log_softmax(output, dim=-1)
    log_probs = _pick(output, 2, name)
    if log_probs.dim() != rank:
        raise TypeError(
            f"{name} returned log_softmax of shape {tuple(log_probs.shape)}; "
            f"expected {_shape_text(members, 'N', 'C')}"
        )
    return log_probs


def binary_probabilities(output: Any, name: str = "model", *, members: bool = False) -> torch.Tensor:
    """Probabilities of the positive class, shape ``(N,)``, from a binary model.

    Parameters
    ----------
    output : Tensor or tuple of Tensor
        Probabilities of shape ``(N,)`` or ``(N, 1)``, or a triple whose middle
        element holds them.
    name : str
        Name of the model, used in error messages.
    members : bool, default False
        ``output`` holds K stacked models' outputs, ``(K, N)`` or ``(K, N, 1)``; the result is ``(K, N)``.
    """
    rank = 2 if members else 1
    probs = _pick(output, 1, name)
    if probs.dim() == rank + 1 and probs.shape[-1] == 1:
        probs = probs[..., 0]
    if probs.dim() != rank:
        raise TypeError(
            f"{name} must return probabilities of shape {_shape_text(members, 'N')} or "
            f"{_shape_text(members, 'N', '1')} for a binary loss; it returned shape {tuple(probs.shape)}"
        )
    return probs


def is_binary_output(output: Any, *, members: bool = False) -> bool:
    """Whether a model output looks like binary probabilities (``(N,)`` or ``(N, 1)``; with ``members``, a leading K)."""
    tensor = output if isinstance(output, torch.Tensor) else _pick(output, 1, "model")
    rank = tensor.dim() - (1 if members else 0)
    return rank == 1 or (rank == 2 and tensor.shape[-1] == 1)


def class_count(output: Any) -> int:
    """The number of classes a model output scores: 2 for binary probabilities, else the width of its logits."""
    if is_binary_output(output):
        return 2
    return int(_pick(output, 0, "model").shape[-1])


def predicted_labels(output: Any, discriminant_pivot: float = 0.5, name: str = "model") -> torch.Tensor:
    """Predicted class indices (``int64``, shape ``(N,)``) from any supported output.

    Multi-class outputs give the arg-max class; binary probabilities give
    ``1`` where the probability exceeds ``discriminant_pivot`` and ``0`` otherwise.
    """
    if is_binary_output(output):
        return (binary_probabilities(output, name) > discriminant_pivot).long()
    return log_probabilities(output, name).argmax(dim=1)


def target_labels(targets: torch.Tensor) -> torch.Tensor:
    """Targets as ``int64`` class indices of shape ``(N,)`` (``(N, 1)`` binary targets are flattened)."""
    if targets.dim() == 2 and targets.shape[1] == 1:
        targets = targets[:, 0]
    return targets.long()


@contextlib.contextmanager
def eval_mode(model: Any) -> Iterator[Any]:
    """Put ``model`` in eval mode, and give every submodule its own train/eval mode back afterwards.

    ``model.train()`` would not do: a model in train mode with a frozen
    (eval-mode) BatchNorm would come back with that BatchNorm in train mode.
    """
    modules = list(model.modules()) if isinstance(model, torch.nn.Module) else []
    modes = [module.training for module in modules]
    was_training = getattr(model, "training", False)
    if hasattr(model, "eval"):
        model.eval()
    try:
        yield model
    finally:
        for module, mode in zip(modules, modes):
            module.training = mode
        if not modules and was_training and hasattr(model, "train"):
            model.train()


@contextlib.contextmanager
def inference(model: Any) -> Iterator[Any]:
    """Run ``model`` in eval mode without gradients, restoring the train/eval mode of each submodule afterwards."""
    with eval_mode(model), torch.no_grad():
        yield model
