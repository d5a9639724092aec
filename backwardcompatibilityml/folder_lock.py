"""The advisory lock that keeps two sweeps from writing to one folder.

A sweep holds an exclusive ``flock`` on the folder's lock file for as long as
it runs. Readers only probe it: :meth:`FolderLock.is_held` tells whether a
sweep holds the lock without creating, writing or removing anything.

Advisory locks need ``fcntl`` (POSIX). Without it (Windows) the writer still
opens the lock file but takes no lock, and the probe always answers False:
two sweeps on one folder then go undetected.
"""

from __future__ import annotations

import os
import time
from typing import TextIO

try:  # POSIX advisory locks; elsewhere two sweeps on one folder are not detected
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

__all__ = ["FolderLock", "LOCK_FILE"]

#: The lock file's name inside the sweep folder.
LOCK_FILE = ".bcml-sweep.lock"
_ATTEMPTS = 20  # acquire(): a reader's probe (is_held) holds the lock for microseconds; retry that long
_RETRY_S = 0.005


class FolderLock:
    """The sweep lock of one folder.

    The object keeps no state besides the folder: :meth:`acquire` hands back
    the open lock file, which the caller passes to :meth:`release`.

    Parameters
    ----------
    folder : str or os.PathLike
        The sweep folder; it must exist. Its text is used in the error
        message of :meth:`acquire`.
    """

    def __init__(self, folder: "str | os.PathLike[str]") -> None:
        self.folder = os.fspath(folder)
        self.path = os.path.join(self.folder, LOCK_FILE)

    def acquire(self) -> TextIO:
        """Take the lock for a writer, without waiting.

        Opens (creating it if needed) the lock file and takes an exclusive,
        non-blocking lock on it. A reader's probe (:meth:`is_held`) holds a
        shared lock for a moment, so a refused attempt is retried for up to
        about 0.1 s before the lock counts as taken by someone else.

        Returns
        -------
        file object
            The open lock file, to give to :meth:`release`.

        Raises
        ------
        BlockingIOError
            When another sweep, in this process or another, holds the lock.
        """
        handle = open(self.path, "w")
        if fcntl is not None:
            for attempt in range(_ATTEMPTS):
                try:
                    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError:
                    if attempt + 1 < _ATTEMPTS:
                        time.sleep(_RETRY_S)
            else:
                handle.close()
                raise BlockingIOError(f"the sweep folder {self.folder} is in use")
        return handle

    def is_held(self) -> bool:
        """Whether a sweep, in this process or another, holds the lock now.

        Safe for read-only readers: nothing is created, written or removed.
        The lock file is opened read-only, and only if it is there (a sweep
        creates it before locking it); a non-blocking shared lock is then
        tried and released at once. It fails only against a writer's
        exclusive lock.

        Returns
        -------
        bool
            True when a sweep holds the lock. False when none does, when the
            lock file is missing or cannot be opened, or without ``fcntl``.
        """
        if fcntl is None:  # pragma: no cover - Windows: no locks to probe
            return False
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:  # no lock file (no sweep ever ran here) or not readable
            return False
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            except OSError:
                return False
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    @staticmethod
    def release(handle: TextIO) -> None:
        """Release a lock taken with :meth:`acquire` and close its file.

        Parameters
        ----------
        handle : file object
            What :meth:`acquire` returned.
        """
        if fcntl is not None:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        handle.close()
