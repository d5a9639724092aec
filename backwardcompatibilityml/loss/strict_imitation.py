"""Strict Imitation losses: on the instances h1 gets right, h2 imitates h1's soft prediction."""

from __future__ import annotations

from typing import Any

from .base import CompatibilityLoss
from .functional import STRICT_IMITATION, check_num_classes, soft_cross_entropy_terms

__all__ = [
    "StrictImitationNLLLoss",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationBinaryCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
]

# Kept importable from here for code written against the earlier module.
_REEXPORTED = (soft_cross_entropy_terms,)


class StrictImitationNLLLoss(CompatibilityLoss):
    """Strict Imitation compatibility loss with a negative log likelihood base loss.

    ``loss = NLL(h2) + lambda_c * sum_{i in S} H(p1_i, p2_i) / N`` where
    ``H(p1, p2) = -sum_k p1_k log p2_k`` is the cross-entropy of h2's
    distribution against h1's *soft* prediction. Unlike New Error, h2 is pulled
    towards h1's whole distribution, not towards the label. Parameters as
    :class:`~backwardcompatibilityml.loss.BCNLLLoss`.
    """

    family = STRICT_IMITATION
    base = "nll"


class StrictImitationCrossEntropyLoss(StrictImitationNLLLoss):
    """Strict Imitation compatibility loss with a cross-entropy base loss.

    ``loss = CE(h2) + lambda_c * sum_{i in S} H(p1_i, p2_i) / N`` (soft-target
    cross-entropy against h1's softmax). Parameters as
    :class:`~backwardcompatibilityml.loss.BCCrossEntropyLoss`.
    """

    base = "cross-entropy"


class StrictImitationBinaryCrossEntropyLoss(CompatibilityLoss):
    """Strict Imitation compatibility loss for binary models.

    ``loss = BCE(p2, y) + lambda_c * sum_{i in S} BCE(p2_i, p1_i) / N``: on S,
    h2's probability is trained towards h1's probability (a soft target).
    Parameters as :class:`~backwardcompatibilityml.loss.BCBinaryCrossEntropyLoss`.
    """

    family = STRICT_IMITATION
    base = "binary-cross-entropy"
    binary = True


class StrictImitationKLDivergenceLoss(CompatibilityLoss):
    """Strict Imitation compatibility loss with a KL-divergence base loss.

    ``loss = KL(one_hot(y) || p2) + lambda_c * sum_{i in S} KL(p1_i || p2_i) / N``.
    Parameters as :class:`~backwardcompatibilityml.loss.BCKLDivergenceLoss`.
    """

    family = STRICT_IMITATION
    base = "kl-divergence"

    def __init__(self, h1: Any, h2: Any, lambda_c: float, num_classes: int, **kwargs: Any) -> None:
        super().__init__(h1, h2, lambda_c, **kwargs)
        self.num_classes = check_num_classes(num_classes)
