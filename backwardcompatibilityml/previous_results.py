"""Keeping an earlier sweep's files aside when a new sweep starts in the same folder.

A folder that holds results (evaluation files, datapoint columns or model
states) has them moved, with their summary and h1's reference columns, into
a new subfolder ``previous/<UTC time>/`` (``previous/20261129T041230Z``,
made unique with ``-1``, ``-2``... when needed). Earlier subfolders are never
touched, so starting a new sweep never destroys finished results.
:class:`~.store.SweepStore` delegates its ``clear``, ``holds_results`` and
``previous_folders`` here.
"""

from __future__ import annotations

import os
import re
import time
from typing import List, Optional, Tuple

from .sweep_files import EVALUATION_RE, REFERENCE_RE, SUMMARY_FILE, is_result_file, is_sweep_file

__all__ = ["PREVIOUS_DIR", "holds_results", "previous_folders", "set_aside"]

#: The subfolder of a sweep folder that keeps earlier sweeps (one subfolder each).
PREVIOUS_DIR = "previous"
_PREVIOUS_RE = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


def holds_results(folder: str) -> bool:
    """Whether a sweep folder holds any evaluation or model state (a bare summary does not count).

    Parameters
    ----------
    folder : str
        The sweep folder.

    Returns
    -------
    bool
        True when :func:`set_aside` would keep its files.
    """
    return any(is_result_file(name) for name in os.listdir(folder))


def previous_folders(folder: str) -> List[str]:
    """The sweeps kept by :func:`set_aside`, oldest first (``previous/<UTC time>/``).

    Parameters
    ----------
    folder : str
        The sweep folder.

    Returns
    -------
    list of str
        The paths of the kept sweeps; empty when there is no ``previous/`` folder.
    """
    previous = os.path.join(folder, PREVIOUS_DIR)
    if not os.path.isdir(previous):
        return []
    kept = [name for name in os.listdir(previous) if _PREVIOUS_RE.match(name)]
    kept.sort(key=lambda name: (name[:16], int(name[17:] or 0)))
    return [os.path.join(previous, name) for name in kept if os.path.isdir(os.path.join(previous, name))]


def _new_previous_folder(folder: str) -> str:
    """Create and return a new, unique ``previous/<UTC time>`` subfolder."""
    previous = os.path.join(folder, PREVIOUS_DIR)
    os.makedirs(previous, exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    for attempt in range(1000):
        name = stamp if attempt == 0 else f"{stamp}-{attempt}"
        try:
            os.mkdir(os.path.join(previous, name))
        except FileExistsError:
            continue
        return os.path.join(previous, name)
    raise FileExistsError(f"too many earlier sweeps kept in {previous} within one second")


def set_aside(folder: str, keep_previous: bool = True) -> Optional[str]:
    """Move a sweep's files out of its folder, into ``previous/<UTC time>/`` when they hold results.

    Only the files of a sweep (:func:`~.sweep_files.is_sweep_file`) are
    moved or removed; other files stay. A folder without results (a bare
    summary and reference columns, left by a sweep cancelled or failed
    before its first result) is not kept: those files are removed. Call it
    only while holding the folder's lock (:meth:`.store.SweepStore.lock`).

    Parameters
    ----------
    folder : str
        The sweep folder.
    keep_previous : bool
        False deletes the results instead of keeping them.

    Returns
    -------
    str or None
        The subfolder the results were moved to, or None when nothing was
        kept (no results, or ``keep_previous=False``).
    """
    ours = sorted((name for name in os.listdir(folder) if is_sweep_file(name)), key=_clear_order)
    if not keep_previous or not any(is_result_file(name) for name in ours):
        for name in ours:
            os.unlink(os.path.join(folder, name))
        return None
    target = _new_previous_folder(folder)
    for name in ours:
        os.replace(os.path.join(folder, name), os.path.join(target, name))
    return target


def _clear_order(name: str) -> Tuple[int, str]:
    """The order :func:`set_aside` moves files in: datapoint JSON files, then the other results, then
    references, the summary last. A reader that finds a datapoint's JSON file but not its columns
    or reference therefore knows them damaged, not moved away by a new sweep."""
    if EVALUATION_RE.match(name) or name.endswith("-evaluation.json"):
        return 0, name
    if name == SUMMARY_FILE:
        return 3, name
    if REFERENCE_RE.match(name):
        return 2, name
    return 1, name
