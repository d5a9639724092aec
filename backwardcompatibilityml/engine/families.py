"""Loss families as data: a name, a label for people, a loss class and its keyword arguments.

A sweep trains one h2 per (lambda_c, family). The seed's two families are
New Error and Strict Imitation; any number of families is supported, and the
datapoint index map follows from the order of the families::

    datapoint_index = (lambda_index * n_families + family_index) * 2 + dataset_index

with ``dataset_index`` 0 for the training set and 1 for the test set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Sequence, Tuple

__all__ = [
    "NEW_ERROR", "STRICT_IMITATION", "DATASETS", "LossFamily", "seed_families", "datapoint_index",
    "datapoint_layout", "describe_families",
]

NEW_ERROR = "new-error"
STRICT_IMITATION = "strict-imitation"
DATASETS: Tuple[str, str] = ("training", "testing")


@dataclass(frozen=True)
class LossFamily:
    """One loss family of a sweep.

    Parameters
    ----------
    name : str
        Identifier used in file names, records and the API (``"new-error"``).
    label : str
        Name shown to people (``"New Error"``).
    loss_class : type
        The compatibility loss class, built as ``loss_class(h1, h2, lambda_c, **loss_kwargs)``.
    loss_kwargs : mapping
        Extra keyword arguments of the loss (``num_classes``, ``discriminant_pivot``).
    """

    name: str
    label: str
    loss_class: type
    loss_kwargs: Mapping[str, Any] = field(default_factory=dict)

    @property
    def discriminant_pivot(self) -> float:
        """Threshold of binary models (0.5 unless the loss kwargs say otherwise)."""
        return float(self.loss_kwargs.get("discriminant_pivot", 0.5))


def seed_families(
    new_error_class: type,
    strict_imitation_class: type,
    new_error_kwargs: Mapping[str, Any],
    strict_imitation_kwargs: Mapping[str, Any],
) -> Tuple[LossFamily, LossFamily]:
    """The seed's two families, in the seed's order (New Error first)."""
    return (
        LossFamily(NEW_ERROR, "New Error", new_error_class, dict(new_error_kwargs)),
        LossFamily(STRICT_IMITATION, "Strict Imitation", strict_imitation_class, dict(strict_imitation_kwargs)),
    )


def datapoint_index(lambda_index: int, family_index: int, dataset_index: int, n_families: int) -> int:
    """Index of the datapoint of a (lambda_c, family, dataset) triple."""
    return (lambda_index * n_families + family_index) * len(DATASETS) + dataset_index


def datapoint_layout(families: Sequence[LossFamily]) -> Dict[str, Any]:
    """How datapoint indices are laid out, as stored in the summary for readers and the UI."""
    return {
        "order": ["lambda_c", "family", "dataset"],
        "families": [family.name for family in families],
        "datasets": list(DATASETS),
    }


def describe_families(families: Sequence[LossFamily]) -> List[Dict[str, str]]:
    """``[{"name", "label"}]`` of each family, for the summary and the UI."""
    return [{"name": family.name, "label": family.label} for family in families]
