"""Compatibility scores of a model update h1 -> h2, computed on label arrays.

With R1, R2 the instances h1, h2 classify correctly, W1, W2 those they get
wrong and N all of them:

==========  ============================  ==========================
score       definition                    empty denominator gives
==========  ============================  ==========================
BTC         abs(R1 and R2) / abs(R1)      1.0
BEC         abs(W1 and W2) / abs(W2)      1.0
NFR         abs(R1 and W2) / abs(N)       0.0
PFR         abs(W1 and R2) / abs(N)       0.0
==========  ============================  ==========================

Every function takes ``(h1_output_labels, h2_output_labels, expected_labels)``
as equally long 1-D sequences, numpy arrays or tensors, and is vectorised.
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np

from .validation import check_comparable_labels, check_label_array

#: The former name of :func:`~backwardcompatibilityml.validation.check_label_array`, kept for callers.
as_label_array = check_label_array

__all__ = [
    "as_label_array",
    "check_comparable_labels",
    "trust_compatibility_score",
    "error_compatibility_score",
    "negative_flip_rate",
    "positive_flip_rate",
]


def _correctness(h1_output_labels: Any, h2_output_labels: Any, expected_labels: Any) -> Tuple[np.ndarray, np.ndarray]:
    h1 = check_label_array(h1_output_labels, "h1_output_labels")
    h2 = check_label_array(h2_output_labels, "h2_output_labels")
    expected = check_label_array(expected_labels, "expected_labels")
    if not (h1.shape[0] == h2.shape[0] == expected.shape[0]):
        raise ValueError(
            "h1_output_labels, h2_output_labels and expected_labels must have the same length, got "
            f"{h1.shape[0]}, {h2.shape[0]} and {expected.shape[0]}"
        )
    check_comparable_labels(h1, "h1_output_labels", expected, "expected_labels")
    check_comparable_labels(h2, "h2_output_labels", expected, "expected_labels")
    return h1 == expected, h2 == expected


def _ratio(numerator: int, denominator: int, empty: float) -> float:
    return float(numerator) / float(denominator) if denominator else empty


def trust_compatibility_score(h1_output_labels: Any, h2_output_labels: Any, expected_labels: Any) -> float:
    """Backward Trust Compatibility (BTC): the share of h1's correct instances that h2 keeps correct.

    ``BTC = |R1 and R2| / |R1|``, 1.0 when h1 gets nothing right.

    Parameters
    ----------
    h1_output_labels, h2_output_labels : array-like of shape (n,)
        Predicted labels of the old and the new model.
    expected_labels : array-like of shape (n,)
        Ground truth.

    Returns
    -------
    float
    """
    right1, right2 = _correctness(h1_output_labels, h2_output_labels, expected_labels)
    return _ratio(np.count_nonzero(right1 & right2), np.count_nonzero(right1), 1.0)


def error_compatibility_score(h1_output_labels: Any, h2_output_labels: Any, expected_labels: Any) -> float:
    """Backward Error Compatibility (BEC): the share of h2's errors that h1 makes too.

    ``BEC = |W1 and W2| / |W2|``, as defined by Srivastava, Nushi, Kamar, Shah
    and Horvitz, "An Empirical Analysis of Backward Compatibility in Machine
    Learning Systems" (KDD 2020): the fraction of the new model's mistakes that
    are not new. 1.0 when h2 makes no error. (Some earlier tools divided by
    h1's errors instead; that is a different quantity.)

    Parameters and return as :func:`trust_compatibility_score`.
    """
    right1, right2 = _correctness(h1_output_labels, h2_output_labels, expected_labels)
    wrong1, wrong2 = ~right1, ~right2
    return _ratio(np.count_nonzero(wrong1 & wrong2), np.count_nonzero(wrong2), 1.0)


def negative_flip_rate(h1_output_labels: Any, h2_output_labels: Any, expected_labels: Any) -> float:
    """Negative flip rate (NFR): share of all instances that h1 gets right and h2 wrong.

    ``NFR = |R1 and W2| / |N|``, 0.0 for an empty dataset.
    Parameters and return as :func:`trust_compatibility_score`.
    """
    right1, right2 = _correctness(h1_output_labels, h2_output_labels, expected_labels)
    return _ratio(np.count_nonzero(right1 & ~right2), right1.shape[0], 0.0)


def positive_flip_rate(h1_output_labels: Any, h2_output_labels: Any, expected_labels: Any) -> float:
    """Positive flip rate (PFR): share of all instances that h1 gets wrong and h2 right.

    ``PFR = |W1 and R2| / |N|``, 0.0 for an empty dataset.
    Parameters and return as :func:`trust_compatibility_score`.
    """
    right1, right2 = _correctness(h1_output_labels, h2_output_labels, expected_labels)
    return _ratio(np.count_nonzero(~right1 & right2), right1.shape[0], 0.0)
