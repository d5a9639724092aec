"""The sweep folder: atomic writes, reading a sweep back, and what is already done.

Layout (kept compatible with earlier tools)::

    sweep_summary.json
    <datapoint_index>-evaluation-data.json
    <lambda_c>-model-new-error.state
    <lambda_c>-model-strict-imitation.state

Every file is written to a temporary file in the same folder and moved into
place with :func:`os.replace`, so a reader or a crash never sees half a file.
The evaluation files are the source of truth: the summary is derived from
them and rewritten after each one.
"""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from typing import Any, Callable, Dict, Optional

import torch

try:  # POSIX advisory locks; elsewhere two sweeps on one folder are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["SweepStore", "format_lambda_c", "POINT_FIELDS", "point_of"]

logger = logging.getLogger(__name__)

SUMMARY_FILE = "sweep_summary.json"
LOCK_FILE = ".bcml-sweep.lock"
PREVIOUS_DIR = "previous"
_EVALUATION_RE = re.compile(r"^(\d+)-evaluation-data\.json$")
_TEMP_PREFIX = ".tmp-"

POINT_FIELDS = (
    "datapoint_index", "lambda_c", "training", "testing", "new-error", "strict-imitation",
    "performance", "h1_performance", "btc", "bec", "nfr", "pfr", "dataset_size",
)


def point_of(record: Dict[str, Any]) -> Dict[str, Any]:
    """The summary entry (a few numbers) of a full evaluation record."""
    return {field: record[field] for field in POINT_FIELDS}


def format_lambda_c(lambda_c: float) -> str:
    """The text of ``lambda_c`` used in file names (``0.3``, ``1.0``)."""
    return repr(float(lambda_c))


class SweepStore:
    """Reads and writes one sweep folder.

    Parameters
    ----------
    folder : str or os.PathLike
        The folder; created (with parents) if missing.
    """

    def __init__(self, folder: "str | os.PathLike[str]") -> None:
        if not isinstance(folder, (str, os.PathLike)):
            raise TypeError(f"folder_name must be a path, got {type(folder).__name__}")
        self.folder = os.fspath(folder)
        if os.path.exists(self.folder) and not os.path.isdir(self.folder):
            raise ValueError(f"folder_name {self.folder!r} exists and is not a folder")
        os.makedirs(self.folder, exist_ok=True)

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
        """The stored summary, or None when there is none (or it cannot be read)."""
        return self._read_json(SUMMARY_FILE)

    def evaluation_indices(self) -> set:
        """Datapoint indices that have an evaluation file."""
        return {int(m.group(1)) for m in map(_EVALUATION_RE.match, os.listdir(self.folder)) if m}

    def read_evaluation(self, datapoint_index: int) -> Optional[Dict[str, Any]]:
        """One stored evaluation record, or None when missing or unreadable."""
        record = self._read_json(self.evaluation_name(datapoint_index))
        if record is None or not all(field in record for field in POINT_FIELDS):
            return None
        return record

    def read_points(self) -> Dict[int, Dict[str, Any]]:
        """The summary entry of every stored evaluation, by datapoint index.

        Entries come from ``sweep_summary.json`` where it lists them; an
        evaluation file the summary does not list yet (a crash between the two
        writes) is read itself.
        """
        summary = self.read_summary() or {}
        listed = {}
        for point in summary.get("data") or []:
            if isinstance(point, dict) and all(field in point for field in POINT_FIELDS):
                listed[point["datapoint_index"]] = point
        points = {}
        for index in self.evaluation_indices():
            if index in listed:
                points[index] = listed[index]
            else:
                record = self.read_evaluation(index)
                if record is not None:
                    points[index] = point_of(record)
        return points

    def _read_json(self, name: str) -> Optional[Any]:
        try:
            with open(self.path(name)) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            logger.warning("ignoring unreadable sweep file %s: %s", name, error)
            return None

    def lock(self) -> Any:
        """Take the folder's sweep lock without waiting.

        Returns a handle for :meth:`unlock`. Raises ``BlockingIOError`` when
        another sweep (in this process or another) holds it.
        """
        handle = open(self.path(LOCK_FILE), "w")
        if fcntl is not None:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                handle.close()
                raise BlockingIOError(f"the sweep folder {self.folder} is in use") from None
        return handle

    @staticmethod
    def unlock(handle: Any) -> None:
        """Release a lock taken with :meth:`lock`."""
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()

    @staticmethod
    def _is_sweep_file(name: str) -> bool:
        return bool(
            name == SUMMARY_FILE
            or _EVALUATION_RE.match(name)
            or name.endswith(("-model-new-error.state", "-model-strict-imitation.state"))
        )

    def clear(self, keep_previous: bool = True) -> Optional[str]:
        """Remove the files of a sweep (and leftover temporary files); other files stay.

        With ``keep_previous`` the sweep's files are moved into the subfolder
        ``previous/`` (replacing what an earlier clear left there) rather than
        deleted, so that starting a new sweep never destroys finished results
        for good: ``SweepManager.open_folder(folder + "/previous")`` browses
        them. Returns that subfolder, or None when nothing was kept.
        """
        names = os.listdir(self.folder)
        for name in names:
            if name.startswith(_TEMP_PREFIX):
                os.unlink(self.path(name))
        ours = [name for name in names if self._is_sweep_file(name)]
        if not ours:
            return None
        if not keep_previous:
            for name in ours:
                os.unlink(self.path(name))
            return None
        previous = self.path(PREVIOUS_DIR)
        os.makedirs(previous, exist_ok=True)
        for name in os.listdir(previous):
            if self._is_sweep_file(name):
                os.unlink(os.path.join(previous, name))
        for name in ours:
            os.replace(self.path(name), os.path.join(previous, name))
        return previous
