"""Train the K members of a stacked model on the same batches, each with its own lambda_c and family.

The K member losses come from :class:`~.stacked_loss.StackedLoss` (one
linear form in h2's log-probabilities for the multi-class losses, else
:func:`~backwardcompatibilityml.loss.functional.stacked_compatibility_loss`
with ``lambda_c`` as a ``(K,)`` tensor). Their *sum* is
back-propagated: the gradient of member ``k``'s parameters is then exactly
the gradient of its own loss (a mean over K would scale every gradient by
``1/K``), and one element-wise optimizer over the stacked parameters makes
the same update as K separate optimizers.
"""

from __future__ import annotations

import traceback
from typing import Any, Callable, Dict, Mapping, Optional, Sequence

import torch

from ..data import iterate_batches
from ..training import NonFiniteLossError, TrainingCancelled, note_training_step
from .context import PreparedContext
from .errors import public_error_message
from .events import EventSink, JobFailed, StepDone
from .jobs import TrainingJob
from .stacked_loss import StackedLoss, non_finite_members
from .stacking import StackedModel

__all__ = ["train_stacked", "job_failed"]


def job_failed(job: TrainingJob, error: BaseException) -> JobFailed:
    """The :class:`~.events.JobFailed` event of ``job`` for ``error`` (outside an ``except`` block too)."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    return JobFailed(job, public_error_message(error), text)


def train_stacked(
    stacked: StackedModel,
    jobs: Sequence[TrainingJob],
    context: PreparedContext,
    losses: Mapping[str, Any],
    sink: EventSink,
    should_stop: Callable[[], bool],
    failures: Optional[Dict[int, BaseException]] = None,
) -> Dict[int, BaseException]:
    """Train every member of ``stacked`` for its job; return the failures by member index.

    A member whose loss becomes NaN or infinite fails alone (a
    :class:`~.events.JobFailed` is put at once): it leaves the sum of the
    losses and the other members train on, unaffected. Such failures are
    entered in ``failures`` (a new dict when None) as they happen, so that a
    caller that passes its own dict knows them even when a later error or a
    cancel ends the training.

    Raises
    ------
    TrainingCancelled
        When ``should_stop()`` turns true (checked before every step).
    Exception
        Whatever a training step raises, with a note of where it was
        (:func:`~backwardcompatibilityml.training.note_training_step`).
    """
    device = context.device
    optimizer = context.optimizer_class(stacked.parameters(), **dict(context.optimizer_kwargs))
    dtype = next(iter(stacked.params.values())).dtype
    member_losses = StackedLoss(jobs, losses, device, dtype if dtype.is_floating_point else torch.float32,
                                reference=context.references["training"])
    adapt = next(iter(losses.values())).adapt
    forward = stacked.stacked_forward(lambda output: adapt(output, "h2"),
                                      lambda outputs: adapt(outputs, "h2", members=True))
    alive = torch.ones(len(jobs), dtype=torch.bool, device=device)
    alive_jobs = list(range(len(jobs)))
    all_jobs = tuple(jobs)
    failures = {} if failures is None else failures
    stacked.train(True)
    try:
        step = 0
        for epoch in range(context.number_of_epochs):
            for batch, (ids, inputs, targets) in enumerate(iterate_batches(context.training_set, device)):
                if should_stop():
                    raise TrainingCancelled()
                optimizer.zero_grad(set_to_none=True)
                try:
                    h2_out = forward(stacked.params, stacked.buffers, inputs)
                    values, numbers = member_losses.with_numbers(h2_out, ids, targets, inputs, live=alive_jobs)
                    # The sum, not the mean: each member's gradient is that of its own loss.
                    total = values if len(alive_jobs) == len(jobs) else torch.where(
                        alive, values, torch.zeros_like(values))
                    total.sum().backward()
                    optimizer.step()
                except Exception as error:
                    note_training_step(error, epoch, batch, step, ids, stacked.module)
                    raise
                step += 1
                for k in non_finite_members(numbers, alive_jobs):
                    failures[k] = NonFiniteLossError(
                        f"the training loss became {numbers[k]} at epoch {epoch + 1}, step {step} "
                        f"(lambda_c={jobs[k].lambda_c}); try a smaller learning rate"
                    )
                    sink.put(job_failed(jobs[k], failures[k]))
                    alive_jobs.remove(k)
                    alive[k] = False
                if not alive_jobs:
                    return failures
                if len(alive_jobs) == len(jobs):
                    sink.put(StepDone(all_jobs, tuple(numbers)))
                else:
                    sink.put(StepDone(tuple(jobs[k] for k in alive_jobs), tuple(numbers[k] for k in alive_jobs)))
    finally:
        stacked.train(False)
        optimizer.zero_grad(set_to_none=True)
    return failures
