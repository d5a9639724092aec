"""A sweep's unit of work and its result, as plain data.

A :class:`TrainingJob` is picklable data: an executor in another thread, a
stacked model or another process can run it. Its result carries the trained
state and h2's per-instance columns on each dataset; the runner turns those
into stored datapoints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch

from .families import DATASETS, LossFamily, datapoint_index

__all__ = ["TrainingJob", "H2Outputs", "JobResult", "plan_jobs"]


@dataclass(frozen=True)
class TrainingJob:
    """Train h2 once for ``(lambda_c, family)``.

    Attributes
    ----------
    lambda_index : int
        Place of ``lambda_c`` in the grid.
    lambda_c : float
        Dissonance weight.
    family : str
        Name of the loss family.
    family_index : int
        Place of the family in the sweep's families.
    datapoint_indices : tuple of int
        Indices of its training-set and test-set datapoints.
    seed : int
        Seed of the random number generators when the job starts: every job
        of a sweep sees the same batch order and the same initial draws.
    """

    lambda_index: int
    lambda_c: float
    family: str
    family_index: int
    datapoint_indices: Tuple[int, int]
    seed: int = 0


@dataclass
class H2Outputs:
    """h2's per-instance columns on one dataset, aligned to the dataset's reference order.

    Attributes
    ----------
    predictions : numpy.ndarray
        ``int64`` predicted labels, shape ``(N,)``.
    confidences : numpy.ndarray
        ``float32`` probability h2 gives its predicted class, shape ``(N,)``.
    performance : float or None
        h2's performance on the dataset by the sweep's metric.
    """

    predictions: np.ndarray
    confidences: np.ndarray
    performance: Optional[float]


@dataclass
class JobResult:
    """What a finished job hands to the runner."""

    job: TrainingJob
    model_state: Dict[str, torch.Tensor]
    outputs: Dict[str, H2Outputs]


def plan_jobs(lambda_c_values: Sequence[float], families: Sequence[LossFamily], seed: int) -> List[TrainingJob]:
    """Every job of a sweep, in the seed's order (by lambda_c, then family)."""
    n_families = len(families)
    return [
        TrainingJob(
            lambda_index=k,
            lambda_c=float(lambda_c),
            family=family.name,
            family_index=f,
            datapoint_indices=(
                datapoint_index(k, f, 0, n_families), datapoint_index(k, f, 1, n_families),
            ),
            seed=seed,
        )
        for k, lambda_c in enumerate(lambda_c_values)
        for f, family in enumerate(families)
    ]


assert len(DATASETS) == 2  # datapoint_indices holds one index per dataset
