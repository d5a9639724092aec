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
"""

from .base import CompatibilityLoss
from .new_error import BCBinaryCrossEntropyLoss, BCCrossEntropyLoss, BCKLDivergenceLoss, BCNLLLoss
from .strict_imitation import (
    StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss,
    StrictImitationKLDivergenceLoss,
    StrictImitationNLLLoss,
)

__all__ = [
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
