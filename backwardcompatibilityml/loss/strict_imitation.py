"""Strict Imitation losses: on the instances h1 gets right, h2 imitates h1's soft prediction."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .new_error import bce_terms, check_num_classes, nll_terms, one_hot_kl_terms
from .base import CompatibilityLoss

__all__ = [
    "StrictImitationNLLLoss",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationBinaryCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
]


def soft_cross_entropy_terms(h2_log_probs: torch.Tensor, h1_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-instance ``-sum_k p1_k log p2_k``: cross-entropy against h1's distribution."""
    return -(h1_log_probs.exp() * h2_log_probs).sum(dim=1)


class StrictImitationNLLLoss(CompatibilityLoss):
    """Strict Imitation compatibility loss with a negative log likelihood base loss.

    ``loss = NLL(h2) + lambda_c * sum_{i in S} H(p1_i, p2_i) / N`` where
    ``H(p1, p2) = -sum_k p1_k log p2_k`` is the cross-entropy of h2's
    distribution against h1's *soft* prediction. Unlike New Error, h2 is pulled
    towards h1's whole distribution, not towards the label. Parameters as
    :class:`~backwardcompatibilityml.loss.BCNLLLoss`.
    """

    def base_terms(self, h2_out, target):
        return nll_terms(h2_out, target)

    def dissonance_terms(self, h2_out, h1_out, target):
        return soft_cross_entropy_terms(h2_out, h1_out)


class StrictImitationCrossEntropyLoss(StrictImitationNLLLoss):
    """Strict Imitation compatibility loss with a cross-entropy base loss.

    ``loss = CE(h2) + lambda_c * sum_{i in S} H(p1_i, p2_i) / N`` (soft-target
    cross-entropy against h1's softmax). Parameters as
    :class:`~backwardcompatibilityml.loss.BCCrossEntropyLoss`.
    """


class StrictImitationBinaryCrossEntropyLoss(CompatibilityLoss):
    """Strict Imitation compatibility loss for binary models.

    ``loss = BCE(p2, y) + lambda_c * sum_{i in S} BCE(p2_i, p1_i) / N``: on S,
    h2's probability is trained towards h1's probability (a soft target).
    Parameters as :class:`~backwardcompatibilityml.loss.BCBinaryCrossEntropyLoss`.
    """

    binary = True

    def base_terms(self, h2_out, target):
        return bce_terms(h2_out, target)

    def dissonance_terms(self, h2_out, h1_out, target):
        return bce_terms(h2_out, h1_out)


class StrictImitationKLDivergenceLoss(CompatibilityLoss):
    """Strict Imitation compatibility loss with a KL-divergence base loss.

    ``loss = KL(one_hot(y) || p2) + lambda_c * sum_{i in S} KL(p1_i || p2_i) / N``.
    Parameters as :class:`~backwardcompatibilityml.loss.BCKLDivergenceLoss`.
    """

    def __init__(self, h1, h2, lambda_c, num_classes: int, **kwargs) -> None:
        super().__init__(h1, h2, lambda_c, **kwargs)
        self.num_classes = check_num_classes(num_classes)

    def base_terms(self, h2_out, target):
        return one_hot_kl_terms(h2_out, target, self.num_classes)

    def dissonance_terms(self, h2_out, h1_out, target):
        return F.kl_div(h2_out, h1_out, reduction="none", log_target=True).sum(dim=1)
