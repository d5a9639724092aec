"""A sweep folder's datapoint files: which are stored, and reading a JSON-era record file.

A datapoint is stored either as columns (``<i>-evaluation.json`` and its
``.arrow`` file) or, in older folders, as one JSON record
(``<i>-evaluation-data.json``, of this project's JSON era or of the earlier tool).
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Dict, Mapping, Optional, Tuple

from ..store import POINT_FIELDS
from .checks import READ_ERRORS
from .errors import CorruptDatapointError
from .legacy import normalize_record

__all__ = ["datapoint_files", "load_record"]

_INFO_RE = re.compile(r"^(\d+)-evaluation\.json$")
_RECORD_RE = re.compile(r"^(\d+)-evaluation-data\.json$")


def datapoint_files(folder: "str | os.PathLike[str]") -> Tuple[Dict[int, str], Dict[int, str]]:
    """The datapoint files of a folder, by datapoint index.

    Parameters
    ----------
    folder : str or os.PathLike
        The sweep folder.

    Returns
    -------
    tuple of (dict, dict)
        The column datapoints' JSON files (``<i>-evaluation.json``) and the
        JSON records (``<i>-evaluation-data.json``), each ``index -> file name``.
    """
    infos, records = {}, {}
    for name in os.listdir(folder):
        match = _INFO_RE.match(name)
        if match:
            infos[int(match.group(1))] = name
            continue
        match = _RECORD_RE.match(name)
        if match:
            records[int(match.group(1))] = name
    return infos, records


def load_record(store: Any, index: int, name: str, summary: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
    """A JSON-era or earlier-tool record in this project's format.

    Parameters
    ----------
    store : SweepStore
        The folder.
    index : int
        The datapoint.
    name : str
        Its record file (``<i>-evaluation-data.json``).
    summary : mapping, optional
        The folder's summary (read from ``store`` when not given).

    Returns
    -------
    dict
        The record, normalized (:func:`~backwardcompatibilityml.results.legacy.normalize_record`).

    Raises
    ------
    KeyError
        If the file is missing.
    CorruptDatapointError
        If it cannot be read or is not a complete record.
    """
    try:
        with open(store.path(name)) as handle:
            raw = json.load(handle)
    except FileNotFoundError:
        raise KeyError(index) from None
    except READ_ERRORS as error:
        raise CorruptDatapointError(index, f"{name} cannot be read: {error}") from None
    if not isinstance(raw, dict):
        raise CorruptDatapointError(index, f"{name} holds a JSON {type(raw).__name__}, not a record")
    if summary is None:
        summary = store.read_summary() or {}
    try:
        record = normalize_record(raw, index, summary)
    except READ_ERRORS as error:
        raise CorruptDatapointError(index, f"{name} is not a record this version can read: {error}") from None
    missing = [field for field in POINT_FIELDS if field not in record]
    if missing:
        raise CorruptDatapointError(index, f"{name} lacks the field(s) {', '.join(missing)}")
    return record
