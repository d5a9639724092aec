"""The multi-class compatibility losses as linear forms in h2's log-probabilities.

For the ``"nll"``, ``"cross-entropy"`` and ``"kl-divergence"`` bases, the
loss of both families is linear in h2's log-probabilities ``L`` (shape
``(K, N, C)`` for ``K`` stacked members):

.. math::

    \\mathrm{loss}_k = o_k + \\sum_{i, c} W_{kic} L_{kic}, \\qquad W = -M

with coefficients that depend only on the batch (the labels, h1's outputs)
and on the member (its ``lambda_c`` and family), never on h2. Writing
``A[i] = one_hot(y_i)``, ``s_i = [argmax p1_i == y_i]`` (the support) and
``a`` for ``1 / N`` (``reduction="mean"``) or 1 (``"sum"``):

* every member's base term is ``-L[i, y_i]``, so ``M`` gets ``a A``
  (``KL(one_hot(y) || p2)`` equals the NLL, since ``0 log 0 = 0``);
* New Error's dissonance is the base term on the support:
  ``+ a lambda_c s_i A[i]``;
* Strict Imitation's dissonance ``-sum_c p1[i, c] L[i, c]`` on the support:
  ``+ a lambda_c s_i p1[i]``; with the KL base it also adds the constant
  ``a lambda_c sum_i s_i sum_c p1 log p1`` (h1's negative entropy) to ``o_k``.

``W`` is also the gradient of the losses with respect to ``L``.

The per-instance parts (:func:`instance_coefficients`: ``A``, ``s A`` and
``s p1``, and the negative entropy) do not depend on the members either, so
a training loop can compute them once per instance and only gather them per
batch; :func:`linear_weights` then makes ``W`` for all members in one
matrix product with the ``(K, 2)`` lambda_c by family (:func:`family_lambdas`).
A step of K members so needs a handful of operations for the loss (a
multiply and a sum when ``W`` is kept per batch), where the term-by-term
functions of :mod:`.functional` need about thirty.

The values equal :func:`.functional.stacked_compatibility_loss` up to
floating-point rounding, with one difference: an infinite log-probability of
h2 where ``W`` is 0 (a class neither the label nor h1 puts mass on, or an
instance off the support) makes the linear form NaN where the term-by-term
loss masks it. A caller that must keep those semantics computes the
term-by-term loss when the linear form is not finite
(:class:`~backwardcompatibilityml.engine.stacked_loss.StackedLoss` does).
"""

from __future__ import annotations

from typing import NamedTuple, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

from ..validation import check_lambda_c
from .functional import FAMILIES, STRICT_IMITATION, check_class_indices, check_kl_classes

__all__ = [
    "LINEAR_BASES", "LINEAR_REDUCTIONS", "InstanceCoefficients", "family_lambdas", "instance_coefficients",
    "linear_weights", "linear_form_loss",
]

LINEAR_BASES: Tuple[str, ...] = ("nll", "cross-entropy", "kl-divergence")
LINEAR_REDUCTIONS: Tuple[str, ...] = ("mean", "sum")


class InstanceCoefficients(NamedTuple):
    """The member-independent coefficients of ``N`` instances.

    Attributes
    ----------
    rows : Tensor
        Shape ``(3, N, C)``: the labels' one-hot ``A``, ``s A`` and ``s p1``
        (``s`` the support, ``p1`` h1's probabilities).
    negative_entropy : Tensor or None
        Shape ``(N,)``: ``s_i sum_c p1 log p1`` for the KL base, else None.
    """

    rows: torch.Tensor
    negative_entropy: Optional[torch.Tensor]

    def select(self, index: torch.Tensor) -> "InstanceCoefficients":
        """The coefficients of the instances at ``index`` (a 1-D ``int64`` tensor on their device)."""
        entropy = None if self.negative_entropy is None else self.negative_entropy.index_select(0, index)
        return InstanceCoefficients(self.rows.index_select(1, index), entropy)


def family_lambdas(lambda_c: Sequence[float], families: Sequence[str], *, dtype: torch.dtype = torch.float32,
                   device: Optional[torch.device] = None) -> torch.Tensor:
    """The ``(K, 2)`` matrix of the members' lambda_c by family, as :func:`linear_weights` takes it.

    Row ``k`` holds ``lambda_c[k]`` in the column of member ``k``'s family
    (``FAMILIES`` order: New Error, Strict Imitation) and 0 in the other.

    Raises
    ------
    ValueError
        If the sequences differ in length, a family is unknown or a lambda_c
        is negative or not finite (``TypeError`` if it is not a real number).
    """
    if len(lambda_c) != len(families):
        raise ValueError(f"lambda_c has {len(lambda_c)} values but families has {len(families)}")
    weights = torch.zeros(len(families), len(FAMILIES), dtype=torch.float64)
    for k, (value, family) in enumerate(zip(lambda_c, families)):
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        weights[k, FAMILIES.index(family)] = check_lambda_c(value, f"lambda_c[{k}]")
    return weights.to(dtype=dtype, device=device)


def instance_coefficients(
    h1_log_probs: torch.Tensor,
    target: torch.Tensor,
    *,
    base: str,
    num_classes: Optional[int] = None,
    dtype: Optional[torch.dtype] = None,
) -> InstanceCoefficients:
    """The member-independent coefficients of instances (see the module docstring).

    Parameters
    ----------
    h1_log_probs : Tensor
        h1's log-probabilities ``(N, C)``, a constant.
    target : Tensor
        Class indices ``(N,)``, ``int64``.
    base : {"nll", "cross-entropy", "kl-divergence"}
    num_classes : int, optional
        Required by ``"kl-divergence"`` (checked against ``C`` and the labels).
    dtype : torch.dtype, optional
        Of the coefficients (h2's dtype); default ``h1_log_probs``' dtype.

    Returns
    -------
    InstanceCoefficients

    Raises
    ------
    ValueError
        If ``base`` is unknown, the shapes disagree, a label lies outside
        ``[0, C)``, or (KL base) ``num_classes`` is missing or not ``C``.
    """
    if base not in LINEAR_BASES:
        raise ValueError(f"base must be one of {LINEAR_BASES}, got {base!r}")
    h1_log_probs = h1_log_probs.detach()
    if h1_log_probs.dim() != 2 or target.shape != h1_log_probs.shape[:1]:
        raise ValueError(f"h1_log_probs must have shape (N, C) and target (N,), got {tuple(h1_log_probs.shape)} "
                         f"and {tuple(target.shape)}")
    classes = h1_log_probs.shape[1]
    if base == "kl-divergence":
        check_kl_classes(classes, target, num_classes)
    check_class_indices(target, classes, "target")
    dtype = dtype or h1_log_probs.dtype
    log_p1 = h1_log_probs.to(dtype)
    label = F.one_hot(target, classes).to(dtype)
    support = (h1_log_probs.argmax(dim=-1) == target).to(dtype).unsqueeze(-1)
    p1 = log_p1.exp()
    rows = torch.stack([label, label * support, p1 * support])
    entropy = None
    if base == "kl-divergence":
        # KL(p1 || p2) = sum_c p1 log p1 - sum_c p1 log p2; the first sum is a constant of the instance,
        # where a class of probability 0 adds 0 (0 log 0 = 0; 0 * -inf would be NaN).
        products = p1 * log_p1
        terms = torch.where(p1 > 0, products, torch.zeros_like(products)).sum(dim=-1)
        entropy = torch.where(support.squeeze(-1) > 0, terms, torch.zeros_like(terms))
    return InstanceCoefficients(rows, entropy)


def linear_weights(
    instances: InstanceCoefficients, lambdas: torch.Tensor, *, reduction: str = "mean",
) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
    """The weights ``W = -M`` ``(K, N, C)`` and the offsets ``o`` ``(K,)`` (None when 0) of K members.

    Parameters
    ----------
    instances : InstanceCoefficients
        Of the batch's ``N`` instances, in the batch's order.
    lambdas : Tensor
        ``(K, 2)`` from :func:`family_lambdas`, the dtype and device of ``instances``.
    reduction : {"mean", "sum"}
        ``"mean"`` divides by ``N``.
    """
    if reduction not in LINEAR_REDUCTIONS:
        raise ValueError(f"reduction must be one of {LINEAR_REDUCTIONS}, got {reduction!r}")
    rows = instances.rows
    size, classes = rows.shape[1], rows.shape[2]
    scale = 1.0 / size if reduction == "mean" and size else 1.0
    # W = -(a A + a (lambda by family) @ (s A, s p1)): one product for all members.
    flat = torch.addmm(rows[0].reshape(1, -1), lambdas, rows[1:].reshape(2, -1), beta=-scale, alpha=-scale)
    offsets = None
    if instances.negative_entropy is not None:
        offsets = lambdas[:, FAMILIES.index(STRICT_IMITATION)] * (instances.negative_entropy.sum() * scale)
    return flat.reshape(lambdas.shape[0], size, classes), offsets


def linear_form_loss(h2_log_probs: torch.Tensor, weights: torch.Tensor,
                     offsets: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The member losses ``(K,)``: ``offsets + sum_{i,c} weights * h2_log_probs``.

    ``h2_log_probs`` and ``weights`` (from :func:`linear_weights`) have
    shape ``(K, N, C)``; the gradient with respect to ``h2_log_probs`` is
    ``weights``.
    """
    values = (h2_log_probs * weights).sum(dim=(-2, -1))
    return values if offsets is None else values + offsets
