"""Thread settings of a sweep that runs in a background thread (the widget's Start button).

PyTorch's CPU kernels parallelise with OpenMP. The team of OpenMP threads
belongs to the thread that runs the kernel, and its size is a per-thread
setting: ``torch.set_num_threads`` called in one thread leaves every other
thread's count alone. A new thread starts from OpenMP's default (all cores):
torch applies its own global setting to a new thread only once one of its
parallel loops runs there, and the MKL matrix products a small model spends
its time in are called without that step.

The cause of the slowdown is the way OpenMP (GNU libgomp, which PyTorch's
wheels use) waits at the end of every parallel region. The first team of the
process (the notebook's thread) spin-waits; as soon as a second team exists
(the sweep thread's), more threads are managed than there are cores and
libgomp switches to a short spin followed by a sleep on a futex. With the
tiny operations of a sweep (MLPs, batch 32) a team hits such a barrier
hundreds of times a second, so the waiting policy decides the speed:

* on an idle 2-core machine the spinning first team is fast and the sweep
  thread's sleeping team slow: 20000 products of a 32x64 by a 64x64 matrix
  took 0.21 s in the notebook's thread and 0.76 s (3.6x) in a new thread of
  the same kernel (the issue saw 0.65 s against 2.14 s for a whole sweep);
* on a busy machine the order flips: the spinning team wastes its time slices
  waiting for a descheduled partner (measured: 11.5 s synchronous against
  1.8 s in the background for the same sweep), and ``OMP_WAIT_POLICY=active``
  makes the background just as slow.

A sweep thread without an OpenMP team has no barrier to wait at (the same
products took 0.27 s in a new thread after :func:`configure_sweep_thread`).
:func:`configure_sweep_thread` therefore leaves one core to the notebook's
threads and the widget's server, which on 2 cores means one thread (no team).
Its count is the thread's own (``torch.set_num_threads`` in a thread leaves
the other threads' counts alone), but it also becomes torch's default for
threads created later in the process.

Call :func:`configure_sweep_thread` first thing in the sweep's thread; set
``BCML_SWEEP_NUM_THREADS`` to choose the count (``inherit`` keeps torch's).
"""

from __future__ import annotations

import logging
import os
from typing import Optional

import torch

__all__ = ["configure_sweep_thread", "sweep_thread_count", "ENVIRONMENT_VARIABLE"]

logger = logging.getLogger(__name__)

ENVIRONMENT_VARIABLE = "BCML_SWEEP_NUM_THREADS"


def _available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def sweep_thread_count(inherited: int, cores: int) -> int:
    """Intra-op threads of a background sweep: ``inherited``, but at most ``cores - 1`` (and at least 1).

    Parameters
    ----------
    inherited : int
        The count torch would use in the new thread (its global default, or
        what ``torch.set_num_threads`` set before).
    cores : int
        Cores this process may run on.
    """
    return max(1, min(int(inherited), int(cores) - 1))


def configure_sweep_thread(num_threads: Optional[int] = None) -> int:
    """Set the intra-op thread count of the calling thread (a sweep's background thread).

    Call it first thing in the thread, before any tensor work. The setting is
    the thread's own: the caller's other threads (the notebook's) keep theirs.

    Parameters
    ----------
    num_threads : int, optional
        The count to use. Default: the environment variable
        ``BCML_SWEEP_NUM_THREADS`` when set (``"inherit"`` keeps torch's
        default untouched), else :func:`sweep_thread_count` of torch's
        default and the available cores.

    Returns
    -------
    int
        The count now in effect in this thread.

    Raises
    ------
    ValueError
        If ``num_threads`` (or the environment variable) is not a positive integer.
    """
    if num_threads is None:
        setting = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
        if setting.lower() == "inherit":
            return torch.get_num_threads()
        if setting:
            try:
                num_threads = int(setting)
            except ValueError:
                raise ValueError(f"{ENVIRONMENT_VARIABLE} must be a positive integer or 'inherit', "
                                 f"got {setting!r}") from None
        else:
            num_threads = sweep_thread_count(torch.get_num_threads(), _available_cores())
    if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
        raise ValueError(f"num_threads must be a positive integer, got {num_threads!r}")
    if torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)
    logger.debug("sweep thread uses %d intra-op thread(s)", num_threads)
    return num_threads
