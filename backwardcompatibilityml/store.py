"""The sweep folder: atomic writes, reading a sweep back, and what is already done.

Layout (kept compatible with earlier tools)::

    sweep_summary.json
    <datapoint_index>-evaluation-data.json
    <lambda_c>-model-new-error.state
    <lambda_c>-model-strict-imitation.state
    previous/<UTC time>/     an earlier sweep, moved aside by a restart (one subfolder each)

Every file is written to a temporary file in the same folder and moved into
place with :func:`os.replace`, so a reader or a crash never sees half a file.
The evaluation files are the source of truth: the summary is derived from
them and rewritten after each one.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from typing import Any, Callable, Dict, List, Optional, TextIO, Tuple

import torch

from . import previous_results
from .folder_lock import LOCK_FILE, FolderLock
from .permissions import apply_default_file_mode
from .sweep_files import SUMMARY_FILE
from .validation import check_folder

__all__ = [
    "SweepStore", "format_lambda_c", "POINT_FIELDS", "SUMMARY_FIELD_TYPES", "clean_summary", "is_index",
    "listed_point", "LOCK_FILE",
]

logger = logging.getLogger(__name__)

PREVIOUS_DIR = previous_results.PREVIOUS_DIR
_TEMP_PREFIX = ".tmp-"

#: The type each known field of ``sweep_summary.json`` must have; a field of another type is ignored.
SUMMARY_FIELD_TYPES: Dict[str, Tuple[type, ...]] = {
    "data": (list,),
    "lambda_c_values": (list,),
    "families": (list,),
    "datapoint_layout": (dict,),
    "configuration": (dict,),
    "state": (str,),
    "error": (str,),
    "fingerprint": (str,),
    "performance_metric": (str,),
    "executor": (str,),
    "sweep_id": (str,),
    "h1_performance": (int, float),
}

POINT_FIELDS = (
    "datapoint_index", "lambda_c", "training", "testing", "new-error", "strict-imitation",
    "performance", "h1_performance", "btc", "bec", "nfr", "pfr", "dataset_size",
)


def is_index(value: Any) -> bool:
    """Whether ``value`` is a datapoint index as JSON stores it (a non-negative int, not a bool)."""
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def listed_point(value: Any) -> bool:
    """Whether a ``data`` entry of the summary is a usable summary point (a dict with every point field)."""
    return isinstance(value, dict) and all(field in value for field in POINT_FIELDS) \
        and is_index(value["datapoint_index"])


def _field_ok(key: str, value: Any) -> bool:
    """Whether a summary field has the type :data:`SUMMARY_FIELD_TYPES` asks for (None always passes)."""
    if value is None or key not in SUMMARY_FIELD_TYPES:
        return True
    if isinstance(value, bool) or not isinstance(value, SUMMARY_FIELD_TYPES[key]):
        return False
    if key == "lambda_c_values":
        return all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value)
    if key == "families":
        return all(isinstance(v, dict) for v in value)
    return True


def clean_summary(value: Any, name: str = SUMMARY_FILE) -> Optional[Dict[str, Any]]:
    """A parsed summary with the fields of a wrong type left out, or None when it is not a JSON object.

    Parameters
    ----------
    value : object
        The parsed JSON of ``sweep_summary.json``.
    name : str
        The file's name, for the warnings.

    Returns
    -------
    dict or None
        The summary; a warning is logged for what is ignored.
    """
    if not isinstance(value, dict):
        logger.warning("ignoring sweep file %s: it holds a JSON %s, not an object", name, type(value).__name__)
        return None
    bad = sorted(key for key, field in value.items() if not _field_ok(key, field))
    if bad:
        logger.warning("ignoring the field(s) %s of sweep file %s: wrong type", ", ".join(bad), name)
        value = {key: field for key, field in value.items() if key not in bad}
    return value


def format_lambda_c(lambda_c: float) -> str:
    """The text of ``lambda_c`` used in file names (``0.3``, ``1.0``)."""
    return repr(float(lambda_c))


class SweepStore:
    """Reads and writes one sweep folder.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder; created (with parents) if missing.
    writable : bool
        Check that the folder can be created and written to (a sweep writes
        there). False for a folder that is only read: it must then exist.

    Raises
    ------
    TypeError, ValueError
        If ``folder`` is not a path, is empty, names a file, or (``writable``)
        cannot be created or written to; the message names ``folder_name``.
    """

    def __init__(self, folder: "str | os.PathLike[str]", *, writable: bool = True) -> None:
        if writable:
            self.folder = check_folder(folder, "folder_name")
        else:
            if not isinstance(folder, (str, os.PathLike)):
                raise TypeError(f"folder_name must be a path, got {type(folder).__name__}")
            self.folder = os.fspath(folder)
            if not os.path.isdir(self.folder):
                raise ValueError(f"folder_name {self.folder!r} is not a folder")
        self.folder_lock = FolderLock(self.folder)

    # -- paths -------------------------------------------------------------------
    def path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    @staticmethod
    def evaluation_name(datapoint_index: int) -> str:
        return f"{datapoint_index}-evaluation-data.json"

    @staticmethod
    def model_name(lambda_c: float, family: str) -> str:
        return f"{format_lambda_c(lambda_c)}-model-{family}.state"

    # -- atomic writes -------------------------------------------------------------
    def _write_atomic(self, name: str, write: Callable[[Any], None], mode: str) -> None:
        fd, temp_path = tempfile.mkstemp(prefix=_TEMP_PREFIX, dir=self.folder)
        try:
            with os.fdopen(fd, mode) as handle:
                write(handle)
                handle.flush()
                apply_default_file_mode(handle.fileno())  # mkstemp's 0600 -> what the umask allows
                os.fsync(handle.fileno())
            os.replace(temp_path, self.path(name))
        except BaseException:
            try:
                os.unlink(temp_path)
            except FileNotFoundError:
                pass
            raise

    def write_json(self, name: str, value: Any) -> None:
        """Write ``value`` as compact JSON to ``name`` atomically.

        ``json.dumps`` (one call, C encoder) is several times faster than
        ``json.dump``, which encodes piece by piece in Python.
        """
        text = json.dumps(value, allow_nan=False, separators=(",", ":"))
        self._write_atomic(name, lambda handle: handle.write(text), "w")

    def write_evaluation(self, record: Dict[str, Any]) -> None:
        """Write a datapoint's evaluation record."""
        self.write_json(self.evaluation_name(record["datapoint_index"]), record)

    def write_summary(self, summary: Dict[str, Any]) -> None:
        self.write_json(SUMMARY_FILE, summary)

    def save_model_state(self, lambda_c: float, family: str, state_dict: Dict[str, Any]) -> None:
        """Save a trained model's ``state_dict`` atomically."""
        self._write_atomic(self.model_name(lambda_c, family), lambda handle: torch.save(state_dict, handle), "wb")

    def has_model_state(self, lambda_c: float, family: str) -> bool:
        return os.path.isfile(self.path(self.model_name(lambda_c, family)))

    def load_model_state(self, lambda_c: float, family: str, map_location: Any = "cpu") -> Dict[str, Any]:
        """Load a saved ``state_dict`` (``weights_only``: plain tensors only)."""
        return torch.load(self.path(self.model_name(lambda_c, family)), map_location=map_location, weights_only=True)

    # -- reading back --------------------------------------------------------------
    def read_summary(self) -> Optional[Dict[str, Any]]:
        """The stored summary, or None when there is none or it cannot be read.

        A summary that is not a JSON object counts as unreadable, and a known
        field of the wrong type (``{"families": 5}``) is left out: both are
        logged as warnings, so callers always get a dict whose known fields
        have the types of :data:`SUMMARY_FIELD_TYPES` (or None).
        """
        value = self.read_json(SUMMARY_FILE)
        return None if value is None else clean_summary(value)

    def read_json(self, name: str) -> Optional[Any]:
        """A JSON file of the folder, or None when it is missing or unreadable (a warning is logged)."""
        try:
            with open(self.path(name)) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as error:  # RecursionError: absurdly deep nesting
            logger.warning("ignoring unreadable sweep file %s: %s", name, error)
            return None

    def lock(self) -> TextIO:
        """Take the folder's sweep lock without waiting, then remove stale temporary files.

        Temporary files left by a writer that was killed (SIGKILL, power loss:
        no ``finally`` ran) can only be told from live ones by the lock: once
        it is held no other sweep writes here, so every ``.tmp-*`` file is
        stale and is removed.

        Returns a handle for :meth:`unlock`. Raises ``BlockingIOError`` when
        another sweep (in this process or another) holds it; see
        :meth:`FolderLock.acquire <.folder_lock.FolderLock.acquire>`.
        """
        handle = self.folder_lock.acquire()
        removed = self.remove_temporary_files()
        if removed:
            logger.info("removed %d stale temporary file(s) from %s", removed, self.folder)
        return handle

    def remove_temporary_files(self) -> int:
        """Remove the ``.tmp-*`` files of the folder; returns how many. Call it only under :meth:`lock`."""
        removed = 0
        for name in os.listdir(self.folder):
            if name.startswith(_TEMP_PREFIX):
                try:
                    os.unlink(self.path(name))
                    removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def is_locked(self) -> bool:
        """Whether a sweep holds the folder's lock now; a probe without side effects (:meth:`FolderLock.is_held`)."""
        return self.folder_lock.is_held()

    @staticmethod
    def unlock(handle: TextIO) -> None:
        """Release a lock taken with :meth:`lock`."""
        FolderLock.release(handle)

    def holds_results(self) -> bool:
        """Whether the folder holds any evaluation or model state (a bare summary does not count)."""
        return previous_results.holds_results(self.folder)

    def previous_folders(self) -> List[str]:
        """The sweeps kept by :meth:`clear`, oldest first (``previous/<UTC time>/``)."""
        return previous_results.previous_folders(self.folder)

    def clear(self, keep_previous: bool = True) -> Optional[str]:
        """Empty the folder for a new sweep (and remove leftover temporary files); other files stay.

        Finished results are moved to a new ``previous/<UTC time>/`` subfolder,
        never destroyed, as :func:`.previous_results.set_aside` describes (its
        parameters and return value are this method's). Call it only under
        :meth:`lock`.
        """
        self.remove_temporary_files()
        return previous_results.set_aside(self.folder, keep_previous)
