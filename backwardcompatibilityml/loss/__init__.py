"""Compatibility loss functions.

Two families, each over four base losses:

=====================  =========================  ==========================================
base loss              New Error                  Strict Imitation
=====================  =========================  ==========================================
negative log lik.      :class:`BCNLLLoss`         :class:`StrictImitationNLLLoss`
cross-entropy          :class:`BCCrossEntropyLoss`  :class:`StrictImitationCrossEntropyLoss`
binary cross-entropy   :class:`BCBinaryCrossEntropyLoss`  :class:`StrictImitationBinaryCrossEntropyLoss`
KL divergence          :class:`BCKLDivergenceLoss`  :class:`StrictImitationKLDivergenceLoss`
=====================  =========================  ==========================================

The classes are thin modules over :mod:`backwardcompatibilityml.loss.functional`,
whose :func:`~backwardcompatibilityml.loss.functional.compatibility_loss` also
computes the losses of ``K`` stacked models in one call.
"""

from . import functional
from .base import CompatibilityLoss
from .new_error import BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss
from .strict_imitation import (
    StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss,
    StrictImitationKLDivergenceLoss,
    StrictImitationNLLLoss,
)

__all__ = [
    "functional",
    "CompatibilityLoss",
    "BCNLLLoss",
    "BCCrossEntropyLoss",
    "BCBinaryCrossEntropyLoss",
    "BCKLDivergenceLoss",
    "StrictImitationNLLLoss",
    "StrictImitationCrossEntropyLoss",
    "StrictImitationBinaryCrossEntropyLoss",
    "StrictImitationKLDivergenceLoss",
]
