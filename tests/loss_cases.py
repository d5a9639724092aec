"""What the loss tests share: the eight loss classes by kind, a fixed-output model and a builder."""

from __future__ import annotations

import torch.nn as nn

from backwardcompatibilityml.loss import (
    BCBinaryCrossEntropyLoss,
    BCCrossEntropyLoss,
    BCKLDivergenceLoss,
    BCNLLLoss,
    StrictImitationBinaryCrossEntropyLoss,
    StrictImitationCrossEntropyLoss,
    StrictImitationKLDivergenceLoss,
    StrictImitationNLLLoss,
)

MULTICLASS = [
    BCNLLLoss, BCCrossEntropyLoss, BCKLDivergenceLoss,
    StrictImitationNLLLoss, StrictImitationCrossEntropyLoss, StrictImitationKLDivergenceLoss,
]
BINARY = [BCBinaryCrossEntropyLoss, StrictImitationBinaryCrossEntropyLoss]


class Fixed(nn.Module):
    """A 'model' that returns a fixed output (a tensor or a triple) whatever the input, for exact control."""

    def __init__(self, output):
        super().__init__()
        self.output = output

    def forward(self, x):
        return self.output


def build_loss(cls, h1, h2, lambda_c, *, classes, **kwargs):
    """``cls(h1, h2, lambda_c, **kwargs)``, with ``num_classes=classes`` for the KL losses (which need it)."""
    if "KLDivergence" in cls.__name__:
        kwargs.setdefault("num_classes", classes)
    return cls(h1, h2, lambda_c, **kwargs)
