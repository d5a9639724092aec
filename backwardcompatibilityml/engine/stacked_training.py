"""Train the K members of a stacked model on the same batches, each with its own lambda_c and family.

The K member losses come from
:func:`~backwardcompatibilityml.loss.functional.compatibility_loss` (one call
per family, ``lambda_c`` as a ``(K,)`` tensor). Their *sum* is
back-propagated: the gradient of member ``k``'s parameters is then exactly
the gradient of its own loss (a mean over K would scale every gradient by
``1/K``), and one element-wise optimizer over the stacked parameters makes
the same update as K separate optimizers.
"""

from __future__ import annotations

import math
import traceback
from typing import Any, Callable, Dict, List, Mapping, Sequence

import torch

from ..data import iterate_batches
from ..loss.functional import member_weights, stacked_compatibility_loss
from ..training import NonFiniteLossError, TrainingCancelled
from .context import PreparedContext
from .errors import public_error_message
from .events import EventSink, JobFailed, StepDone
from .jobs import TrainingJob
from .stacking import StackedModel

__all__ = ["StackedLoss", "by_family", "train_stacked", "job_failed"]


def job_failed(job: TrainingJob, error: BaseException) -> JobFailed:
    """The :class:`~.events.JobFailed` event of ``job`` for ``error`` (outside an ``except`` block too)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return JobFailed(job, public_error_message(error), text)


class StackedLoss:
    """The K member losses of a batch from ``stacked_compatibility_loss``.

    Families that share their base loss and its settings (the usual New Error
    and Strict Imitation pair) are served by one call; others by one call each.

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
    """

    def __init__(self, jobs: Sequence[TrainingJob], losses: Mapping[str, Any], device: torch.device,
                 dtype: torch.dtype = torch.float32) -> None:
        if list(jobs) != by_family(jobs):
            raise ValueError("the jobs of a stacked model must be grouped by family (see by_family)")
        self.size = len(jobs)
        self.first = losses[jobs[0].family]
        runs = [(family, sum(1 for job in jobs if job.family == family)) for family in dict.fromkeys(
            job.family for job in jobs)]
        settings = {}
        for family, _count in runs:
            arguments = dict(losses[family].functional_arguments())
            del arguments["family"]
            settings[family] = arguments
        lambdas = torch.tensor([job.lambda_c for job in jobs], dtype=torch.float64, device=device)
        shared = all(value == settings[runs[0][0]] for value in settings.values())
        # (start, stop, weights, arguments) per call
        self.calls = []
        start = 0
        for family, count in ([(tuple(runs), self.size)] if shared else runs):
            stop = start + count
            weights = member_weights(lambdas[start:stop], torch.empty(count, 1, dtype=dtype, device=device))
            name = family if isinstance(family, str) else runs[0][0]
            self.calls.append((start, stop, weights, {**settings[name], "family": family}))
            start = stop

    def __call__(self, h2_out: torch.Tensor, h1_output: Any, targets: torch.Tensor) -> torch.Tensor:
        """Member losses ``(K,)`` from the stacked adapted outputs ``h2_out`` (``(K, N, ...)``)."""
        target = self.first.prepare_target(targets)
        if self.first.binary:
            target = target.to(h2_out.dtype)
        h1_out = self.first.adapt(h1_output, "h1").detach()
        if h1_out.shape[0] != target.shape[0] or h2_out.shape[1] != target.shape[0]:
            raise ValueError(
                f"h1 returned {h1_out.shape[0]} rows and h2 {h2_out.shape[1]} rows for a batch of "
                f"{target.shape[0]} targets"
            )
        parts = [
            stacked_compatibility_loss(h2_out if stop - start == self.size else h2_out[start:stop], h1_out, target,
                                       weights, **arguments)
            for start, stop, weights, arguments in self.calls
        ]
        return parts[0] if len(parts) == 1 else torch.cat(parts)


def by_family(jobs: Sequence[TrainingJob]) -> List[TrainingJob]:
    """``jobs`` reordered so that the jobs of one family are next to each other (stable, by family index)."""
    return sorted(jobs, key=lambda job: job.family_index)


def train_stacked(
    stacked: StackedModel,
    jobs: Sequence[TrainingJob],
    context: PreparedContext,
    losses: Mapping[str, Any],
    sink: EventSink,
    should_stop: Callable[[], bool],
) -> Dict[int, BaseException]:
    """Train every member of ``stacked`` for its job; return the failures by member index.

    A member whose loss becomes NaN or infinite fails alone (a
    :class:`~.events.JobFailed` is put at once): it leaves the sum of the
    losses and the other members train on, unaffected.

    Raises
    ------
    TrainingCancelled
        When ``should_stop()`` turns true (checked before every step).
    """
    device = context.device
    optimizer = context.optimizer_class(stacked.parameters(), **dict(context.optimizer_kwargs))
    dtype = next(iter(stacked.params.values())).dtype
    member_losses = StackedLoss(jobs, losses, device, dtype if dtype.is_floating_point else torch.float32)
    adapt = next(iter(losses.values())).adapt
    forward = stacked.stacked_forward(lambda output: adapt(output, "h2"))
    reference = context.references["training"].outputs
    alive = torch.ones(len(jobs), dtype=torch.bool, device=device)
    alive_jobs = list(range(len(jobs)))
    failures: Dict[int, BaseException] = {}
    stacked.train(True)
    try:
        step = 0
        for epoch in range(context.number_of_epochs):
            for ids, inputs, targets in iterate_batches(context.training_set, device):
                if should_stop():
                    raise TrainingCancelled()
                optimizer.zero_grad(set_to_none=True)
                h2_out = forward(stacked.params, stacked.buffers, inputs)
                values = member_losses(h2_out, reference.for_batch(ids, inputs), targets)
                # The sum, not the mean: each member's gradient is that of its own loss.
                torch.where(alive, values, torch.zeros_like(values)).sum().backward()
                optimizer.step()
                step += 1
                numbers = values.detach().cpu().tolist()
                for k in list(alive_jobs):
                    if not math.isfinite(numbers[k]):
                        failures[k] = NonFiniteLossError(
                            f"the training loss became {numbers[k]} at epoch {epoch + 1}, step {step} "
                            f"(lambda_c={jobs[k].lambda_c}); try a smaller learning rate"
                        )
                        sink.put(job_failed(jobs[k], failures[k]))
                        alive_jobs.remove(k)
                        alive[k] = False
                if not alive_jobs:
                    return failures
                sink.put(StepDone(tuple(jobs[k] for k in alive_jobs), tuple(numbers[k] for k in alive_jobs)))
    finally:
        stacked.train(False)
        optimizer.zero_grad(set_to_none=True)
    return failures
