"""Errors of the engine and how they are shown to people."""

from __future__ import annotations

import re

__all__ = ["SweepAlreadyRunningError", "ReadOnlySweepError", "UnfinishedJobsError", "public_error_message"]

# A web address (kept: it names a page, not the machine's files), or a file path (left out). Other URIs
# keep their scheme and lose their path: "sqlite:////srv/x.db" reads "sqlite:<path>".
_PATH_RE = re.compile(r"""https?://[^\s'"<>]+|(?<![\w.~])(?:[A-Za-z]:[\\/]|~?/)[^\s'"<>]+""")


class SweepAlreadyRunningError(RuntimeError):
    """``start_sweep`` was called while a sweep runs (in this manager or on the same folder)."""


class ReadOnlySweepError(RuntimeError):
    """The sweep was opened from a folder without models and cannot train."""


class UnfinishedJobsError(RuntimeError):
    """An executor's ``run`` returned, without an error, before every job had finished (or it reported failures)."""


def _hide_path(match: "re.Match[str]") -> str:
    text = match.group(0)
    if text.startswith(("http://", "https://")):
        return text
    closing = ""  # parentheses the path did not open close the text around it: "(see /a/b.pt)"
    while text.endswith(")") and text.count(")") > text.count("("):
        text, closing = text[:-1], closing + ")"
    return "<path>" + closing


def public_error_message(exception: BaseException) -> str:
    """``"Type: message (note)"`` for the status and the API, with file paths left out.

    Notes added to the exception (``add_note``: where the training was when
    it failed) follow the message in parentheses.

    The full exception, traceback included, goes to :mod:`logging` and stays
    reachable from Python (``SweepManager.last_exception``); what is shown to
    a web page must not reveal the layout of the machine.
    """
    name = type(exception).__name__
    notes = [_PATH_RE.sub(_hide_path, note) for note in getattr(exception, "__notes__", ()) if isinstance(note, str)]
    text = exception.strerror if isinstance(exception, OSError) and exception.strerror else str(exception)
    message = " ".join([_PATH_RE.sub(_hide_path, text)] + [f"({note})" for note in notes]).strip()
    return f"{name}: {message}" if message else name
