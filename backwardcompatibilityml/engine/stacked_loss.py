"""The K member losses of a batch, for a stacked model's training loop."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..class_softmax import laid_out_as
from ..evaluation import DatasetReference, RowAlignedOutputs
from ..loss.functional import member_weights, stacked_compatibility_loss
from ..loss.linear_form import (
    LINEAR_BASES, LINEAR_REDUCTIONS, InstanceCoefficients, family_lambdas, instance_coefficients,
    linear_form_loss, linear_weights,
)
from .jobs import TrainingJob

__all__ = ["StackedLoss", "by_family", "non_finite_members", "TABLE_LIMIT_BYTES", "KEPT_LIMIT_BYTES"]

#: Largest table of per-instance coefficients (``3 * n * C`` values) kept for a training set.
TABLE_LIMIT_BYTES = 256 * 2 ** 20
#: Most bytes of per-batch weights (``K * N * C`` values a batch) kept for the next epochs.
KEPT_LIMIT_BYTES = 256 * 2 ** 20


def non_finite_members(numbers: List[float], members: Optional[Sequence[int]] = None) -> List[int]:
    """The indices among ``members`` whose number is NaN or infinite.

    When every member is asked, one sum checks them all (NaN and infinities
    carry into it); a sum that is not finite, or a subset of the members,
    has them checked one by one.

    Parameters
    ----------
    numbers : list of float
        One number per member (the K losses of a step).
    members : sequence of int, optional
        The indices to check (the members still training); all by default.

    Returns
    -------
    list of int
        The indices, in the order of ``members``.
    """
    if members is None or len(members) == len(numbers):
        if math.isfinite(sum(numbers)):
            return []
        members = range(len(numbers)) if members is None else members
    return [k for k in members if not math.isfinite(numbers[k])]


def by_family(jobs: Sequence[TrainingJob]) -> List[TrainingJob]:
    """``jobs`` reordered so that the jobs of one family are next to each other (stable, by family index)."""
    return sorted(jobs, key=lambda job: job.family_index)


class StackedLoss:
    """The K member losses ``(K,)`` of a batch from the stacked outputs ``(K, N, ...)``.

    **Linear form.** When every member's loss has the same multi-class base
    (``"nll"``, ``"cross-entropy"`` or ``"kl-divergence"``) and reduction
    (``"mean"`` or ``"sum"``), the losses are one linear form in h2's
    log-probabilities (:mod:`~backwardcompatibilityml.loss.linear_form`), a
    handful of operations for all members whatever their families and
    lambda_c. Its per-instance coefficients are computed once, for every row
    of the training set's reference (from h1's stored outputs and the
    labels), when the table fits :data:`TABLE_LIMIT_BYTES`; a batch then
    only gathers its rows and neither reads h1's outputs nor its labels.
    Otherwise they are computed per batch. The members' weights of a batch
    are kept by the batch's instance ids (which identify instances, as for
    h1's stored outputs), up to :data:`KEPT_LIMIT_BYTES`, so that from the
    second epoch on a batch's loss is a multiply and a sum. Should the linear form give a value
    that is not finite, the step's losses are recomputed term by term, which
    masks infinite log-probabilities off the support as the loss classes do
    (this reads the values: on a GPU, a synchronisation per step).

    **Term by term** (other losses): ``stacked_compatibility_loss``, one call
    for families that share their base loss and its settings (the usual New
    Error and Strict Imitation pair), else one call per family.

    Parameters
    ----------
    jobs : sequence of TrainingJob
        The members, in stack order, the members of a family next to each
        other (see :func:`by_family`): a family then reads a view of the
        stacked outputs, not a copy.
    losses : mapping of str to CompatibilityLoss
        One loss object per family name (built on the functional core): its
        ``prepare_target``, ``adapt`` and ``functional_arguments`` are used.
    device : torch.device
        Where the stacked outputs live.
    dtype : torch.dtype
        Floating dtype of h2's outputs.
    reference : DatasetReference, optional
        The training set's reference: its row index and h1's stored outputs
        (for the table of coefficients), and ``reference.outputs.for_batch``
        for h1's outputs of a batch. Without it, ``__call__`` must be given
        h1's outputs.
    """

    def __init__(self, jobs: Sequence[TrainingJob], losses: Mapping[str, Any], device: torch.device,
                 dtype: torch.dtype = torch.float32, reference: Optional[DatasetReference] = None) -> None:
        if list(jobs) != by_family(jobs):
            raise ValueError("the jobs of a stacked model must be grouped by family (see by_family)")
        self.size = len(jobs)
        self.device = device
        self.first = losses[jobs[0].family]
        self.reference = reference
        runs = [(family, sum(1 for job in jobs if job.family == family)) for family in dict.fromkeys(
            job.family for job in jobs)]
        # A job's family names its slot ("new-error"); the loss object in that slot says which loss it
        # computes (a Strict Imitation class may sit in either slot): the terms follow the loss object.
        computes = {family: losses[family].functional_arguments()["family"] for family, _count in runs}
        settings = {}
        for family, _count in runs:
            arguments = dict(losses[family].functional_arguments())
            del arguments["family"]
            settings[family] = arguments
        shared = all(value == settings[runs[0][0]] for value in settings.values())
        first = settings[runs[0][0]]
        #: ``(K, 2)`` lambda_c by family when the linear form applies, else None.
        self.lambdas: Optional[torch.Tensor] = None
        self.table: Optional[InstanceCoefficients] = None
        self._kept: Dict[Tuple[bytes, Tuple[int, ...]], Tuple[torch.Tensor, Optional[torch.Tensor]]] = {}
        self._kept_bytes = 0
        if shared and first["base"] in LINEAR_BASES and first["reduction"] in LINEAR_REDUCTIONS:
            self.lambdas = family_lambdas([job.lambda_c for job in jobs], [computes[job.family] for job in jobs],
                                          dtype=dtype, device=device)
            self.base, self.reduction, self.num_classes = first["base"], first["reduction"], first["num_classes"]
            self.table = self._table(dtype)
        lambdas = torch.tensor([job.lambda_c for job in jobs], dtype=torch.float64, device=device)
        # (start, stop, weights, arguments) per call of the term-by-term loss
        self.calls = []
        start = 0
        for family, count in ([(tuple(runs), self.size)] if shared else runs):
            stop = start + count
            weights = member_weights(lambdas[start:stop], torch.empty(count, 1, dtype=dtype, device=device))
            if isinstance(family, str):
                settings_of, computed = settings[family], computes[family]
            else:  # one call for every run: (family computed, count) per run
                settings_of, computed = settings[runs[0][0]], tuple((computes[f], n) for f, n in family)
            self.calls.append((start, stop, weights, {**settings_of, "family": computed}))
            start = stop

    def _table(self, dtype: torch.dtype) -> Optional[InstanceCoefficients]:
        """The coefficients of every row of the training reference, or None (no stored outputs, too large)."""
        reference = self.reference
        if reference is None or not isinstance(reference.outputs, RowAlignedOutputs):
            return None
        stored = reference.outputs.stored()
        if stored is None:
            return None
        h1_out = self.first.adapt(stored, "h1").detach().to(self.device)
        if h1_out.dim() != 2 or h1_out.shape[0] != len(reference):
            return None
        if 3 * h1_out.numel() * torch.finfo(dtype).bits // 8 > TABLE_LIMIT_BYTES:
            return None
        target = torch.tensor(reference.targets, dtype=torch.long, device=self.device)
        return instance_coefficients(h1_out, target, base=self.base, num_classes=self.num_classes, dtype=dtype)

    def __call__(self, h2_out: torch.Tensor, ids: Optional[torch.Tensor], targets: torch.Tensor,
                 inputs: Any = None, h1_output: Any = None) -> torch.Tensor:
        """Member losses ``(K,)``.

        Parameters
        ----------
        h2_out : Tensor
            The members' adapted outputs, ``(K, N, ...)``.
        ids : Tensor or None
            The batch's instance ids (rows of the coefficient table, and h1's
            stored outputs).
        targets : Tensor
            The batch's labels.
        inputs : Any, optional
            The batch's inputs: h1 runs on them for ids the reference lacks.
        h1_output : Any, optional
            h1's output on the batch, when known (else looked up by ``ids``).
        """
        return self.with_numbers(h2_out, ids, targets, inputs, h1_output)[0]

    def with_numbers(self, h2_out: torch.Tensor, ids: Optional[torch.Tensor], targets: torch.Tensor,
                     inputs: Any = None, h1_output: Any = None,
                     live: Optional[Sequence[int]] = None) -> Tuple[torch.Tensor, List[float]]:
        """The member losses, as in :meth:`__call__`, and their values read once to the host (a list of K floats).

        The training loop reports and checks these numbers; reading them here
        (where the linear form needs them anyway) makes one read per step.
        ``live`` lists the members whose values still count (default: all):
        a member that has failed (a NaN loss) and left the sum does not send
        every later step down the term-by-term path.
        """
        if h2_out.shape[1] != targets.shape[0]:
            raise ValueError(f"h2 returned {h2_out.shape[1]} rows for a batch of {targets.shape[0]} targets")
        if self.lambdas is not None:
            values = linear_form_loss(h2_out, *self._weights(ids, targets, inputs, h1_output, h2_out))
            numbers = values.detach().cpu().tolist()
            if not non_finite_members(numbers, live):
                return values, numbers
        values = self._term_by_term(h2_out, ids, targets, inputs, h1_output)
        return values, values.detach().cpu().tolist()

    def _weights(self, ids: Optional[torch.Tensor], targets: torch.Tensor, inputs: Any, h1_output: Any,
                 like: torch.Tensor) -> Tuple[torch.Tensor, Optional[torch.Tensor]]:
        """The linear form's weights and offsets of a batch, kept by its ids for the next epochs.

        The weights take the memory layout of ``like`` (h2's log-probabilities):
        the gradient that reaches the softmax is the weights, and in its
        output's layout the softmax's backward reads it without a copy.
        """
        key = None
        if ids is not None and h1_output is None:
            key = (ids.detach().cpu().numpy().tobytes(), like.stride())
            known = self._kept.get(key)
            if known is not None:
                return known
        weights, offsets = linear_weights(self._instances(ids, targets, inputs, h1_output), self.lambdas,
                                          reduction=self.reduction)
        if weights.shape[-1] != like.shape[-1]:
            raise ValueError(f"h2 returned {like.shape[-1]} classes per row where h1's outputs (or num_classes) "
                             f"hold {weights.shape[-1]}")
        found = (laid_out_as(weights, like), offsets)
        size = found[0].numel() * found[0].element_size()
        if key is not None and self._kept_bytes + size <= KEPT_LIMIT_BYTES:
            self._kept[key] = found
            self._kept_bytes += size
        return found

    def _instances(self, ids: Optional[torch.Tensor], targets: torch.Tensor, inputs: Any,
                   h1_output: Any) -> InstanceCoefficients:
        if self.table is not None and ids is not None and h1_output is None:
            assert self.reference is not None
            try:
                rows = self.reference.row_array(ids)
            except ValueError:  # an instance the reference lacks: from the batch itself
                pass
            else:
                return self.table.select(torch.from_numpy(rows).to(self.device))
        target, h1_out = self._batch(ids, targets, inputs, h1_output)
        assert self.lambdas is not None
        return instance_coefficients(h1_out, target, base=self.base, num_classes=self.num_classes,
                                     dtype=self.lambdas.dtype)

    def _batch(self, ids: Optional[torch.Tensor], targets: torch.Tensor, inputs: Any, h1_output: Any):
        """The checked target and h1's adapted output of a batch."""
        if h1_output is None:
            if self.reference is None or ids is None:
                raise ValueError("h1_output is required without a training reference and instance ids")
            h1_output = self.reference.outputs.for_batch(ids, inputs)
        target = self.first.prepare_target(targets)
        h1_out = self.first.adapt(h1_output, "h1").detach()
        if h1_out.shape[0] != target.shape[0]:
            raise ValueError(f"h1 returned {h1_out.shape[0]} rows for a batch of {target.shape[0]} targets")
        return target, h1_out

    def _term_by_term(self, h2_out: torch.Tensor, ids: Optional[torch.Tensor], targets: torch.Tensor,
                      inputs: Any, h1_output: Any) -> torch.Tensor:
        target, h1_out = self._batch(ids, targets, inputs, h1_output)
        if self.first.binary:
            target = target.to(h2_out.dtype)
        parts = [
            stacked_compatibility_loss(h2_out if stop - start == self.size else h2_out[start:stop], h1_out, target,
                                       weights, **arguments)
            for start, stop, weights, arguments in self.calls
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)
