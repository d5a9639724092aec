"""File permissions that respect the user's umask.

:func:`tempfile.mkstemp` creates files with mode ``0600`` whatever the umask,
so a file written through a temporary file and moved into place would be
private even where the user asked for group- or world-readable files. The
writers give their temporary files the mode a plain ``open()`` would have
given them: ``0o666 & ~umask``.
"""

from __future__ import annotations

import os
import re
import threading
from typing import Optional

__all__ = ["current_umask", "default_file_mode", "apply_default_file_mode"]

_lock = threading.Lock()
_umask: Optional[int] = None


def _read_umask_from_proc() -> Optional[int]:
    """The umask from ``/proc/self/status`` (Linux 4.7+), read without changing it; None elsewhere."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            match = re.search(r"^Umask:\s*([0-7]+)\s*$", status.read(), re.MULTILINE)
    except OSError:
        return None
    return int(match.group(1), 8) if match else None


def current_umask() -> int:
    """The process's umask, read once and then cached.

    Read from ``/proc/self/status`` where it exists. Elsewhere the only way
    is to set it and set it back (``os.umask``); that is done once, under a
    lock, so that no file of this package is created while it is changed.
    """
    global _umask
    with _lock:
        if _umask is None:
            umask = _read_umask_from_proc()
            if umask is None:
                umask = os.umask(0o077)
                os.umask(umask)
            _umask = umask
        return _umask


def default_file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open(path, "w")`` gives a new file."""
    return 0o666 & ~current_umask()


def apply_default_file_mode(fd: int) -> None:
    """Give an open file (such as one from ``tempfile.mkstemp``) the default mode of new files."""
    if hasattr(os, "fchmod"):  # POSIX (and Windows from Python 3.13, where it only sets read-only)
        os.fchmod(fd, default_file_mode())
