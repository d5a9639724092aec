"""The widgets of this process: which ones serve, and which one serves each
sweep folder.

Re-running a notebook cell creates a new widget on the same folder while the
earlier one still lives in the kernel. :func:`retire_earlier` closes the
earlier widget's server and cancels its running sweep, so that the new widget
alone serves the folder and finds there what the earlier sweep stored. A
read-only viewer of a folder (``SweepManager.open_folder``) replaces earlier
read-only viewers only: it never stops a widget that trains.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
import warnings
from typing import Any, Dict, List, Optional

__all__ = ["CANCEL_WAIT", "add", "can_train", "discard", "folder_key", "live", "release_port",
           "retire_earlier", "widgets_for"]

logger = logging.getLogger(__name__)

#: Seconds to wait for an earlier widget's sweep to stop (it stops before its
#: next training step, so this is normally well under a second).
CANCEL_WAIT = 60.0

_lock = threading.RLock()
# Live widgets; like their server threads they live until close().
_live: Dict[int, Any] = {}
_by_folder: Dict[str, List[Any]] = {}


def folder_key(folder: Any) -> Optional[str]:
    """The real path that identifies a sweep folder, or None for a value
    that is not a path (the SweepManager reports it)."""
    try:
        return os.path.realpath(os.fspath(folder))
    except (TypeError, ValueError):
        return None


def can_train(manager: Any) -> bool:
    """Whether a SweepManager can train (not opened read-only from its folder)."""
    return getattr(manager, "config", None) is not None


def add(widget: Any, folder: Any) -> None:
    """Record a serving widget and the folder it serves."""
    key = folder_key(folder)
    with _lock:
        _live[id(widget)] = widget
        if key is not None:
            _by_folder.setdefault(key, []).append(widget)


def discard(widget: Any) -> None:
    """Forget a widget (its server is closed)."""
    with _lock:
        _live.pop(id(widget), None)
        for key, widgets in list(_by_folder.items()):
            kept = [other for other in widgets if other is not widget]
            if kept:
                _by_folder[key] = kept
            else:
                del _by_folder[key]


def live() -> List[Any]:
    """The widgets of this process whose server was not closed."""
    with _lock:
        return list(_live.values())


def widgets_for(folder: Any) -> List[Any]:
    """The live widgets that serve ``folder``."""
    key = folder_key(folder)
    with _lock:
        return [] if key is None else list(_by_folder.get(key, ()))


def retire_earlier(folder: Any, *, trainable: bool, keep_manager: Any = None,
                   wait: float = CANCEL_WAIT) -> bool:
    """Close the servers of the widgets that serve ``folder`` and cancel their sweeps.

    Parameters
    ----------
    folder : str or os.PathLike
        The sweep folder of the widget being created.
    trainable : bool
        Whether the new widget's manager can train. A read-only newcomer
        retires earlier read-only widgets only.
    keep_manager : SweepManager, optional
        A manager the new widget serves too: its sweep is not cancelled.
    wait : float
        Seconds to wait for a cancelled sweep's thread to end.

    Returns
    -------
    bool
        Whether a running sweep was cancelled (the folder changed since the
        new widget's manager read it).
    """
    cancelled = False
    for earlier in widgets_for(folder):
        manager = getattr(earlier, "sweep_manager", None)
        if not trainable and can_train(manager):
            continue
        earlier.close()
        if manager is None or manager is keep_manager or not manager.is_running():
            continue
        logger.info("cancelling the sweep of the earlier widget on %s", folder_key(folder))
        cancelled = True
        manager.cancel_sweep(wait=wait)
        if not manager.wait(wait):
            logger.warning("the earlier widget's sweep on %s did not stop within %.0f s",
                           folder_key(folder), wait)
    return cancelled


def release_port(port: int) -> None:
    """An earlier widget of this process that serves ``port`` closes, with a
    warning (re-running a notebook cell with an explicit port)."""
    if port == 0:
        return
    for widget in live():
        if getattr(widget, "port", None) == port and widget.running:
            warnings.warn(
                "Port %d was served by an earlier CompatibilityAnalysis widget of "
                "this process; closing it to serve the new one." % port,
                UserWarning, stacklevel=4)
            widget.close()


def _shutdown() -> None:
    """At interpreter exit: close every widget's server and stop its sweep
    after the current training step, so that no thread trains while the
    interpreter finalises and the sweep folder records the interruption."""
    for widget in live():
        try:
            widget.close()
            manager = widget.sweep_manager
            if manager.is_running():
                manager.cancel_sweep()
        except Exception:  # pragma: no cover - best effort at exit
            logger.debug("closing a widget at exit failed", exc_info=True)


atexit.register(_shutdown)
