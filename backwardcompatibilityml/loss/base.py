"""Shared machinery of the compatibility losses: a thin module over :mod:`.functional`."""

from __future__ import annotations

import numbers
import warnings
from typing import Any, Dict, Optional

import torch
import torch.nn as nn

from ..outputs import binary_probabilities, inference, log_probabilities, validate_output
from ..validation import check_lambda_c, check_scalar
from . import functional as LF

__all__ = ["CompatibilityLoss"]

_REDUCTIONS = LF.REDUCTIONS

# Methods whose behaviour :func:`~.functional.compatibility_loss` reproduces. A
# subclass that overrides any of them is not "built on the functional core".
_CORE_METHODS = ("forward", "prepare_target", "adapt", "support", "base_terms", "dissonance_terms")


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

    The package's eight losses only declare their ``family`` and ``base``; the
    terms come from :func:`~backwardcompatibilityml.loss.functional.compatibility_loss`.
    A subclass may instead set ``binary`` and implement :meth:`base_terms` and
    :meth:`dissonance_terms` on the adapted outputs (log-probabilities of shape
    ``(N, C)`` for multi-class losses, probabilities of shape ``(N,)`` for
    binary ones); :meth:`functional_arguments` then returns None, and the
    stacked (vectorized) executor trains it one model at a time.

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
        positive (default 0.5). A multi-class loss predicts the class of
        largest probability and warns (``UserWarning``) when given another
        value, which it cannot use.
    reduction : {"mean", "sum", "none"}
        How the per-instance losses ``l_i`` are reduced (default ``"mean"``).

    Attributes
    ----------
    family : str or None
        ``"new-error"`` or ``"strict-imitation"`` for the package's losses.
    base : str or None
        ``"nll"``, ``"cross-entropy"``, ``"binary-cross-entropy"`` or ``"kl-divergence"``.
    """

    family: Optional[str] = None
    base: Optional[str] = None
    binary = False
    num_classes: Optional[int] = None

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
        check_scalar(discriminant_pivot, "discriminant_pivot", numbers.Real, min_val=0, max_val=1,
                     include_boundaries="neither")
        if not self.binary and discriminant_pivot != 0.5:
            warnings.warn(
                f"discriminant_pivot={discriminant_pivot} has no effect on {type(self).__name__}: it applies to "
                "binary losses only (a multi-class loss predicts the class of largest probability)",
                UserWarning, stacklevel=2,
            )
        # Stored outside the Module registry: the loss must not own h1's or h2's
        # parameters (an optimizer over loss.parameters() would otherwise train h1).
        self.__dict__["h1"] = h1
        self.__dict__["h2"] = h2
        self.lambda_c = check_lambda_c(lambda_c)
        self.discriminant_pivot = float(discriminant_pivot)
        self.reduction = reduction

    # -- the functional core ----------------------------------------------------
    @classmethod
    def is_functional(cls) -> bool:
        """Whether this class computes exactly :func:`~.functional.compatibility_loss`.

        True when the class declares a ``family`` and a ``base`` and overrides
        none of the methods that compute the loss.
        """
        if cls.family not in LF.FAMILIES or cls.base not in LF.BASES:
            return False
        return all(getattr(cls, name) is getattr(CompatibilityLoss, name) for name in _CORE_METHODS)

    def functional_arguments(self) -> Optional[Dict[str, Any]]:
        """Keyword arguments of :func:`~.functional.compatibility_loss` equivalent to this loss.

        Returns
        -------
        dict or None
            ``family``, ``base``, ``reduction``, ``discriminant_pivot`` and
            ``num_classes``; None when the class is not built on the functional
            core (see :meth:`is_functional`).
        """
        if not type(self).is_functional():
            return None
        return {
            "family": self.family,
            "base": self.base,
            "reduction": self.reduction,
            "discriminant_pivot": self.discriminant_pivot,
            "num_classes": self.num_classes,
        }

    # -- hooks (defaults: the functional core) ------------------------------------
    def base_terms(self, h2_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-instance base loss of h2 against the labels, shape ``(N,)``."""
        if self.base is None:
            raise NotImplementedError(f"{type(self).__name__} must set `base` or implement base_terms()")
        return LF.base_terms(h2_out, target, base=self.base, num_classes=self.num_classes)

    def dissonance_terms(self, h2_out: torch.Tensor, h1_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-instance dissonance between h1 and h2, shape ``(N,)``."""
        if self.family is None or self.base is None:
            raise NotImplementedError(
                f"{type(self).__name__} must set `family` and `base` or implement dissonance_terms()"
            )
        return LF.dissonance_terms(
            h2_out, h1_out, target, family=self.family, base=self.base, num_classes=self.num_classes,
        )

    def prepare_target(self, target: torch.Tensor) -> torch.Tensor:
        """Check and convert the labels (class indices or 0/1 values)."""
        if self.binary:
            if target.dim() == 2 and target.shape[1] == 1:
                target = target[:, 0]
            if target.dim() != 1:
                raise ValueError(f"y must have shape (N,) or (N, 1) for a binary loss, got {tuple(target.shape)}")
            return target.float()
        if target.dim() == 2 and target.shape[1] == 1:  # (N, 1) column of labels, as evaluation reads it
            target = target[:, 0]
        if target.dim() != 1 or target.dtype.is_floating_point or target.dtype == torch.bool:
            raise ValueError(
                f"y must be integer class indices of shape (N,) or (N, 1), got dtype {target.dtype} "
                f"and shape {tuple(target.shape)}"
            )
        return target.long()

    # -- the shared forward ------------------------------------------------------
    def adapt(self, output: Any, name: str, *, members: bool = False) -> torch.Tensor:
        """Read a model output as this loss needs it (log-probabilities or probabilities).

        With ``members=True``, ``output`` holds K stacked models' outputs and the
        result has a leading dimension K (see :mod:`~backwardcompatibilityml.outputs`).
        """
        if self.binary:
            return binary_probabilities(output, name, members=members)
        return log_probabilities(output, name, members=members)

    def support(self, h1_out: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Boolean mask of the instances h1 classifies correctly."""
        base = self.base if self.base is not None else ("binary-cross-entropy" if self.binary else "nll")
        return LF.support_mask(h1_out, target, base=base, discriminant_pivot=self.discriminant_pivot)

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

        Raises
        ------
        TypeError
            If ``y`` is not a tensor, or a model returns something else than
            the documented outputs.
        ValueError
            If ``y`` has the wrong dtype or shape, holds a class index outside
            ``[0, C)`` for h2's ``C`` classes (a binary target outside
            ``[0, 1]``), or disagrees with ``x`` or the
            models' outputs on the batch size; if h1 and h2 score different
            numbers of classes.
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
        if self.binary:
            LF.check_binary_targets(target)
        else:
            if h1_out.shape[-1] != h2_out.shape[-1]:
                raise ValueError(f"h1 returned {h1_out.shape[-1]} classes and h2 {h2_out.shape[-1]}; "
                                 "both models must score the same classes")
            LF.check_class_indices(target, h2_out.shape[-1])
        terms = self.base_terms(h2_out, target)
        dissonance = support = None
        if self.lambda_c > 0:  # at lambda_c = 0 the loss is the base loss alone
            dissonance = self.dissonance_terms(h2_out, h1_out, target)
            support = self.support(h1_out, target)
        return LF.combine_terms(terms, dissonance, support, self.lambda_c, self.reduction)

    def _run_h1(self, x: Any) -> Any:
        with inference(self.h1) as h1:
            return validate_output(h1(x), "h1")

    def extra_repr(self) -> str:
        return f"lambda_c={self.lambda_c}, reduction={self.reduction!r}"
