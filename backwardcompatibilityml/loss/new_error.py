"""New Error losses: penalise h2's base loss again on the instances h1 gets right."""

from __future__ import annotations

from typing import Any

from .base import CompatibilityLoss
from .functional import NEW_ERROR, bce_terms, check_num_classes, nll_terms, one_hot_kl_terms

__all__ = ["BCNLLLoss", "BCCrossEntropyLoss", "BCBinaryCrossEntropyLoss", "BCKLDivergenceLoss"]

# Kept importable from here for code written against the earlier module.
_REEXPORTED = (bce_terms, check_num_classes, nll_terms, one_hot_kl_terms)


class BCNLLLoss(CompatibilityLoss):
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

    family = NEW_ERROR
    base = "nll"


class BCCrossEntropyLoss(CompatibilityLoss):
    """New Error compatibility loss with a cross-entropy base loss.

    ``loss = CE(h2) + lambda_c * sum_{i in S} CE_i(h2) / N``; h2's output is
    read as logits (or the triple's ``log_softmax``). Parameters as
    :class:`BCNLLLoss`.
    """

    family = NEW_ERROR
    base = "cross-entropy"


class BCBinaryCrossEntropyLoss(CompatibilityLoss):
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

    family = NEW_ERROR
    base = "binary-cross-entropy"
    binary = True


class BCKLDivergenceLoss(CompatibilityLoss):
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

    family = NEW_ERROR
    base = "kl-divergence"

    def __init__(self, h1: Any, h2: Any, lambda_c: float, num_classes: int, **kwargs: Any) -> None:
        super().__init__(h1, h2, lambda_c, **kwargs)
        self.num_classes = check_num_classes(num_classes)
