"""New Error losses: penalise h2's base loss again on the instances h1 gets right."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .base import CompatibilityLoss

__all__ = ["BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss"]


def nll_terms(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-instance negative log likelihood of the true class."""
    return F.nll_loss(log_probs, target, reduction="none")


def bce_terms(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-instance binary cross-entropy (``target`` may be soft)."""
    return F.binary_cross_entropy(probs, target, reduction="none")


def one_hot_kl_terms(log_probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-instance ``KL(one_hot(y) || p)``."""
    if target.numel() and int(target.max()) >= num_classes:
        raise ValueError(f"y holds class {int(target.max())} but num_classes={num_classes}")
    if log_probs.shape[1] != num_classes:
        raise ValueError(f"the model returned {log_probs.shape[1]} classes but num_classes={num_classes}")
    one_hot = F.one_hot(target, num_classes).to(log_probs.dtype)
    return F.kl_div(log_probs, one_hot, reduction="none").sum(dim=1)


def check_num_classes(num_classes: Any) -> int:
    """Validate the ``num_classes`` argument of the KL losses."""
    if isinstance(num_classes, bool) or not isinstance(num_classes, int):
        raise TypeError(f"num_classes must be an int, got {type(num_classes).__name__}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be >= 2, got {num_classes}")
    return num_classes


class _NewErrorLoss(CompatibilityLoss):
    """New Error: the dissonance is h2's base loss against the true labels, on S."""

    def dissonance_terms(self, h2_out, h1_out, target):
        return self.base_terms(h2_out, target)


class BCNLLLoss(_NewErrorLoss):
    """New Error compatibility loss with a negative log likelihood base loss.

    ``loss = NLL(h2) + lambda_c * sum_{i in S} NLL_i(h2) / N`` where S holds the
    instances of the batch that h1 classifies correctly. A model returning a
    single tensor is read through ``log_softmax``, which leaves
    log-probabilities unchanged and turns logits into them.

    Parameters
    ----------
    h1, h2 : torch.nn.Module
        Reference and new model (logits or ``(logits, softmax, log_softmax)``).
    lambda_c : float
        Dissonance weight, finite and ``>= 0``.
    reduction : {"mean", "sum", "none"}
        See :class:`~backwardcompatibilityml.loss.base.CompatibilityLoss`.

    Examples
    --------
    >>> loss = BCNLLLoss(h1, h2, lambda_c=0.5)
    >>> loss(x, y).backward()
    """

    def base_terms(self, h2_out, target):
        return nll_terms(h2_out, target)


class BCCrossEntropyLoss(_NewErrorLoss):
    """New Error compatibility loss with a cross-entropy base loss.

    ``loss = CE(h2) + lambda_c * sum_{i in S} CE_i(h2) / N``; h2's output is
    read as logits (or the triple's ``log_softmax``). Parameters as
    :class:`BCNLLLoss`.
    """

    def base_terms(self, h2_out, target):
        return nll_terms(h2_out, target)


class BCBinaryCrossEntropyLoss(_NewErrorLoss):
    """New Error compatibility loss for binary models, with a binary cross-entropy base.

    Models return probabilities of shape ``(N,)`` or ``(N, 1)``; ``y`` holds 0/1
    values. h1 is right on instance i when ``(p1_i > discriminant_pivot) == y_i``.

    Parameters
    ----------
    h1, h2 : torch.nn.Module
        Binary models returning probabilities.
    lambda_c : float
        Dissonance weight, finite and ``>= 0``.
    discriminant_pivot : float, optional
        Decision threshold on the probability (default 0.5).
    reduction : {"mean", "sum", "none"}
        Reduction of the per-instance losses.
    """

    binary = True

    def base_terms(self, h2_out, target):
        return bce_terms(h2_out, target)


class BCKLDivergenceLoss(_NewErrorLoss):
    """New Error compatibility loss with a KL-divergence base loss.

    The base loss of an instance is ``KL(one_hot(y) || p2)``.

    Parameters
    ----------
    h1, h2 : torch.nn.Module
        Reference and new model.
    lambda_c : float
        Dissonance weight, finite and ``>= 0``.
    num_classes : int
        Number of classes (``>= 2``), the width of the one-hot targets.
    reduction : {"mean", "sum", "none"}
        Reduction of the per-instance losses.
    """

    def __init__(self, h1, h2, lambda_c, num_classes: int, **kwargs) -> None:
        super().__init__(h1, h2, lambda_c, **kwargs)
        self.num_classes = check_num_classes(num_classes)

    def base_terms(self, h2_out, target):
        return one_hot_kl_terms(h2_out, target, self.num_classes)
