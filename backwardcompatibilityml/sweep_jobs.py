"""A sweep's unit of work and the executors that run it.

One training job is a plain function of its inputs: ``(lambda_c, family)``
plus the shared :class:`SweepContext` give a trained state and its two
evaluations (:func:`run_training_job`). The :class:`~backwardcompatibilityml.
sweep_management.SweepManager` hands jobs to an executor and persists each
result as it arrives. :class:`InThreadExecutor` runs them one after the other
in the calling thread; a vectorised executor (several lambda_c trained as one
stacked model) or a distributed one can implement the same ``map``.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, Mapping, Optional, Protocol, Tuple

import torch

from .data import ReferenceOutputs
from .evaluation import evaluate_models, metric_name
from .training import train_compatible_model

__all__ = [
    "NEW_ERROR", "STRICT_IMITATION", "FAMILIES", "TrainingJob", "JobResult", "SweepContext",
    "ProgressSink", "run_training_job", "InThreadExecutor",
]

NEW_ERROR = "new-error"
STRICT_IMITATION = "strict-imitation"
FAMILIES = (NEW_ERROR, STRICT_IMITATION)


@dataclass(frozen=True)
class TrainingJob:
    """Train h2 for one ``(lambda_c, family)``; ``lambda_index`` is its place in the grid."""

    lambda_index: int
    lambda_c: float
    family: str

    @property
    def datapoint_indices(self) -> Tuple[int, int]:
        """Indices of its training-set and test-set datapoints."""
        base = 4 * self.lambda_index + 2 * FAMILIES.index(self.family)
        return base, base + 1


@dataclass
class JobResult:
    """A trained state and its evaluation records on the training and test set."""

    job: TrainingJob
    model_state: Dict[str, torch.Tensor]
    evaluations: Tuple[Dict[str, Any], Dict[str, Any]]


@dataclass
class SweepContext:
    """Everything a training job reads; shared by all jobs of a sweep, never modified by them."""

    h2: torch.nn.Module
    training_set: Iterable
    test_set: Iterable
    references: Tuple[ReferenceOutputs, ReferenceOutputs]
    number_of_epochs: int
    optimizer_class: type
    optimizer_kwargs: Mapping[str, Any]
    loss_classes: Mapping[str, type]
    loss_kwargs: Mapping[str, Mapping[str, Any]]
    device: torch.device
    performance_metric: Callable
    get_instance_metadata: Callable[[int], str]
    seed: int = 0
    h1_performances: Dict[str, Optional[float]] = field(default_factory=lambda: {"training": None, "testing": None})


class ProgressSink(Protocol):
    """What a job reports to while it runs."""

    def begin(self, job: TrainingJob) -> None: ...
    def step(self, loss: float) -> None: ...
    def batch(self) -> None: ...
    def should_stop(self) -> bool: ...


def run_training_job(job: TrainingJob, context: SweepContext, progress: ProgressSink) -> JobResult:
    """Train a fresh deep copy of ``context.h2`` for ``job`` and evaluate it on both datasets.

    The copy starts from the same weights and the same random state
    (``context.seed``) for every job. Nothing of the
    context is changed, except that h1's output caches and h1's performance
    per dataset are filled on first use.
    """
    progress.begin(job)
    devices = [context.device.index if context.device.index is not None else torch.cuda.current_device()] \
        if context.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(context.seed)  # the same batch order and random draws for every job
        return _train_and_evaluate(job, context, progress)


def _train_and_evaluate(job: TrainingJob, context: SweepContext, progress: ProgressSink) -> JobResult:
    h1 = context.references[0].model
    h2 = copy.deepcopy(context.h2).to(context.device)
    loss_class = context.loss_classes[job.family]
    pivot = context.loss_kwargs[job.family].get("discriminant_pivot", 0.5)
    train_compatible_model(
        h1, h2, context.training_set,
        loss_class=loss_class,
        lambda_c=job.lambda_c,
        optimizer_class=context.optimizer_class,
        optimizer_kwargs=context.optimizer_kwargs,
        number_of_epochs=context.number_of_epochs,
        loss_kwargs=context.loss_kwargs[job.family],
        device=context.device,
        reference_outputs=context.references[0],
        on_step=progress.step,
        should_stop=progress.should_stop,
    )
    evaluations = []
    for dataset_name, dataset, reference, index in zip(
        ("training", "testing"), (context.training_set, context.test_set), context.references, job.datapoint_indices
    ):
        record = evaluate_models(
            h2, dataset, reference,
            device=context.device,
            performance_metric=context.performance_metric,
            h1_performance=context.h1_performances[dataset_name],
            get_instance_metadata=context.get_instance_metadata,
            discriminant_pivot=pivot,
            on_batch=progress.batch,
            should_stop=progress.should_stop,
        )
        context.h1_performances[dataset_name] = record["h1_performance"]
        record.update({
            "datapoint_index": index,
            "lambda_c": job.lambda_c,
            "training": dataset_name == "training",
            "testing": dataset_name == "testing",
            "new-error": job.family == NEW_ERROR,
            "strict-imitation": job.family == STRICT_IMITATION,
            "performance_metric": metric_name(context.performance_metric),
        })
        evaluations.append(record)
    state = {name: tensor.detach().cpu() for name, tensor in h2.state_dict().items()}
    return JobResult(job, state, (evaluations[0], evaluations[1]))


class InThreadExecutor:
    """Runs jobs one after the other in the calling thread, yielding each result as it is done."""

    def map(
        self,
        run: Callable[[TrainingJob], JobResult],
        jobs: Iterable[TrainingJob],
    ) -> Iterator[JobResult]:
        for job in jobs:
            yield run(job)
