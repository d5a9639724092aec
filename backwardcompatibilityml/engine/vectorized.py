"""The vectorized executor: several jobs of a sweep trained as one stacked model.

K jobs (any mix of lambda_c and loss family) become the K members of a
:class:`~.stacking.StackedModel`: ``torch.func.stack_module_state``-style
stacked parameters, a stacked forward, ordinary autograd, and *one*
optimizer of the sweep's class over the stacked parameters. The forward is
the vmap-free :class:`~.fused_forward.FusedForward` for models made of
linear layers and element-wise steps (once it has matched vmap on the first
batch), else a ``vmap`` of ``functional_call``; the executor's note names
the one in use. All members see the same batches, in the order every job sees
(the job's seed is set before the batches are drawn). The summed member
losses are back-propagated, so each member gets the gradient of its own loss,
and an element-wise optimizer (SGD with momentum or Nesterov, Adam, AdamW,
RMSprop, Adagrad, ... with weight decay) makes exactly the update K separate
trainings would: the trained weights equal the sequential executor's up to
floating-point rounding. Evaluation takes one stacked pass per batch for all
members.

**Rounding can be amplified** by optimizers that normalise each step (Adam,
AdamW, RMSprop, Adagrad, Rprop) on any weight whose gradient is, at some
step, about as small as the optimizer's ``eps`` or smaller: the stacked and
the one-model computations round differently, and the optimizer turns the
relative difference of a tiny gradient into a difference of steps of up to
``lr``. Always so for a parameter whose true gradient is zero (the bias of
a layer followed by BatchNorm: its gradient is only rounding noise; measured
0.08 apart on such a bias with Adam, lr 0.01, with predictions 7e-3 apart in
confidence; such a layer is usually built with ``bias=False``); by chance for
a weight whose gradient cancels almost exactly at one step (measured 1.8e-5
on one weight of a GELU MLP with Adam, lr 0.01, where the fused forward's
products rounded otherwise than the model's own). Both results are correct
trainings; with these optimizers, equality to 1e-5 is typical but not
guaranteed. SGD (with or without momentum) does not amplify rounding.

Jobs run in chunks that fit ``memory_budget_bytes`` (parameters, gradients,
optimizer state, buffers and activations per member) and
``max_parallel_models``. Results stream per chunk.

Where stacking does not apply, the executor says why (an
:class:`~.events.ExecutorNote` and a log line) and trains one job at a time
with :class:`~.executors.SequentialExecutor`:

* an optimizer not known to be element-wise (LBFGS, or any other class);
* a loss class not built on :mod:`backwardcompatibilityml.loss.functional`
  (a user subclass that overrides how the loss is computed);
* a model ``torch.func.vmap`` cannot run (tried on the first batch).

BatchNorm is handled: every member keeps its own running statistics. A metric
that runs the model (``metric(model, dataset, device)`` without
``from_predictions``) is given a stand-alone copy of each member.

**Dropout** and other random layers draw *different* random numbers for every
member (``vmap(randomness="different")``), whereas the sequential executor
gives every job the same draws (each job starts from the same seed). With
dropout the two executors' results therefore differ in the draws, not in
their distribution.
"""

from __future__ import annotations

import logging
import weakref
from collections import Counter
from typing import Callable, Dict, List, Optional, Sequence, Tuple

from ..random_state import kept_random_state, seeded_random_state
from ..training import TrainingCancelled
from ..validation import check_bool, check_positive_int
from .context import PreparedContext
from .events import EventSink, ExecutorNote, JobFinished, JobStarted
from .executors import SequentialExecutor
from .jobs import JobResult, TrainingJob
from .stacked_evaluation import evaluate_stacked
from .stacked_loss import by_family
from .stacked_training import job_failed, train_stacked
from .stacking import StackedModel
from .vmap_support import (
    chunk_sizes, default_memory_budget, family_losses, first_batch, fused_applies, loss_reason, member_bytes,
    model_reason, optimizer_reason, trace_reason,
)

__all__ = ["VectorizedExecutor"]

logger = logging.getLogger(__name__)


class VectorizedExecutor:
    """Trains several jobs at once as one stacked model (see the module's description).

    Parameters
    ----------
    max_parallel_models : int, optional
        At most this many jobs per stacked model (default: as many as the
        memory budget allows).
    memory_budget_bytes : int, optional
        Memory a chunk may use (default: half of the free memory of the device,
        or of the machine for the CPU).
    fused_forward : bool, default True
        Run models made of linear layers and element-wise steps through the
        vmap-free :class:`~.fused_forward.FusedForward` (one matrix product
        for all members where they share the input) once it has matched vmap
        on the first batch; ``False`` always uses ``vmap``.

    Examples
    --------
    >>> manager = SweepManager(..., executor=VectorizedExecutor(max_parallel_models=16))
    """

    name = "vectorized"

    def __init__(self, max_parallel_models: Optional[int] = None,
                 memory_budget_bytes: Optional[int] = None, fused_forward: bool = True) -> None:
        self.fused_forward = check_bool(fused_forward, "fused_forward")
        self.max_parallel_models = None if max_parallel_models is None else check_positive_int(
            max_parallel_models, "max_parallel_models")
        self.memory_budget_bytes = None if memory_budget_bytes is None else check_positive_int(
            memory_budget_bytes, "memory_budget_bytes")
        # The last context checked (held weakly: a finished sweep's data is not kept alive by the executor).
        self._checked: Optional[Tuple["weakref.ref[PreparedContext]", Optional[str], int, bool]] = None

    def __repr__(self) -> str:
        return (f"VectorizedExecutor(max_parallel_models={self.max_parallel_models}, "
                f"memory_budget_bytes={self.memory_budget_bytes}, fused_forward={self.fused_forward})")

    # -- applicability -------------------------------------------------------------------
    def applies(self, context: PreparedContext) -> Optional[str]:
        """None when the sweep's jobs can be stacked, else the reason they cannot."""
        return self._check(context)[0]

    def uses_fused_forward(self, context: PreparedContext) -> bool:
        """Whether this sweep's members run through the vmap-free fused forward (see :mod:`.fused_forward`)."""
        return self._check(context)[2]

    def _check(self, context: PreparedContext) -> Tuple[Optional[str], int, bool]:
        if self._checked is not None and self._checked[0]() is context:
            return self._checked[1], self._checked[2], self._checked[3]
        reason = optimizer_reason(context.optimizer_class) or model_reason(context.h2) or loss_reason(
            context.families, context.h1, context.h2)
        activation = 0
        fused = False
        if reason is None:
            binary = family_losses(context.families[:1], context.h1, context.h2)[context.families[0].name].binary
            if binary and len({family.discriminant_pivot for family in context.families}) > 1:
                # A sweep's checks refuse this (preflight); a context built by hand may still hold it.
                reason = "the families use different discriminant pivots"
        if reason is None:
            # The probes shuffle (a loader's first batch) and draw weights: the caller's random state is kept.
            with kept_random_state(context.device):
                batch = first_batch(context.training_set, context.device)  # one pass started serves both probes
                reason, activation = trace_reason(context.h2, batch, context.device, binary,
                                                  context.discriminant_pivot)
                fused = self.fused_forward and reason is None and fused_applies(context.h2, batch, context.device)
        self._checked = (weakref.ref(context), reason, activation, fused)
        return reason, activation, fused

    def chunk_limit(self, context: PreparedContext) -> int:
        """How many jobs one stacked model may hold for this sweep (memory budget and ``max_parallel_models``)."""
        _, activation, _ = self._check(context)
        per_member = max(1, member_bytes(context.h2, context.optimizer_class, context.optimizer_kwargs, activation))
        budget = self.memory_budget_bytes if self.memory_budget_bytes is not None else default_memory_budget(
            context.device)
        limit = max(1, budget // per_member)
        if self.max_parallel_models is not None:
            limit = min(limit, self.max_parallel_models)
        return int(limit)

    # -- running -------------------------------------------------------------------------
    def run(
        self,
        jobs: Sequence[TrainingJob],
        context: PreparedContext,
        sink: EventSink,
        should_stop: Callable[[], bool],
    ) -> None:
        """Run every job, K at a time; falls back to :class:`SequentialExecutor` where stacking does not apply.

        Raises
        ------
        TrainingCancelled
            When ``should_stop()`` turns true (checked before every optimizer step).
        Exception
            The first failure of a job, after the chunk's other jobs have been reported.
        """
        reason = self.applies(context)
        if reason is not None:
            message = f"vectorized training does not apply: {reason}; training one model at a time"
            logger.warning("%s", message)
            sink.put(ExecutorNote(message, executor=SequentialExecutor.name))
            SequentialExecutor().run(jobs, context, sink, should_stop)
            return
        chunks = self._chunks(jobs, context)
        if chunks:
            message = (f"vectorized training: {len(jobs)} trainings as {_describe_chunks(chunks)} "
                       f"({'fused linear layers' if self.uses_fused_forward(context) else 'vmap'})")
            logger.info("%s", message)
            sink.put(ExecutorNote(message, executor=self.name))
        for chunk in chunks:
            if should_stop():
                raise TrainingCancelled()
            self._run_chunk(chunk, context, sink, should_stop)

    def _chunks(self, jobs: Sequence[TrainingJob], context: PreparedContext) -> List[List[TrainingJob]]:
        """Jobs grouped by seed (members must see the same batches), then cut to the chunk limit."""
        by_seed: Dict[int, List[TrainingJob]] = {}
        for job in jobs:
            by_seed.setdefault(job.seed, []).append(job)
        limit = self.chunk_limit(context) if jobs else 1
        chunks = []
        for group in by_seed.values():
            start = 0
            for size in chunk_sizes(len(group), limit):
                chunks.append(by_family(group[start:start + size]))
                start += size
        return chunks

    def _run_chunk(self, chunk: List[TrainingJob], context: PreparedContext, sink: EventSink,
                   should_stop: Callable[[], bool]) -> None:
        sink.put(JobStarted(tuple(chunk)))
        reported: set = set()  # members whose JobFinished or JobFailed has been put
        failures: Dict[int, BaseException] = {}  # train_stacked enters (and reports) each as it happens
        try:
            with seeded_random_state(chunk[0].seed, context.device):
                losses = family_losses([context.family(name) for name in dict.fromkeys(j.family for j in chunk)],
                                       context.h1, context.h2)
                stacked = StackedModel(context.h2, len(chunk), context.device,
                                       fused=self.uses_fused_forward(context))
                train_stacked(stacked, chunk, context, losses, sink, should_stop, failures)
                members = [k for k in range(len(chunk)) if k not in failures]
                outputs, eval_failures = evaluate_stacked(
                    stacked, chunk, members, context, sink, should_stop, context.discriminant_pivot)
            for k, error in eval_failures.items():
                sink.put(job_failed(chunk[k], error))
                reported.add(k)
            failures.update(eval_failures)
            for k in members:
                if k not in failures:
                    sink.put(JobFinished(JobResult(chunk[k], stacked.member_state(k), outputs[k])))
                    reported.add(k)
        except TrainingCancelled:
            raise
        except Exception as error:
            for k, job in enumerate(chunk):
                if k not in reported and k not in failures:
                    sink.put(job_failed(job, error))
            raise
        if failures:
            raise failures[min(failures)]


def _describe_chunks(chunks: Sequence[Sequence[TrainingJob]]) -> str:
    """``"1 stacked model of 10"``, ``"3 stacked models of 4, 4, 3"``; past four, counted by size."""
    sizes = [len(chunk) for chunk in chunks]
    noun = f"{len(sizes)} stacked model{'s' if len(sizes) > 1 else ''}"
    if len(sizes) <= 4:
        return f"{noun} of {', '.join(map(str, sizes))}"
    counts = sorted(Counter(sizes).items(), reverse=True)
    return f"{noun} ({', '.join(f'{count} of {size}' for size, count in counts)})"
