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

__all__ = [
    "as_label_array",
    "check_comparable_labels",
    "trust_compatibility_score",
    "error_compatibility_score",
    "negative_flip_rate",
    "positive_flip_rate",
]


def as_label_array(labels: Any, name: str) -> np.ndarray:
    """Convert labels (list, numpy array or tensor) to a 1-D numpy array.

    Raises
    ------
    TypeError
        If ``labels`` cannot be read as an array.
    ValueError
        If it is not one-dimensional.
    """
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu().numpy()
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a sequence of labels: {error}") from None
    if array.dtype == object:
        raise TypeError(f"{name} must be a sequence of numeric labels")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    return array


def _label_kind(array: np.ndarray) -> str:
    """``"number"`` (bool, int, float, complex), ``"text"`` (str, bytes) or the numpy dtype's kind."""
    if array.dtype.kind in "biufc":
        return "number"
    if array.dtype.kind in "US":
        return "text"
    return array.dtype.kind


def check_comparable_labels(predicted: np.ndarray, predicted_name: str, expected: np.ndarray,
                            expected_name: str) -> None:
    """Check that two non-empty label arrays hold labels of one kind (numbers, or text).

    numpy compares a number with a string as unequal without a word, so
    ``[0, 1]`` against ``["0", "1"]`` would count every prediction as wrong.

    Raises
    ------
    TypeError
        If one array holds numbers and the other text (or another kind).
    """
    if not (predicted.size and expected.size):
        return
    kinds = _label_kind(predicted), _label_kind(expected)
    if kinds[0] != kinds[1]:
        raise TypeError(
            f"{predicted_name} holds {kinds[0]} labels ({predicted.dtype}) but {expected_name} holds "
            f"{kinds[1]} labels ({expected.dtype}); labels of different kinds never compare equal"
        )


def _correctness(h1_output_labels: Any, h2_output_labels: Any, expected_labels: Any) -> Tuple[np.ndarray, np.ndarray]:
    h1 = as_label_array(h1_output_labels, "h1_output_labels")
    h2 = as_label_array(h2_output_labels, "h2_output_labels")
    expected = as_label_array(expected_labels, "expected_labels")
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
