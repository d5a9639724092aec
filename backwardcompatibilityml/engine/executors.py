"""Executors: how a list of jobs is run.

An executor receives plain :class:`~.jobs.TrainingJob` data and the immutable
:class:`~.context.PreparedContext`, and reports through an event sink
(:mod:`.events`): one :class:`~.events.JobFinished` or
:class:`~.events.JobFailed` per job it ran, and progress events on the way.
It checks ``should_stop`` before every optimizer step and raises
:class:`~backwardcompatibilityml.training.TrainingCancelled` when told to stop.

:class:`SequentialExecutor` trains one job after the other in the calling
thread. :class:`~.vectorized.VectorizedExecutor` trains several jobs as one
stacked model. :func:`resolve_executor` turns the user's choice
(``"auto"``, ``"sequential"``, ``"vectorized"`` or an executor object) into one.
"""

from __future__ import annotations

import copy
import traceback
from typing import Callable, Dict, Optional, Protocol, Sequence, Union, runtime_checkable

import torch

from ..evaluation import predict_outputs
from ..random_state import seeded_random_state
from ..training import TrainingCancelled, train_compatible_model
from .context import PreparedContext
from .errors import public_error_message
from .events import BatchDone, EventSink, JobFailed, JobFinished, JobStarted, StepDone
from .families import DATASETS
from .jobs import H2Outputs, JobResult, TrainingJob

__all__ = [
    "Executor", "SequentialExecutor", "resolve_executor", "EXECUTOR_NAMES", "model_state",
    "run_job",
]

EXECUTOR_NAMES = ("auto", "sequential", "vectorized")


@runtime_checkable
class Executor(Protocol):
    """What the runner needs of an executor."""

    name: str

    def applies(self, context: PreparedContext) -> Optional[str]:
        """None when this executor can run the sweep's jobs, else the reason it cannot."""

    def run(
        self,
        jobs: Sequence[TrainingJob],
        context: PreparedContext,
        sink: EventSink,
        should_stop: Callable[[], bool],
    ) -> None:
        """Run every job, reporting to ``sink``."""


def model_state(model: torch.nn.Module) -> Dict[str, torch.Tensor]:
    """A CPU copy of a model's ``state_dict``, for storing."""
    return {name: tensor.detach().to("cpu", copy=True) if isinstance(tensor, torch.Tensor) else copy.deepcopy(tensor)
            for name, tensor in model.state_dict().items()}  # extra state (get_extra_state) may be any object


def run_job(
    job: TrainingJob,
    context: PreparedContext,
    sink: EventSink,
    should_stop: Callable[[], bool],
) -> JobResult:
    """Train a fresh deep copy of h2 for one job, then evaluate it on both datasets.

    h2 runs forward once per training step and once per evaluation batch; h1's
    outputs come from the prepared context.
    """
    family = context.family(job.family)
    jobs = (job,)
    with seeded_random_state(job.seed, context.device):
        h2 = copy.deepcopy(context.h2).to(context.device)
        train_compatible_model(
            context.h1, h2, context.training_set,
            loss_class=family.loss_class,
            lambda_c=job.lambda_c,
            optimizer_class=context.optimizer_class,
            optimizer_kwargs=context.optimizer_kwargs,
            number_of_epochs=context.number_of_epochs,
            loss_kwargs=family.loss_kwargs,
            device=context.device,
            reference_outputs=context.references["training"].outputs,
            on_step=lambda loss: sink.put(StepDone(jobs, (loss,))),
            should_stop=should_stop,
        )
        outputs: Dict[str, H2Outputs] = {}
        for name in DATASETS:
            outputs[name] = predict_outputs(
                h2, context.dataset(name), context.references[name],
                device=context.device,
                performance_metric=context.performance_metric,
                discriminant_pivot=family.discriminant_pivot,
                on_batch=lambda: sink.put(BatchDone(jobs)),
                should_stop=should_stop,
            )
    return JobResult(job, model_state(h2), outputs)


def report_failure(sink: EventSink, job: TrainingJob, error: BaseException) -> None:
    """Put a :class:`~.events.JobFailed` for ``job`` (call inside the ``except`` block)."""
    sink.put(JobFailed(job, public_error_message(error), traceback.format_exc()))


class SequentialExecutor:
    """Trains the jobs one after the other in the calling thread.

    It applies to every sweep. A job that raises is reported as
    :class:`~.events.JobFailed` and its exception ends the run: the jobs
    finished before it stay stored.
    """

    name = "sequential"

    def applies(self, context: PreparedContext) -> Optional[str]:
        return None

    def run(
        self,
        jobs: Sequence[TrainingJob],
        context: PreparedContext,
        sink: EventSink,
        should_stop: Callable[[], bool],
    ) -> None:
        for job in jobs:
            if should_stop():
                raise TrainingCancelled()
            sink.put(JobStarted((job,)))
            try:
                result = run_job(job, context, sink, should_stop)
            except TrainingCancelled:
                raise
            except Exception as error:
                report_failure(sink, job, error)
                raise
            sink.put(JobFinished(result))

    def __repr__(self) -> str:
        return "SequentialExecutor()"


def resolve_executor(executor: Union[str, "Executor"]) -> "Executor":
    """The executor an ``executor=`` argument names.

    Parameters
    ----------
    executor : {"auto", "sequential", "vectorized"} or Executor
        ``"auto"`` trains several jobs as one stacked model where that applies
        (see :class:`~.vectorized.VectorizedExecutor`) and falls back to one at
        a time otherwise; an object with ``name``, ``applies`` and ``run`` is
        used as it is.

    Raises
    ------
    TypeError, ValueError
        If ``executor`` is neither a known name nor an executor.
    """
    if isinstance(executor, str):
        if executor == "sequential":
            return SequentialExecutor()
        if executor in ("auto", "vectorized"):
            from .vectorized import VectorizedExecutor

            return VectorizedExecutor()
        raise ValueError(f"executor must be one of {EXECUTOR_NAMES} or an executor object, got {executor!r}")
    if not isinstance(executor, Executor):
        raise TypeError(
            "executor must be 'auto', 'sequential', 'vectorized' or an object with name, applies() and run(), "
            f"got {type(executor).__name__}"
        )
    return executor
