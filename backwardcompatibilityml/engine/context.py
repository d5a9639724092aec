"""The prepared context: what every job reads, computed once before the first job.

:func:`prepare` runs h1 once over each dataset (its outputs for the losses,
its predictions, confidences and performance for the evaluations) and checks
the datasets on the way (duplicate ids, empty sets, NaN outputs). The result
is immutable: executors share it, and nothing a job does changes it.

Jobs train on :func:`~backwardcompatibilityml.data.training_view` of the
training set (a DataLoader's own generator left out, so that the job's seed
decides the batch order) and h1's reference and every evaluation read
:func:`~backwardcompatibilityml.data.evaluation_view` of each dataset (every
instance once, in order, even from a loader that drops its last batch or
samples with replacement).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Callable, Iterable, Mapping, Optional, Tuple

import torch

from ..data import evaluation_view, training_view
from ..evaluation import DatasetReference, prepare_reference
from .config import SweepConfig
from .families import DATASETS, LossFamily

__all__ = ["PreparedContext", "prepare"]


@dataclass(frozen=True)
class PreparedContext:
    """Everything a training job reads; shared by all jobs of a sweep, never modified by them.

    Attributes
    ----------
    h2 : torch.nn.Module
        The template of h2; every job trains a deep copy.
    training_set : iterable
        What the jobs train on: the training set's
        :func:`~backwardcompatibilityml.data.training_view`.
    references : mapping of str to DatasetReference
        h1's fixed columns and output cache per dataset (``"training"``, ``"testing"``).
    evaluation_sets : mapping of str to iterable
        What h1's references were computed on and every evaluation reads:
        each dataset's :func:`~backwardcompatibilityml.data.evaluation_view`.
    """

    h1: torch.nn.Module
    h2: torch.nn.Module
    training_set: Iterable
    test_set: Iterable
    families: Tuple[LossFamily, ...]
    number_of_epochs: int
    optimizer_class: type
    optimizer_kwargs: Mapping[str, Any]
    device: torch.device
    performance_metric: Callable
    references: Mapping[str, DatasetReference]
    evaluation_sets: Mapping[str, Iterable]
    seed: int = 0

    def family(self, name: str) -> LossFamily:
        """The loss family called ``name``."""
        for family in self.families:
            if family.name == name:
                return family
        raise KeyError(name)

    def dataset(self, name: str) -> Iterable:
        """The dataset called ``"training"`` or ``"testing"``, as evaluations read it (every instance once)."""
        return self.evaluation_sets[name]

    @property
    def discriminant_pivot(self) -> float:
        """Threshold of binary models (from the first family's loss kwargs)."""
        return self.families[0].discriminant_pivot


def prepare(
    config: SweepConfig,
    *,
    on_batch: Optional[Callable[[], None]] = None,
    should_stop: Optional[Callable[[], bool]] = None,
) -> PreparedContext:
    """Run h1 once over both datasets and freeze everything the jobs need."""
    pivot = config.families[0].discriminant_pivot
    evaluation_sets = {
        name: evaluation_view(dataset) for name, dataset in zip(DATASETS, (config.training_set, config.test_set))
    }
    references = {
        name: prepare_reference(
            config.h1, dataset, name,
            device=config.device, performance_metric=config.performance_metric,
            discriminant_pivot=pivot, on_batch=on_batch, should_stop=should_stop,
        )
        for name, dataset in evaluation_sets.items()
    }
    return PreparedContext(
        h1=config.h1, h2=config.h2,
        training_set=training_view(config.training_set), test_set=config.test_set,
        families=config.families,
        number_of_epochs=config.number_of_epochs,
        optimizer_class=config.optimizer_class,
        optimizer_kwargs=MappingProxyType(dict(config.optimizer_kwargs)),
        device=config.device,
        performance_metric=config.performance_metric,
        references=MappingProxyType(references),
        evaluation_sets=MappingProxyType(evaluation_sets),
        seed=config.seed,
    )
