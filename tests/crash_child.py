"""Crash harness: sweeps run in child processes that stall inside a chosen write, so a test can SIGKILL them there.

The test talks to one long-lived *zygote* process (this script). The zygote
imports the package and builds the sweep's data once, with torch on one
thread, then forks one child per command, so each crash costs a fork rather
than an interpreter start and ``import torch``. Commands on the zygote's
stdin, one per line::

    FOLDER EPOCHS STEPSIZE STALL

``STALL`` is ``never`` or ``<kind>:<k>:<where>``: stall at the k-th (1-based)
write of the child whose file name matches ``kind`` (``write``: any file,
``model``: a model state, ``summary``: the summary), ``before`` its
temporary file is created, or ``inside`` it (the content written and flushed,
not yet renamed into place).

Every line on the zygote's stdout is an event: ``ready`` (once), then per
child ``child <pid>``, ``train <lambda_c> <family>`` for each training handed
to the executor, ``started <lambda_c> <family>`` as each one starts,
``write <n> <name>`` when a write begins, ``wrote <n> <name>`` once it is in place, then either ``stalled <n> <name>`` (the child
blocks until it is killed) or ``finished <state>``, and last, from the zygote,
``exited <pid> <status>``.

The seam lives here, in the tests: the child wraps ``SweepStore._write_atomic``
and the executor of its own process; the package is not changed for it.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Set

TESTS = os.path.dirname(os.path.abspath(__file__))


# -- the test's side -----------------------------------------------------------------------------
@dataclass
class ChildRun:
    """What one child reported."""

    lines: List[str] = field(default_factory=list)
    pid: Optional[int] = None
    stalled: Optional[str] = None  # the file whose write it stalled in
    state: Optional[str] = None  # the sweep's final state when it finished

    @property
    def planned(self) -> List[str]:
        """``"<lambda_c> <family>"`` of every training the child's executor was given."""
        return [line.split(" ", 1)[1] for line in self.lines if line.startswith("train ")]

    @property
    def started(self) -> List[str]:
        """``"<lambda_c> <family>"`` of every training that started (a ``JobStarted`` event)."""
        return [line.split(" ", 1)[1] for line in self.lines if line.startswith("started ")]


class CrashHarness:
    """Starts the zygote; :meth:`run` forks a child sweep and SIGKILLs it where it stalls."""

    def __init__(self, timeout: float = 300.0) -> None:
        env = dict(os.environ, PYTHONPATH=TESTS + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
        )
        self._buffer = b""
        line = self._read_line(timeout)
        if line != "ready":
            self.close()
            raise RuntimeError(f"the crash zygote did not start: {line!r}")

    def _read_line(self, timeout: float) -> Optional[str]:
        deadline = time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no word from the crash harness in time")
            ready, _, _ = select.select([fd], [], [], remaining)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None  # the zygote has exited
                self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def run(self, folder: "str | os.PathLike[str]", epochs: int, stepsize: float, stall: str,
            timeout: float = 300.0) -> ChildRun:
        """Run a sweep on ``folder`` in a fresh child; kill it with SIGKILL once it stalls.

        Returns when the child is gone (killed or finished), so its folder lock is free.
        """
        self.process.stdin.write(f"{os.fspath(folder)} {epochs} {stepsize} {stall}\n".encode())
        self.process.stdin.flush()
        run = ChildRun()
        while True:
            line = self._read_line(timeout)
            if line is None:
                raise RuntimeError(f"the crash zygote died; child said {run.lines[-5:]}")
            if line.startswith("exited "):
                return run
            run.lines.append(line)
            if line.startswith("child "):
                run.pid = int(line.split()[1])
            elif line.startswith("stalled "):
                run.stalled = line.split(" ", 2)[2]
                os.kill(run.pid, signal.SIGKILL)
            elif line.startswith("finished "):
                run.state = line.split()[1]
            elif line.startswith("error "):
                raise RuntimeError(f"the child sweep raised: {line}")

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process.stdout.close()

    def __enter__(self) -> "CrashHarness":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def temporary_files(folder: "str | os.PathLike[str]") -> List[str]:
    """The ``.tmp-*`` files of a sweep folder."""
    return sorted(name for name in os.listdir(folder) if name.startswith(".tmp-"))


def corrupt_files(folder: "str | os.PathLike[str]") -> List[str]:
    """Files of a sweep folder that do not read back whole (JSON, Arrow IPC, model states), with the reason."""
    import pyarrow as pa
    import torch

    bad = []
    for name in sorted(os.listdir(folder)):
        path = os.path.join(folder, name)
        if name.startswith(".") or not os.path.isfile(path):
            continue
        try:
            if name.endswith(".json"):
                with open(path) as handle:
                    json.load(handle)
            elif name.endswith(".arrow"):
                with pa.memory_map(path) as source:
                    pa.ipc.open_file(source).read_all()
            elif name.endswith(".state"):
                torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # any failure to read is corruption
            bad.append(f"{name}: {type(error).__name__}: {error}")
    return bad


def finished_jobs(folder: "str | os.PathLike[str]") -> Dict[str, Set[int]]:
    """``"<lambda_c> <family>" -> datapoint indices`` of each job whose results are complete on disk.

    Judged as a resume judges it: both datapoints are readable and the model state exists.
    """
    from backwardcompatibilityml.sweep_management import SweepManager

    if not os.path.isdir(folder):
        return {}
    try:
        manager = SweepManager.open_folder(os.fspath(folder))
    except ValueError:  # no summary and no evaluation yet
        return {}
    points: Dict[str, Set[int]] = defaultdict(set)
    for point in manager.get_sweep_summary()["data"]:
        family = "new-error" if point["new-error"] else "strict-imitation"
        points[f"{float(point['lambda_c'])!r} {family}"].add(point["datapoint_index"])
    return {
        job: indices for job, indices in points.items()
        if len(indices) == 2 and os.path.isfile(os.path.join(folder, "{}-model-{}.state".format(*job.split())))
    }


def job_files(folder: "str | os.PathLike[str]", jobs: Dict[str, Set[int]]) -> Dict[str, int]:
    """``name -> mtime_ns`` of the model states and evaluation files of ``jobs``."""
    indices = set().union(*jobs.values()) if jobs else set()
    models = {"{}-model-{}.state".format(*job.split()) for job in jobs}
    files = {}
    for name in os.listdir(folder):
        match = re.match(r"^(\d+)-evaluation", name)
        if name in models or (match and int(match.group(1)) in indices):
            files[name] = os.stat(os.path.join(folder, name)).st_mtime_ns
    return files


# -- the zygote and its children -------------------------------------------------------------------
def _report(line: str) -> None:
    os.write(1, (line + "\n").encode())


class ReportingSink:
    """Passes events on and reports every training that starts."""

    def __init__(self, sink) -> None:
        self.sink = sink

    def put(self, event) -> None:
        if type(event).__name__ == "JobStarted":
            for job in event.jobs:
                _report(f"started {job.lambda_c!r} {job.family}")
        self.sink.put(event)


class LoggingExecutor:
    """Delegates to the default executor and reports every training it is given and starts."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.name = inner.name

    def applies(self, context):
        return self.inner.applies(context)

    def run(self, jobs, context, sink, should_stop):
        for job in jobs:
            _report(f"train {job.lambda_c!r} {job.family}")
        return self.inner.run(jobs, context, ReportingSink(sink), should_stop)


def _install_stall(stall: str) -> None:
    """Wrap the store's atomic write: count writes, report them, and block in the chosen one."""
    from backwardcompatibilityml.store import SUMMARY_FILE, SweepStore

    kinds = {
        "write": lambda name: True,
        "model": lambda name: name.endswith(".state"),
        "summary": lambda name: name == SUMMARY_FILE,
    }
    original = SweepStore._write_atomic
    counts = {"all": 0, "matching": 0}
    kind, target, where = ("write", "0", "before") if stall == "never" else stall.split(":")

    def block(number: int, name: str) -> None:
        _report(f"stalled {number} {name}")
        threading.Event().wait()  # until SIGKILL

    def write_atomic(self, name, write, mode):
        counts["all"] += 1
        number = counts["all"]
        _report(f"write {number} {name}")
        stall_here = False
        if kinds[kind](name):
            counts["matching"] += 1
            stall_here = counts["matching"] == int(target)
        if stall_here and where == "before":
            block(number, name)
        if stall_here and where == "inside":
            def stalled_write(handle):
                write(handle)
                handle.flush()
                block(number, name)
            original(self, name, stalled_write, mode)
        else:
            original(self, name, write, mode)
        _report(f"wrote {number} {name}")

    SweepStore._write_atomic = write_atomic


def _child(folder: str, epochs: str, stepsize: str, stall: str) -> None:
    from backwardcompatibilityml.engine.executors import resolve_executor
    from sweep_setup import build_manager

    _report(f"child {os.getpid()}")
    _install_stall(stall)
    manager = build_manager(folder, epochs=int(epochs), stepsize=float(stepsize),
                            executor=LoggingExecutor(resolve_executor("auto")))
    manager.start_sweep_synchronous(progress_bar=False)
    _report(f"finished {manager.get_sweep_status()['state']}")


def serve() -> None:
    """The zygote: import and warm up once, then fork a child per command line."""
    import torch

    torch.set_num_threads(1)  # no thread pool exists when the children are forked
    torch.set_num_interop_threads(1)
    from sweep_setup import build_manager

    with tempfile.TemporaryDirectory() as scratch:
        build_manager(os.path.join(scratch, "warm-up"), epochs=1, stepsize=1.0, executor="sequential")
    _report("ready")
    for line in sys.stdin:
        folder, epochs, stepsize, stall = line.split()
        pid = os.fork()
        if pid == 0:
            status = 0
            try:
                _child(folder, epochs, stepsize, stall)
            except BaseException as error:  # reported to the test, which fails with it
                _report("error " + repr(error).replace("\n", " "))
                traceback.print_exc()
                status = 1
            finally:
                os._exit(status)
        _, status = os.waitpid(pid, 0)
        _report(f"exited {pid} {status}")


if __name__ == "__main__":
    serve()
