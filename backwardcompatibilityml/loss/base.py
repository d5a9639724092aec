"""Shared machinery of the compatibility losses."""

from __future__ import annotations

import math
import numbers
from typing import Any, Optional

import torch
import torch.nn as nn

from ..outputs import binary_probabilities, inference, log_probabilities, validate_output

__all__ = ["CompatibilityLoss"]

_REDUCTIONS = ("mean", "sum", "none")


def check_lambda_c(lambda_c: Any) -> float:
    """Validate ``lambda_c``: a finite, non-negative real number."""
    if isinstance(lambda_c, bool) or not isinstance(lambda_c, numbers.Real):
        raise TypeError(f"lambda_c must be a real number, got {type(lambda_c).__name__}")
    value = float(lambda_c)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"lambda_c must be finite and >= 0, got {lambda_c!r}")
    return value


class CompatibilityLoss(nn.Module):
    """Base class: ``loss = base loss of h2 + lambda_c * dissonance(h1, h2)``.

    Per instance ``i`` of a batch of size ``N``::

        l_i = base_i(h2) + lambda_c * [h1 gets i right] * d_i(h1, h2)

    so that with ``reduction="mean"`` the loss is the mean base loss plus
    ``lambda_c`` times the dissonance summed over the support S (the instances
    h1 classifies correctly) and divided by ``N``. This scaling is the same for
    every subclass, so ``lambda_c`` means the same in all of them. An empty
    support gives a dissonance of 0.

    h1 runs under ``torch.no_grad()`` in eval mode (its mode is restored
    afterwards) and h2 runs forward exactly once per call.

    Subclasses set ``binary`` and implement :meth:`base_terms` and
    :meth:`dissonance_terms` on the adapted outputs: log-probabilities of shape
    ``(N, C)`` for multi-class losses, probabilities of shape ``(N,)`` for
    binary ones.

    Parameters
    ----------
    h1 : torch.nn.Module or callable
        The reference (old) model. Never trained by this loss.
    h2 : torch.nn.Module or callable
        The model being trained.
    lambda_c : float
        Weight of the dissonance, finite and ``>= 0``.
    discriminant_pivot : float, optional
        Binary losses only: probability above which an instance is predicted
        positive (default 0.5).
    reduction : {"mean", "sum", "none"}
        How the per-instance losses ``l_i`` are reduced (default ``"mean"``).
    """

    binary = False

    def __init__(
        self,
        h1: Any,
        h2: Any,
        lambda_c: float,
        *,
        discriminant_pivot: float = 0.5,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        for name, model in (("h1", h1), ("h2", h2)):
            if not callable(model):
                raise TypeError(f"{name} must be a torch.nn.Module or a callable, got {type(model).__name__}")
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        if isinstance(discriminant_pivot, bool) or not isinstance(discriminant_pivot, numbers.Real):
            raise TypeError(f"discriminant_pivot must be a real number, got {type(discriminant_pivot).__name__}")
        if not 0.0 < float(discriminant_pivot) < 1.0:
            raise ValueError(f"discriminant_pivot must lie in (0, 1), got {discriminant_pivot!r}")
        # Stored outside the Module registry: the loss must not own h1's or h2's
        # parameters (an optimizer over loss.parameters() would otherwise train h1).
        self.__dict__["h1"] = h1
        self.__dict__["h2"] = h2
        self.lambda_c = check_lambda_c(lambda_c)
        self.discriminant_pivot = float(discriminant_pivot)
        self.reduction = reduction

    # -- what subclasses define -------------------------------------------------
    def base_terms(self, h2_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-instance base loss of h2 against the labels, shape ``(N,)``."""
        raise NotImplementedError

    def dissonance_terms(self, h2_out: torch.Tensor, h1_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-instance dissonance between h1 and h2, shape ``(N,)``."""
        raise NotImplementedError

    def prepare_target(self, target: torch.Tensor) -> torch.Tensor:
        """Check and convert the labels (class indices or 0/1 values)."""
        if self.binary:
            if target.dim() == 2 and target.shape[1] == 1:
                target = target[:, 0]
            if target.dim() != 1:
                raise ValueError(f"y must have shape (N,) or (N, 1) for a binary loss, got {tuple(target.shape)}")
            return target.float()
        if target.dim() != 1 or target.dtype.is_floating_point or target.dtype == torch.bool:
            raise ValueError(
                f"y must be a 1-D tensor of integer class indices, got dtype {target.dtype} "
                f"and shape {tuple(target.shape)}"
            )
        return target.long()

    # -- the shared forward ------------------------------------------------------
    def adapt(self, output: Any, name: str) -> torch.Tensor:
        """Read a model output as this loss needs it (log-probabilities or probabilities)."""
        if self.binary:
            return binary_probabilities(output, name)
        return log_probabilities(output, name)

    def support(self, h1_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the instances h1 classifies correctly."""
        if self.binary:
            return (h1_out > self.discriminant_pivot).to(target.dtype) == target
        return h1_out.argmax(dim=1) == target

    def forward(self, x: Any, y: torch.Tensor, h1_output: Optional[Any] = None) -> torch.Tensor:
        """Compute the compatibility loss of a batch.

        Parameters
        ----------
        x : Tensor
            Inputs of the batch, as both models take them.
        y : Tensor
            Targets: class indices of shape ``(N,)`` (multi-class) or 0/1 values
            of shape ``(N,)`` / ``(N, 1)`` (binary).
        h1_output : Tensor or tuple, optional
            h1's output on ``x`` if already known (the sweep caches it); h1 is
            then not run.

        Returns
        -------
        Tensor
            A scalar for ``reduction="mean"`` or ``"sum"``, else shape ``(N,)``.
        """
        if not isinstance(y, torch.Tensor):
            raise TypeError(f"y must be a torch.Tensor, got {type(y).__name__}")
        target = self.prepare_target(y)
        if isinstance(x, torch.Tensor) and x.shape[0] != target.shape[0]:
            raise ValueError(f"x and y disagree on the batch size: {x.shape[0]} inputs, {target.shape[0]} targets")
        if h1_output is None:
            h1_output = self._run_h1(x)
        h1_out = self.adapt(h1_output, "h1").detach()
        h2_out = self.adapt(self.h2(x), "h2")
        if self.binary:
            target = target.to(h2_out.dtype)
        for name, out in (("h1", h1_out), ("h2", h2_out)):
            if out.shape[0] != target.shape[0]:
                raise ValueError(f"{name} returned {out.shape[0]} rows for a batch of {target.shape[0]} targets")
        per_instance = self.base_terms(h2_out, target)
        if self.lambda_c > 0:
            mask = self.support(h1_out, target)
            dissonance = self.dissonance_terms(h2_out, h1_out, target)
            per_instance = per_instance + self.lambda_c * torch.where(mask, dissonance, torch.zeros_like(dissonance))
        if self.reduction == "mean":
            return per_instance.mean()
        if self.reduction == "sum":
            return per_instance.sum()
        return per_instance

    def _run_h1(self, x: Any) -> Any:
        with inference(self.h1) as h1:
            return validate_output(h1(x), "h1")

    def extra_repr(self) -> str:
        return f"lambda_c={self.lambda_c}, reduction={self.reduction!r}"
