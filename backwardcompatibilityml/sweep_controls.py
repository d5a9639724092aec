"""The lifecycle of a sweep that trains: start it, cancel it, wait for it, read how it ended.

:class:`SweepControls` is the part of
:class:`~backwardcompatibilityml.sweep_management.SweepManager` that drives
its :class:`~backwardcompatibilityml.engine.runner.SweepRunner`: each method
checks its arguments and hands over to the runner, which owns the thread,
the cancel flag and the folder's lock. A manager opened read-only has no
runner: it cannot start, and reports that nothing runs.
"""

from __future__ import annotations

import numbers
from typing import Optional

from .engine.errors import ReadOnlySweepError
from .engine.runner import SweepRunner
from .validation import check_bool, check_scalar

__all__ = ["SweepControls"]


class SweepControls:
    """Start, cancel and wait for the sweep of ``self._runner`` (None for a sweep opened read-only)."""

    _runner: Optional[SweepRunner]

    def _trainable_runner(self) -> SweepRunner:
        if self._runner is None:
            raise ReadOnlySweepError("this sweep was opened read-only from its folder; it cannot train")
        return self._runner

    def start_sweep(self) -> None:
        """Start the sweep in a background thread and return at once.

        Raises
        ------
        SweepAlreadyRunningError
            If a sweep is running (here, or in another manager on the same folder).
        ReadOnlySweepError
            If the manager was opened read-only (``SweepManager.open_folder``).
        """
        self._trainable_runner().start_background()

    def start_sweep_synchronous(self, progress_bar: bool = True, raise_on_error: bool = False) -> None:
        """Run the sweep in the calling thread; returns when it completes, fails or is cancelled.

        Parameters
        ----------
        progress_bar : bool
            Show a ``tqdm.auto`` progress bar (a widget in notebooks, text in a terminal).
        raise_on_error : bool
            Raise the exception that failed the sweep (with its traceback)
            instead of only recording state ``failed``. Either way the
            finished results stay stored and :attr:`last_exception` holds it.

        ``KeyboardInterrupt`` (Ctrl-C) cancels the sweep and is raised again.
        """
        self._trainable_runner().run_synchronous(
            progress_bar=check_bool(progress_bar, "progress_bar"),
            raise_on_error=check_bool(raise_on_error, "raise_on_error"),
        )

    def is_running(self) -> bool:
        """Whether a sweep is running."""
        return self._runner is not None and self._runner.is_running()

    def cancel_sweep(self, wait: float = 10.0) -> bool:
        """Ask the running sweep to stop after its current training step.

        Parameters
        ----------
        wait : float
            Seconds to wait for the sweep's thread to stop (0: do not wait).

        Returns
        -------
        bool
            True if a sweep was running and has been asked to stop.

        Raises
        ------
        TypeError, ValueError
            If ``wait`` is not a number ``>= 0``.
        """
        wait = check_scalar(wait, "wait", numbers.Real, min_val=0)
        return self._runner is not None and self._runner.cancel(wait)

    @property
    def cancel_requested(self) -> bool:
        """Whether the current (or last) sweep has been asked to stop.

        True from :meth:`cancel_sweep` (or Ctrl-C, or the interpreter's exit)
        until the next start; the sweep stops before its next training step,
        so this can be True while :meth:`is_running` still is.
        """
        return self._runner is not None and self._runner.should_stop()

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the running sweep has ended (at most ``timeout`` seconds).

        For a background sweep this joins its thread, so that nothing of the
        sweep is still running when it returns True.

        Raises
        ------
        TypeError, ValueError
            If ``timeout`` is neither None nor a number ``>= 0``.
        """
        if timeout is not None:
            timeout = check_scalar(timeout, "timeout", numbers.Real, min_val=0)
        return True if self._runner is None else self._runner.wait(timeout)

    @property
    def last_exception(self) -> Optional[BaseException]:
        """The exception that failed the last sweep (with ``__traceback__``), or None."""
        return None if self._runner is None else self._runner.last_exception

    @property
    def last_traceback(self) -> Optional[str]:
        """The formatted traceback of :attr:`last_exception`, or None (never sent over HTTP)."""
        return None if self._runner is None else self._runner.last_traceback
