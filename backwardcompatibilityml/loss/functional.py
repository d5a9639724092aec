"""The compatibility losses as functions, in the way of :mod:`torch.nn.functional`.

Every loss of the package is ``base + lambda_c * [h1 right] * dissonance``,
computed per instance from *adapted* model outputs:

* multi-class bases (``"nll"``, ``"cross-entropy"``, ``"kl-divergence"``) take
  log-probabilities of shape ``(..., N, C)``;
* the binary base (``"binary-cross-entropy"``) takes probabilities of the
  positive class of shape ``(..., N)``.

h2's outputs may carry leading dimensions, such as the ``K`` members of a
stacked model: ``h2_out`` of shape ``(K, N, C)`` against one ``h1_out`` of
shape ``(N, C)`` and one ``target`` of shape ``(N,)``, with ``lambda_c`` a
``(K,)`` tensor, gives one loss per member in a single call.

=====================  ==========================  ==========================================
base                   New Error dissonance        Strict Imitation dissonance
=====================  ==========================  ==========================================
``nll``                NLL of h2 on the label      ``-sum_k p1_k log p2_k``
``cross-entropy``      CE of h2 on the label       ``-sum_k p1_k log p2_k``
``kl-divergence``      ``KL(one_hot(y) || p2)``    ``KL(p1 || p2)``
``binary-cross-entropy`` BCE of h2 on the label    ``BCE(p2, p1)`` (h1's soft probability)
=====================  ==========================  ==========================================

The dissonance only counts on the support: the instances h1 classifies
correctly. With ``reduction="mean"`` the loss is the mean base loss plus
``lambda_c`` times the dissonance summed over the support and divided by the
batch size ``N``.
"""

from __future__ import annotations

import math
import numbers
from typing import Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F

from ..validation import check_lambda_c, check_scalar

__all__ = [
    "NEW_ERROR", "STRICT_IMITATION", "FAMILIES", "BASES", "BINARY_BASES", "REDUCTIONS",
    "is_binary_base", "check_num_classes", "check_kl_classes", "check_class_indices", "check_binary_targets", "nll_terms", "bce_terms",
    "one_hot_kl_terms",
    "soft_cross_entropy_terms", "kl_terms", "base_terms", "dissonance_terms", "support_mask",
    "member_weights", "combine_terms", "compatibility_loss", "stacked_compatibility_loss",
]

NEW_ERROR = "new-error"
STRICT_IMITATION = "strict-imitation"
FAMILIES: Tuple[str, str] = (NEW_ERROR, STRICT_IMITATION)
BASES: Tuple[str, ...] = ("nll", "cross-entropy", "binary-cross-entropy", "kl-divergence")
BINARY_BASES: Tuple[str, ...] = ("binary-cross-entropy",)
REDUCTIONS: Tuple[str, ...] = ("mean", "sum", "none")

LambdaC = Union[float, torch.Tensor]


def _check_choice(value: object, name: str, choices: Tuple[str, ...]) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value  # type: ignore[return-value]


def is_binary_base(base: str) -> bool:
    """Whether ``base`` works on binary probabilities (else on log-probabilities)."""
    return _check_choice(base, "base", BASES) in BINARY_BASES


def check_num_classes(num_classes: object) -> int:
    """Validate the ``num_classes`` argument of the KL losses (an int ``>= 2``)."""
    return int(check_scalar(num_classes, "num_classes", numbers.Integral, min_val=2))


def check_kl_classes(returned: int, target: torch.Tensor, num_classes: Optional[int]) -> None:
    """Check the KL base's ``num_classes`` against the labels and the ``returned`` number of classes.

    Raises
    ------
    ValueError
        If ``num_classes`` is missing, ``target`` holds a class ``>= num_classes``
        or the model returned another number of classes.
    """
    if num_classes is None:
        raise ValueError("num_classes is required by the kl-divergence base")
    if target.numel():
        low, high = (int(value) for value in torch.aminmax(target))
        if low < 0:
            raise ValueError(f"y holds class {low}; class indices must be >= 0")
        if high >= num_classes:
            raise ValueError(f"y holds class {high} but num_classes={num_classes}")
    if returned != num_classes:
        raise ValueError(f"the model returned {returned} classes but num_classes={num_classes}")


def check_class_indices(target: torch.Tensor, classes: int, name: str = "y") -> None:
    """Check that the labels ``target`` are class indices in ``[0, classes)``.

    Parameters
    ----------
    target : Tensor
        Integer class indices.
    classes : int
        The number of classes the model returned.
    name : str
        Name of the argument, used in the messages.

    Raises
    ------
    ValueError
        If a label is negative or ``>= classes`` (torch's ``nll_loss`` would
        raise an ``IndexError`` that names no argument, or a device-side
        assertion on a GPU).
    """
    if not target.numel():
        return
    low, high = (int(value) for value in torch.aminmax(target))
    if low < 0:
        raise ValueError(f"{name} holds class {low}; class indices must be >= 0")
    if high >= classes:
        raise ValueError(f"{name} holds class {high} but the model returned {classes} classes "
                         f"(class indices must lie in [0, {classes}))")


def check_binary_targets(target: torch.Tensor, name: str = "y") -> None:
    """Check that binary targets lie in ``[0, 1]`` (labels 0 and 1, or soft targets).

    Raises
    ------
    ValueError
        If a target is below 0, above 1 or NaN (torch's ``binary_cross_entropy``
        would raise a ``RuntimeError`` that names no argument, or a device-side
        assertion on a GPU).
    """
    if not target.numel():
        return
    low, high = (float(value) for value in torch.aminmax(target.float()))
    if math.isnan(low) or math.isnan(high):
        raise ValueError(f"{name} holds NaN; binary targets must lie in [0, 1]")
    if low < 0 or high > 1:
        raise ValueError(f"{name} holds {low if low < 0 else high:g}; binary targets must lie in [0, 1] "
                         "(labels 0 and 1)")


# -- per-instance terms ------------------------------------------------------------------
_NO_IGNORED_CLASS = -(2 ** 63)  # the smallest int64: no label can be it, so nll_loss ignores none
def nll_terms(log_probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-instance negative log likelihood of the true class.

    ``log_probs`` has shape ``(..., N, C)``, ``target`` holds class indices of
    shape ``(N,)`` (or ``log_probs.shape[:-1]``); the result has shape ``(..., N)``.
    """
    if log_probs.dim() == 2 and target.dim() == 1:
        # One kernel for the unstacked case. No label is ignored (nll_loss skips -100 by default,
        # silently): every class index out of range raises, as the gather below does.
        return F.nll_loss(log_probs, target, reduction="none", ignore_index=_NO_IGNORED_CLASS)
    index = target.expand(log_probs.shape[:-1]).unsqueeze(-1)
    return -log_probs.gather(-1, index).squeeze(-1)


def bce_terms(probs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-instance binary cross-entropy of ``probs`` (``(..., N)``) against ``target`` (may be soft).

    ``target`` is cast to ``probs``' dtype (h1's probabilities may come in
    another floating dtype than h2's), as the multi-class terms promote.
    Values and gradients are :func:`torch.nn.functional.binary_cross_entropy`'s
    (its logarithms clamped at -100), except that a probability outside
    [0, 1] or NaN gives a NaN term where that function raises (on a GPU, a
    device-side assert): a diverged model then fails with a non-finite loss,
    and in a stacked model it fails alone.
    """
    target = target.to(probs.dtype).expand_as(probs)
    valid = (probs >= 0) & (probs <= 1)  # False for NaN; no branch on it: no host sync on a GPU
    terms = F.binary_cross_entropy(torch.where(valid, probs, torch.full_like(probs, 0.5)), target, reduction="none")
    return torch.where(valid, terms, torch.full_like(terms, float("nan")))


def one_hot_kl_terms(log_probs: torch.Tensor, target: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Per-instance ``KL(one_hot(y) || p)``, shape ``(..., N)``.

    Raises
    ------
    ValueError
        If ``target`` holds a class ``>= num_classes`` or the model returned
        another number of classes.
    """
    check_kl_classes(log_probs.shape[-1], target, num_classes)
    # KL(one_hot(y) || p) = sum_k y_k (log y_k - log p_k) = -log p_y, since 0 log 0 = 0 = 1 log 1.
    # Written as the NLL rather than with F.kl_div, which makes 0 * (-inf) = NaN where a class other
    # than the label has probability 0 (a log_softmax of -inf).
    return nll_terms(log_probs, target)


def _weighted_by_h1(h1_probs: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``sum_k p1_k values_k`` over the classes, a class with ``p1_k = 0`` adding 0 (``0 log 0 = 0``).

    The mask keeps ``0 * (-inf)`` from turning a term into NaN, in the value and
    in the gradient (the masked classes get a gradient of 0).
    """
    products = h1_probs * values
    return torch.where(h1_probs > 0, products, torch.zeros_like(products)).sum(dim=-1)


def soft_cross_entropy_terms(h2_log_probs: torch.Tensor, h1_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-instance ``-sum_k p1_k log p2_k``: cross-entropy of h2 against h1's distribution.

    A class h1 gives probability 0 adds nothing, even where h2's log-probability is ``-inf``.
    """
    h1_probs = h1_log_probs.to(h2_log_probs.dtype).exp()
    return -_weighted_by_h1(h1_probs, h2_log_probs)


def kl_terms(h2_log_probs: torch.Tensor, h1_log_probs: torch.Tensor) -> torch.Tensor:
    """Per-instance ``KL(p1 || p2) = sum_k p1_k (log p1_k - log p2_k)`` from log-probabilities of both models.

    A class h1 gives probability 0 adds nothing (``0 log 0 = 0``), even where
    h1's or h2's log-probability is ``-inf``.
    """
    h1_log_probs = h1_log_probs.to(h2_log_probs.dtype)
    return _weighted_by_h1(h1_log_probs.exp(), h1_log_probs - h2_log_probs)


def base_terms(
    h2_out: torch.Tensor, target: torch.Tensor, *, base: str, num_classes: Optional[int] = None,
) -> torch.Tensor:
    """Per-instance base loss of h2 against the labels.

    Parameters
    ----------
    h2_out : Tensor
        Log-probabilities ``(..., N, C)``, or probabilities ``(..., N)`` for the binary base.
    target : Tensor
        Class indices ``(N,)`` (``int64``), or 0/1 values ``(N,)`` of h2's dtype for the binary base.
    base : {"nll", "cross-entropy", "binary-cross-entropy", "kl-divergence"}
        The base loss.
    num_classes : int, optional
        Required by ``"kl-divergence"``.

    Returns
    -------
    Tensor
        Shape ``h2_out.shape[:-1]`` (multi-class) or ``h2_out.shape`` (binary).
    """
    _check_choice(base, "base", BASES)
    if base == "binary-cross-entropy":
        return bce_terms(h2_out, target)
    if base == "kl-divergence":
        if num_classes is None:
            raise ValueError("num_classes is required by the kl-divergence base")
        return one_hot_kl_terms(h2_out, target, num_classes)
    return nll_terms(h2_out, target)


def dissonance_terms(
    h2_out: torch.Tensor,
    h1_out: torch.Tensor,
    target: torch.Tensor,
    *,
    family: str,
    base: str,
    num_classes: Optional[int] = None,
) -> torch.Tensor:
    """Per-instance dissonance of a family, before the support mask (see the module table).

    Parameters as :func:`base_terms`, plus ``h1_out`` (h1's adapted output,
    without the leading dimensions of ``h2_out``) and ``family``
    (``"new-error"`` or ``"strict-imitation"``).
    """
    _check_choice(family, "family", FAMILIES)
    if family == NEW_ERROR:
        return base_terms(h2_out, target, base=base, num_classes=num_classes)
    _check_choice(base, "base", BASES)
    if base == "binary-cross-entropy":
        return bce_terms(h2_out, h1_out)
    if base == "kl-divergence":
        return kl_terms(h2_out, h1_out)
    return soft_cross_entropy_terms(h2_out, h1_out)


def support_mask(
    h1_out: torch.Tensor, target: torch.Tensor, *, base: str, discriminant_pivot: float = 0.5,
) -> torch.Tensor:
    """Boolean mask ``(N,)`` of the instances h1 classifies correctly.

    Binary: ``(p1 > discriminant_pivot) == y``; multi-class: ``argmax p1 == y``.
    """
    if is_binary_base(base):
        return (h1_out > discriminant_pivot).to(target.dtype) == target
    return h1_out.argmax(dim=-1) == target


def member_weights(lambda_c: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Check a ``(K,)`` tensor of lambda_c values and shape it to weight per-instance terms ``like``.

    Parameters
    ----------
    lambda_c : Tensor
        Floating-point values ``>= 0``, one per member.
    like : Tensor
        Per-instance terms of shape ``(K, ..., N)``.

    Returns
    -------
    Tensor
        Shape ``(K, 1, ..., 1)`` with ``like``'s dtype and device; pass it to
        :func:`stacked_compatibility_loss` in a training loop.
    """
    if not isinstance(lambda_c, torch.Tensor):
        raise TypeError(f"lambda_c must be a tensor of shape (K,), got {type(lambda_c).__name__}")
    if lambda_c.dim() != 1:
        raise ValueError(f"lambda_c must be a float or a 1-D tensor of shape (K,), got shape {tuple(lambda_c.shape)}")
    if like.dim() < 2 or like.shape[0] != lambda_c.shape[0]:
        raise ValueError(
            f"a lambda_c of shape (K,) = {tuple(lambda_c.shape)} needs h2_out with a leading dimension K; "
            f"the per-instance terms have shape {tuple(like.shape)}"
        )
    if not lambda_c.dtype.is_floating_point:
        raise TypeError(f"lambda_c must be a floating-point tensor, got dtype {lambda_c.dtype}")
    # Values are checked on the CPU only: on a GPU the check would synchronise.
    if lambda_c.device.type == "cpu" and not bool((torch.isfinite(lambda_c) & (lambda_c >= 0)).all()):
        raise ValueError(f"lambda_c must hold finite values >= 0, got {lambda_c.tolist()}")
    return lambda_c.to(device=like.device, dtype=like.dtype).reshape((-1,) + (1,) * (like.dim() - 1))


def _combine(base: torch.Tensor, dissonance: Optional[torch.Tensor], support: Optional[torch.Tensor],
             weights: LambdaC, reduction: str) -> torch.Tensor:
    per_instance = base
    if isinstance(weights, torch.Tensor) or weights > 0:
        assert dissonance is not None and support is not None
        weighted = weights * dissonance
        # Off the support, and for a member of lambda_c = 0, the dissonance adds nothing, even where it is
        # infinite (0 * inf would make the member's loss NaN where the float lambda_c = 0 gives the base loss).
        keep = support & (weights > 0) if isinstance(weights, torch.Tensor) else support
        per_instance = base + torch.where(keep, weighted, torch.zeros_like(weighted))
    if reduction == "mean":
        return per_instance.mean(dim=-1)
    if reduction == "sum":
        return per_instance.sum(dim=-1)
    return per_instance


def combine_terms(
    base: torch.Tensor,
    dissonance: Optional[torch.Tensor],
    support: Optional[torch.Tensor],
    lambda_c: LambdaC,
    reduction: str = "mean",
) -> torch.Tensor:
    """``base + lambda_c * where(support, dissonance, 0)``, reduced over the instances.

    Parameters
    ----------
    base, dissonance : Tensor
        Per-instance terms, shape ``(..., N)``. ``dissonance`` may be None when
        ``lambda_c`` is the float 0 (it is then not needed).
    support : Tensor or None
        Boolean mask ``(N,)``; may be None, as ``dissonance``, when ``lambda_c`` is the float 0.
    lambda_c : float or Tensor
        A float, or a ``(K,)`` tensor weighting the members of a leading dimension ``K``.
    reduction : {"mean", "sum", "none"}
        Reduction over the last (instance) dimension.

    Returns
    -------
    Tensor
        ``base.shape[:-1]`` for ``"mean"``/``"sum"`` (a scalar without leading
        dimensions, ``(K,)`` with them), ``base.shape`` for ``"none"``.
    """
    _check_choice(reduction, "reduction", REDUCTIONS)
    weights = member_weights(lambda_c, base) if isinstance(lambda_c, torch.Tensor) else lambda_c
    return _combine(base, dissonance, support, weights, reduction)


def stacked_compatibility_loss(
    h2_out: torch.Tensor,
    h1_out: torch.Tensor,
    target: torch.Tensor,
    weights: torch.Tensor,
    *,
    family: Union[str, Sequence[Tuple[str, int]]],
    base: str,
    reduction: str = "mean",
    discriminant_pivot: float = 0.5,
    num_classes: Optional[int] = None,
) -> torch.Tensor:
    """:func:`compatibility_loss` for a training loop of K stacked members: nothing is checked per call.

    Parameters
    ----------
    h2_out, h1_out, target, base, reduction, discriminant_pivot, num_classes
        As in :func:`compatibility_loss` (``h2_out`` with its leading ``K``), trusted.
    weights : Tensor
        From :func:`member_weights`: shape ``(K, 1, ...)``, the dtype and device of the terms.
    family : str or sequence of (str, int)
        One family for every member, or runs ``(family, count)`` covering the
        members in stack order (``(("new-error", 21), ("strict-imitation", 21))``):
        one call then serves members of several families that share the base.
    """
    h1_out = h1_out.detach()
    terms = base_terms(h2_out, target, base=base, num_classes=num_classes)
    runs = ((family, terms.shape[0]),) if isinstance(family, str) else tuple(family)
    parts, start = [], 0
    for name, count in runs:
        # New Error's dissonance is the base loss itself: reuse it rather than computing it twice.
        part = terms[start:start + count] if name == NEW_ERROR else dissonance_terms(
            h2_out[start:start + count], h1_out, target, family=name, base=base, num_classes=num_classes)
        parts.append(part)
        start += count
    dissonance = parts[0] if len(parts) == 1 else torch.cat(parts)
    mask = support_mask(h1_out, target, base=base, discriminant_pivot=discriminant_pivot)
    return _combine(terms, dissonance, mask, weights, reduction)


def compatibility_loss(
    h2_out: torch.Tensor,
    h1_out: torch.Tensor,
    target: torch.Tensor,
    lambda_c: LambdaC,
    *,
    family: str,
    base: str,
    reduction: str = "mean",
    discriminant_pivot: float = 0.5,
    num_classes: Optional[int] = None,
) -> torch.Tensor:
    """The compatibility loss of a batch, for one model or for ``K`` stacked members.

    ``l_i = base_i(h2) + lambda_c * [h1 right on i] * dissonance_i(h1, h2)``,
    reduced over the ``N`` instances.

    Parameters
    ----------
    h2_out : Tensor
        h2's adapted output: log-probabilities ``(N, C)`` / ``(K, N, C)``, or
        probabilities ``(N,)`` / ``(K, N)`` for the binary base.
    h1_out : Tensor
        h1's adapted output, ``(N, C)`` or ``(N,)``, shared by all members.
        Treated as a constant (no gradient flows into it).
    target : Tensor
        Class indices ``(N,)``; for the binary base 0/1 values ``(N,)`` of
        h2's floating dtype.
    lambda_c : float or Tensor
        Dissonance weight ``>= 0``; a ``(K,)`` tensor gives member ``k`` the
        weight ``lambda_c[k]`` (``h2_out`` must then carry the leading ``K``).
    family : {"new-error", "strict-imitation"}
        The dissonance.
    base : {"nll", "cross-entropy", "binary-cross-entropy", "kl-divergence"}
        The base loss.
    reduction : {"mean", "sum", "none"}
        ``"mean"``/``"sum"`` give a scalar (``(K,)`` when stacked), ``"none"``
        the per-instance losses ``(N,)`` (``(K, N)``).
    discriminant_pivot : float
        Binary base: probability above which h1 predicts the positive class.
    num_classes : int, optional
        Required by the ``"kl-divergence"`` base.

    Returns
    -------
    Tensor

    Examples
    --------
    >>> log_p2 = torch.randn(3, 8, 5).log_softmax(-1)      # K=3 members, N=8, C=5
    >>> log_p1 = torch.randn(8, 5).log_softmax(-1)
    >>> y = torch.randint(0, 5, (8,))
    >>> compatibility_loss(log_p2, log_p1, y, torch.tensor([0.0, 0.5, 1.0]),
    ...                    family="new-error", base="cross-entropy").shape
    torch.Size([3])
    """
    _check_choice(family, "family", FAMILIES)
    _check_choice(base, "base", BASES)
    _check_choice(reduction, "reduction", REDUCTIONS)
    if not isinstance(lambda_c, torch.Tensor):
        lambda_c = check_lambda_c(lambda_c)
    h1_out = h1_out.detach()
    terms = base_terms(h2_out, target, base=base, num_classes=num_classes)
    weights = member_weights(lambda_c, terms) if isinstance(lambda_c, torch.Tensor) else lambda_c
    dissonance = None
    if isinstance(weights, torch.Tensor) or weights > 0:
        dissonance = terms if family == NEW_ERROR else dissonance_terms(
            h2_out, h1_out, target, family=family, base=base, num_classes=num_classes)
    mask = support_mask(h1_out, target, base=base, discriminant_pivot=discriminant_pivot)
    return _combine(terms, dissonance, mask, weights, reduction)
