"""A gate on the training set of a sweep in another process, opened by the test through files.

The notebook copy of ``test_jupyterlab.py`` hands the sweep ``GatedBatches``
(``KERNEL_SOURCE``, defined in the kernel) instead of its list of batches, and
``gated_demo.py`` does the same for the demo of ``test_standalone_demo.py``: a
list, so the sweep takes it as it takes any list, that numbers every pass over
it (every ``iter()``, from 1) and logs it to ``FOLDER/passes.log``. When the
test has created ``FOLDER/gate-N`` beforehand, pass N writes
``FOLDER/reached-N`` and then waits, polling every 20 ms, until
``FOLDER/release-N`` exists: the sweep's thread is stalled at the start of that
pass, so the sweep's status (its percent complete) stays put while the test
looks at the page. A gate never released makes the pass raise after
``KERNEL_TIMEOUT`` seconds (the sweep then fails) so that nothing hangs
forever. While it waits, the gate writes ``FOLDER/stop-requested-N`` once the
sweep has registered a cancel (its ``stop_requested`` probe), so that a test
can click Cancel at a stalled step and release it only once the server has
taken the cancel.

``PassGate`` is the test's side. Pass numbers, measured on the digits notebook
with the vectorized executor (``auto`` on CPU: its 10 trainings are one stacked
model), for each sweep started from the widget:

- ``PASSES_BEFORE_TRAINING`` = 2 passes before the first training step: h1's
  reference outputs (``engine/context.py: prepare``) and the first batch that
  the vectorized executor's checks share (``vmap_support.first_batch``, for
  ``trace_reason`` and ``fused_applies``). The count of batches uses
  ``len()``, no pass.
- one pass per epoch (``stacked_training.train_stacked``),
- then one pass to evaluate on the training set (``stacked_evaluation``).

Building the widget adds one pass (the preflight's first batch). The numbers
count on from sweep to sweep, so a gate is planned from ``passes()`` read while
no sweep runs (``epoch_pass``).
"""

from __future__ import annotations

import os
import time
from typing import Callable, List, Optional, Tuple

# Sweep passes over the training set before its first training step (measured: see the module's doc).
PASSES_BEFORE_TRAINING = 2
# Seconds a stalled pass waits for its release before it raises in the kernel.
KERNEL_TIMEOUT = 600

KERNEL_SOURCE = '''
import os as _gate_os, sys as _gate_sys, threading as _gate_threading, time as _gate_time


class GatedBatches(list):
    """The training set, as a list whose passes an end-to-end test can stall (tests/e2e/sweep_gate.py)."""

    def __init__(self, batches, folder, stop_requested=None, timeout=%(timeout)r):
        super().__init__(batches)
        self.gate_folder, self.gate_timeout, self.stop_requested = folder, timeout, stop_requested
        self.gate_passes, self.gate_lock = 0, _gate_threading.Lock()

    def _gate_file(self, name):
        return _gate_os.path.join(self.gate_folder, name)

    def __iter__(self):
        with self.gate_lock:
            self.gate_passes += 1
            number = self.gate_passes
        frame, callers = _gate_sys._getframe(1), []
        while frame is not None and len(callers) < 3:
            callers.append(frame.f_code.co_name)
            frame = frame.f_back
        with open(self._gate_file("passes.log"), "a") as log:
            log.write(f"{number} {_gate_threading.current_thread().name} {'<'.join(callers)}\\n")
        if _gate_os.path.exists(self._gate_file(f"gate-{number}")):
            self._gate_stall(number)
        return super().__iter__()

    def _gate_stall(self, number):
        open(self._gate_file(f"reached-{number}"), "w").close()
        deadline = _gate_time.monotonic() + self.gate_timeout
        probing = self.stop_requested is not None
        while not _gate_os.path.exists(self._gate_file(f"release-{number}")):
            if probing:
                try:
                    stop = self.stop_requested()
                except Exception as error:
                    with open(self._gate_file(f"probe-error-{number}"), "w") as out:
                        out.write(f"{type(error).__name__}: {error}")
                    probing = stop = False
                if stop:
                    open(self._gate_file(f"stop-requested-{number}"), "w").close()
                    probing = False
            if _gate_time.monotonic() > deadline:
                raise RuntimeError(f"e2e gate: pass {number} of the training set was not released "
                                   f"within {self.gate_timeout} s")
            _gate_time.sleep(0.02)
'''


def kernel_source(timeout: float = KERNEL_TIMEOUT) -> str:
    """``GatedBatches``'s definition, to paste into a notebook cell."""
    return KERNEL_SOURCE % {"timeout": timeout}


class PassGate:
    """The test's side of ``GatedBatches``: arms gates, waits for them, releases them.

    Parameters
    ----------
    folder : str
        The folder the kernel's ``GatedBatches`` was given (made here if missing).
    describe : callable, optional
        Returns a line about the sweep (its status) for failure messages.
    ended : callable, optional
        True once the sweep has stopped running: a wait for a pass fails at
        once when the sweep has ended without reaching it.
    """

    def __init__(self, folder: str, describe: Optional[Callable[[], str]] = None,
                 ended: Optional[Callable[[], bool]] = None) -> None:
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        self.describe = describe
        self.ended = ended
        self.armed: List[int] = []
        self.released: List[int] = []

    def _path(self, name: str) -> str:
        return os.path.join(self.folder, name)

    def _exists(self, name: str) -> bool:
        return os.path.exists(self._path(name))

    # -- reading ---------------------------------------------------------------------
    def log(self) -> List[Tuple[int, str]]:
        """Every logged pass: its number and ``thread callers``."""
        try:
            with open(self._path("passes.log"), "r", encoding="utf-8") as handle:
                text = handle.read()
        except FileNotFoundError:
            return []
        lines = text.split("\n")[:-1]  # a line still being written has no newline yet
        return [(int(line.split(" ", 1)[0]), line.split(" ", 1)[1]) for line in lines]

    def passes(self) -> int:
        """How many passes over the training set the kernel has started."""
        return len(self.log())

    def epoch_pass(self, epoch: int) -> int:
        """The pass that starts ``epoch`` (from 1) of the next sweep; read while no sweep runs."""
        assert epoch >= 1
        return self.passes() + PASSES_BEFORE_TRAINING + epoch

    def _context(self) -> str:
        log = self.log()
        lines = [f"passes so far: {len(log)}; last: {log[-3:]}",
                 f"armed {self.armed}, released {self.released}, "
                 f"reached {[n for n in self.armed if self._exists(f'reached-{n}')]}"]
        if self.describe is not None:
            try:
                lines.append(f"sweep: {self.describe()}")
            except Exception as error:  # the message is for a failure already
                lines.append(f"sweep: ({type(error).__name__}: {error})")
        return "\n".join(lines)

    # -- acting ----------------------------------------------------------------------
    def arm(self, *numbers: int) -> None:
        """Gate these passes (before they start)."""
        started = self.passes()
        for number in numbers:
            assert number > started, f"pass {number} has started already ({started} passes)"
            open(self._path(f"gate-{number}"), "w").close()
            self.armed.append(number)

    def wait_reached(self, number: int, timeout: float = 120) -> None:
        """Until pass ``number`` stalls at its gate; fails at once if the sweep waits at another
        gate not released, or ended without reaching it."""
        assert number in self.armed, f"pass {number} is not gated"

        def failure() -> Optional[str]:
            held = [n for n in self.armed if n != number and n not in self.released
                    and self._exists(f"reached-{n}")]
            if held:
                return (f"waiting for the sweep's pass {number}, but it is stalled at the gate of pass "
                        f"{held[0]}, which the test has not released")
            if self.ended is not None and self.ended() and not self._exists(f"reached-{number}"):
                return f"the sweep ended without starting its training-set pass {number}"
            return None

        self._wait_for(f"reached-{number}", timeout, f"start its training-set pass {number}", failure)

    def wait_stop_requested(self, number: int, timeout: float = 60) -> None:
        """Until the sweep, stalled at pass ``number``, has registered a cancel."""

        def failure() -> Optional[str]:
            if not self._exists(f"probe-error-{number}"):
                return None
            with open(self._path(f"probe-error-{number}"), "r", encoding="utf-8") as handle:
                error = handle.read()
            return f"the gate of pass {number} cannot tell whether the sweep was asked to stop: {error}"

        self._wait_for(f"stop-requested-{number}", timeout,
                       f"register the cancel while stalled at pass {number}", failure)

    def _wait_for(self, name: str, timeout: float, what: str, failure: Callable[[], Optional[str]]) -> None:
        """Until the kernel's side writes the file ``name``. Fails with ``failure()``'s message as soon
        as it returns one, or when ``timeout`` seconds pass ("the sweep did not ``what``")."""
        deadline = time.monotonic() + timeout
        while not self._exists(name):
            message = failure()
            if message is None and time.monotonic() > deadline:
                message = f"the sweep did not {what} within {timeout:.0f} s"
            if message is not None:
                raise AssertionError(f"{message}\n{self._context()}")
            time.sleep(0.05)

    def release(self, number: int) -> None:
        open(self._path(f"release-{number}"), "w").close()
        self.released.append(number)

    def release_all(self) -> None:
        """Open every armed gate (when a test fails, so that the kernel's sweep goes on)."""
        for number in self.armed:
            if number not in self.released:
                self.release(number)


def notebook_replacements(folder: str, training_text: str, gated_text: str,
                          before_text: str) -> List[Tuple[str, str]]:
    """Replacements for ``notebook_copy``: ``GatedBatches`` defined before ``before_text``, and
    ``training_text`` (the sweep's training set as the notebook passes it) replaced by ``gated_text``,
    in which ``{folder}`` stands for the gate folder's Python literal."""
    return [
        (before_text, kernel_source() + "\n\n" + before_text),
        (training_text, gated_text.format(folder=repr(folder))),
    ]


__all__ = ("PASSES_BEFORE_TRAINING", "KERNEL_TIMEOUT", "PassGate", "kernel_source", "notebook_replacements")
