"""What a column datapoint's files must look like: checks of their parsed JSON and column arrays.

Each check is a pure function of what was read: it returns nothing (or the
checked values) when the shape is right and raises :class:`ValueError`,
naming the file and what is wrong, when it is not. :data:`READ_ERRORS` is what
reading a damaged file raises, these checks included.
"""

from __future__ import annotations

import math
import numbers
import re
from typing import Any, Mapping, Tuple

import numpy as np

from .columns import EVALUATION_COLUMNS

__all__ = ["READ_ERRORS", "check_datapoint_info", "check_point", "check_reference_columns", "check_h2_columns"]

# What reading a damaged file raises: OSError (pyarrow's ArrowIOError too), ValueError (ArrowInvalid,
# UnicodeDecodeError, bad JSON, these checks), and what a file of the wrong shape makes the readers raise.
READ_ERRORS = (OSError, ValueError, KeyError, TypeError, AttributeError, IndexError, OverflowError,
               RecursionError)
_FILE_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*\.arrow$")  # a datapoint's columns: a file of the folder
_DATASET_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_LABEL_COLUMNS = ("instance_id", "ground_truth", "h1_prediction")
_POINT_FLAGS = ("training", "testing", "new-error", "strict-imitation")
_POINT_NUMBERS = ("performance", "h1_performance", "btc", "bec", "nfr", "pfr")  # a number, or None
_POINT_NAMES = ("family", "dataset")  # a str, or None


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _is_count(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def check_point(point: Mapping[str, Any], source: str) -> None:
    """Check the field types of a summary point (one datapoint's entry in the sweep's list of points).

    The points are what the API serves to the UI's plots; a field of the
    wrong type (``"lambda_c": "abc"`` in a hand-edited or damaged file) would
    be plotted as NaN, so such a point is refused here and skipped by the
    reader.

    Parameters
    ----------
    point : mapping
        The entry: ``datapoint_index`` and ``dataset_size`` non-negative
        integers, ``lambda_c`` a real number in [0, 1], ``training``,
        ``testing``, ``new-error`` and ``strict-imitation`` booleans,
        ``performance``, ``h1_performance``, ``btc``, ``bec``, ``nfr`` and
        ``pfr`` real numbers or None, ``family`` and ``dataset`` (when
        present) strings or None.
    source : str
        Where it was read (a file name), for the error message.

    Raises
    ------
    ValueError
        Naming ``source`` and the first field of a wrong type or range.
    """
    def fail(field: str, wanted: str) -> None:
        raise ValueError(f"{source}: the point's {field!r} must be {wanted}, got {point.get(field)!r:.40}")

    for field in ("datapoint_index", "dataset_size"):
        if not _is_count(point.get(field)):
            fail(field, "a non-negative integer")
    lambda_c = point.get("lambda_c")
    if not (_is_real(lambda_c) and math.isfinite(lambda_c) and 0 <= lambda_c <= 1):
        fail("lambda_c", "a number in [0, 1]")
    for field in _POINT_FLAGS:
        if not isinstance(point.get(field), bool):
            fail(field, "true or false")
    for field in _POINT_NUMBERS:
        if point.get(field) is not None and not _is_real(point[field]):
            fail(field, "a number or null")
    for field in _POINT_NAMES:
        if point.get(field) is not None and not isinstance(point[field], str):
            fail(field, "a string or null")


def check_datapoint_info(info: Any, file_name: str) -> Tuple[str, str]:
    """Check a datapoint's parsed JSON info and return the dataset and columns file it names.

    Parameters
    ----------
    info : Any
        The parsed content of ``<i>-evaluation.json``.
    file_name : str
        Its file name, for the error messages.

    Returns
    -------
    tuple of (str, str)
        The ``dataset`` name and the ``columns`` file name (a plain ``.arrow``
        file of the folder).

    Raises
    ------
    ValueError
        If ``info`` is not a JSON object, or names no valid dataset or columns file.
    """
    if not isinstance(info, dict):
        raise ValueError(f"{file_name} holds a JSON {type(info).__name__}, not an object")
    dataset, columns = info.get("dataset"), info.get("columns")
    if not isinstance(dataset, str) or not _DATASET_RE.match(dataset):
        raise ValueError(f"{file_name} names no valid dataset")
    if not isinstance(columns, str) or not _FILE_NAME_RE.match(columns):
        raise ValueError(f"{file_name} names no valid columns file")
    return dataset, columns


def _is_confidence(values: Any, length: int) -> bool:
    return values.ndim == 1 and values.dtype.kind == "f" and values.shape[0] == length


def check_reference_columns(columns: Mapping[str, np.ndarray], file_name: str) -> None:
    """Check the columns read from a dataset's reference file.

    Parameters
    ----------
    columns : mapping of str to numpy.ndarray
        The columns read from ``<dataset>-reference.arrow``.
    file_name : str
        Its file name, for the error messages.

    Raises
    ------
    ValueError
        If a label column (``instance_id``, ``ground_truth``, ``h1_prediction``)
        is missing, is not one-dimensional integers or differs in length from
        ``instance_id``, or if ``h1_confidence`` is present but not
        one-dimensional floats of that length.
    """
    for name in _LABEL_COLUMNS:
        if name not in columns:
            raise ValueError(f"{file_name} has no column {name}")
        if columns[name].ndim != 1 or columns[name].dtype.kind not in "iu":
            raise ValueError(f"column {name} of {file_name} is not integers")
        if columns[name].shape[0] != columns["instance_id"].shape[0]:
            raise ValueError(f"the columns of {file_name} have different lengths")
    confidence = columns.get("h1_confidence")
    if confidence is not None and not _is_confidence(confidence, columns["instance_id"].shape[0]):
        raise ValueError(f"column h1_confidence of {file_name} is not numbers of its length")


def check_h2_columns(columns: Mapping[str, np.ndarray]) -> None:
    """Check the columns read from a datapoint's ``.arrow`` file (h2's).

    Parameters
    ----------
    columns : mapping of str to numpy.ndarray
        The columns read from ``<i>-evaluation.arrow``.

    Raises
    ------
    ValueError
        If ``h2_prediction`` is missing or not one-dimensional integers, or if
        ``h2_confidence`` is present but not one-dimensional floats of the
        predictions' length.
    """
    missing = [name for name in EVALUATION_COLUMNS[:1] if name not in columns]
    if missing:
        raise ValueError(f"columns {missing} missing")
    if columns["h2_prediction"].ndim != 1 or columns["h2_prediction"].dtype.kind not in "iu":
        raise ValueError("column h2_prediction is not integers")
    confidence = columns.get("h2_confidence")
    if confidence is not None and not _is_confidence(confidence, columns["h2_prediction"].shape[0]):
        raise ValueError("column h2_confidence is not numbers of the predictions' length")
