"""The names of a sweep folder's files: which belong to a sweep, and which of those hold results.

Shared by :mod:`.store` (reading and writing the folder) and
:mod:`.previous_results` (keeping an earlier sweep aside); the layout is
described in :mod:`.store`. This module imports nothing of the package, so
both can import it.
"""

from __future__ import annotations

import re

__all__ = [
    "SUMMARY_FILE", "EVALUATION_RE", "MODEL_RE", "COLUMNS_RE", "REFERENCE_RE", "is_result_file", "is_sweep_file",
]

#: The sweep's summary, derived from the evaluation files.
SUMMARY_FILE = "sweep_summary.json"

#: A datapoint's evaluation record, ``<datapoint_index>-evaluation-data.json`` (group 1: the index).
EVALUATION_RE = re.compile(r"^(\d+)-evaluation-data\.json$")
#: A trained model's state, ``<lambda_c>-model-<family>.state``.
MODEL_RE = re.compile(r"^.+-model-[A-Za-z0-9_.-]+\.state$")
#: A datapoint's h2 columns (``results/columns.py``).
COLUMNS_RE = re.compile(r"^\d+-evaluation\.(arrow|json)$")
#: h1's reference columns: prepared data, not a result.
REFERENCE_RE = re.compile(r"^[A-Za-z0-9_.-]+-reference\.arrow$")


def is_result_file(name: str) -> bool:
    """Whether a file holds results of a sweep.

    Parameters
    ----------
    name : str
        A file name of the sweep folder (no path).

    Returns
    -------
    bool
        True for an evaluation file, a datapoint's columns or a trained model's state.
    """
    return bool(EVALUATION_RE.match(name) or MODEL_RE.match(name) or COLUMNS_RE.match(name))


def is_sweep_file(name: str) -> bool:
    """Whether a file belongs to a sweep (a result, h1's reference columns or the summary).

    Parameters
    ----------
    name : str
        A file name of the sweep folder (no path).

    Returns
    -------
    bool
        True for the files a new sweep moves aside or removes; other files of the folder stay.
    """
    return name == SUMMARY_FILE or bool(REFERENCE_RE.match(name)) or is_result_file(name)
