"""Errors of the engine and how they are shown to people."""

from __future__ import annotations

import re

__all__ = ["SweepAlreadyRunningError", "ReadOnlySweepError", "public_error_message"]

_PATH_RE = re.compile(r"""(?<![\w.~])(?:[A-Za-z]:[\\/]|~?/)[^\s'"<>]+""")


class SweepAlreadyRunningError(RuntimeError):
    """``start_sweep`` was called while a sweep runs (in this manager or on the same folder)."""


class ReadOnlySweepError(RuntimeError):
    """The sweep was opened from a folder without models and cannot train."""


def public_error_message(exception: BaseException) -> str:
    """``"Type: message"`` for the status and the API, with file paths left out.

    The full exception, traceback included, goes to :mod:`logging` and stays
    reachable from Python (``SweepManager.last_exception``); what is shown to
    a web page must not reveal the layout of the machine.
    """
    name = type(exception).__name__
    if isinstance(exception, OSError) and exception.strerror:
        return f"{name}: {exception.strerror}"
    message = _PATH_RE.sub("<path>", str(exception))
    return f"{name}: {message}" if message else name
