"""The runner: starts a sweep in a thread (or the caller's), feeds its executor, persists each result.

Data flows one way: the runner prepares the context (h1 once), sets kept
results aside when they were made on other data (a resume), hands the jobs
to the executor, consumes the executor's events, stores every finished job
as it arrives (model state, then its datapoints; the summary, which lists
every point, at most every ``records.SUMMARY_INTERVAL_S`` and at the end), and ends
the sweep as ``completed``, ``cancelled`` or ``failed``. Whatever happens,
every finished result stays on disk.
"""

from __future__ import annotations

import atexit
import logging
import threading
import traceback
import uuid
import weakref
from typing import Any, Callable, Dict, List, Optional, Set

import numpy as np

from ..data import count_batches
from ..evaluation import default_instance_metadata
from ..random_state import seeded_random_state
from ..training import TrainingCancelled
from .config import SweepConfig
from .context import PreparedContext, prepare
from .errors import SweepAlreadyRunningError, UnfinishedJobsError, public_error_message
from .events import BatchDone, Event, ExecutorNote, JobFailed, JobFinished, StepDone
from .families import DATASETS
from .executors import Executor
from .jobs import JobResult, TrainingJob
from .progress import CANCELLED, COMPLETED, FAILED, RUNNING, SweepProgress
from .resume import jobs_to_run, start_clean

__all__ = ["SweepRunner"]

logger = logging.getLogger("backwardcompatibilityml.sweep_management")

_background_runners: "weakref.WeakSet[SweepRunner]" = weakref.WeakSet()


def _stop_background_sweeps() -> None:
    """At interpreter exit: cancel running background sweeps and wait for their threads.

    A daemon thread still inside PyTorch while the interpreter finalises can
    abort the process; cancelling keeps the finished results and records the
    sweep as cancelled.
    """
    for runner in list(_background_runners):
        try:
            if runner.is_running():
                runner.cancel(wait=0)
            runner.wait(30)
        except Exception:  # pragma: no cover - best effort at exit
            logger.debug("stopping a sweep at exit failed", exc_info=True)


atexit.register(_stop_background_sweeps)


class _RunnerSink:
    """The executors' event sink: every event is handled as it is put, from any thread, one at a time.

    An executor may put events from the runner's thread (as the sequential
    and vectorized executors do) or from threads of its own while its
    ``run`` waits for them; either way each result is stored as it arrives,
    under one lock, so events never interleave. An error while handling an
    event put from another thread is not raised into that thread (an
    executor's worker would die of it, or swallow it): it is kept in
    :attr:`error`, ``on_error`` asks the executor to stop, and the runner
    fails the sweep with it once ``run`` has returned. Events put after
    :meth:`close` (an executor that left a thread running) are logged and
    dropped. It also keeps which jobs were stored (:attr:`finished`) and
    which failed (:attr:`failed`), for :meth:`check_every_job`.
    """

    def __init__(self, handle: Callable[[Event], None], on_error: Callable[[], None]) -> None:
        self._handle = handle
        self._on_error = on_error
        self._owner = threading.current_thread()
        self._lock = threading.Lock()
        self._closed = False
        #: The first error raised while handling an event put from another thread.
        self.error: Optional[BaseException] = None
        #: Jobs whose results were stored, and ``{job: "Type: message"}`` of those reported failed.
        self.finished: Set[TrainingJob] = set()
        self.failed: Dict[TrainingJob, str] = {}

    def put(self, event: Event) -> None:
        with self._lock:
            if self._closed:
                logger.warning("an event arrived after the executor returned and is dropped: %r", event)
                return
            if threading.current_thread() is self._owner:
                self._handle_and_note(event)
                return
            try:
                self._handle_and_note(event)
            except Exception as error:
                logger.error("handling %s from an executor thread failed", type(event).__name__, exc_info=True)
                if self.error is None:
                    self.error = error
                    self._on_error()

    def _handle_and_note(self, event: Event) -> None:
        self._handle(event)
        if isinstance(event, JobFinished):
            self.finished.add(event.result.job)
        elif isinstance(event, JobFailed):
            self.failed[event.job] = event.error

    def check_every_job(self, jobs: List[TrainingJob], executor: str) -> None:
        """Raise :class:`~.errors.UnfinishedJobsError` unless every job of ``jobs`` was stored.

        The built-in executors raise when a job fails; an executor that
        reports failures, or forgets jobs, and returns must not end the sweep
        as ``completed``.
        """
        unfinished = [job for job in jobs if job not in self.finished]
        if not unfinished:
            return
        failed = [job for job in unfinished if job in self.failed]
        if failed:
            first = failed[0]
            silent = len(unfinished) - len(failed)
            raise UnfinishedJobsError(
                f"{len(failed)} of {len(jobs)} trainings failed"
                + (f" and {silent} were never reported" if silent else "")
                + f"; the first, lambda_c={first.lambda_c} {first.family}: {self.failed[first]}")
        shown = ", ".join(f"lambda_c={job.lambda_c} {job.family}" for job in unfinished[:3])
        raise UnfinishedJobsError(
            f"the executor {executor!r} returned without reporting {len(unfinished)} of {len(jobs)} trainings "
            f"({shown}{', ...' if len(unfinished) > 3 else ''})")

    def close(self) -> None:
        """Stop handling events (called once the executor's ``run`` has returned)."""
        with self._lock:
            self._closed = True


class SweepRunner:
    """Runs one sweep at a time for a manager.

    Parameters
    ----------
    config : SweepConfig
        What to train.
    store : SweepStore
        The sweep folder.
    results : SweepRecords
        The results of the folder (``points``, ``reset(keep)``, ``write_result(result, context)``,
        ``write_summary(state, error, executor)``, ``summary_due()``).
    progress : SweepProgress
        Where the status is kept.
    executor : Executor
        How jobs are run.
    tracker_factory : callable, optional
        Builds the MLflow tracker of a sweep (``None``: no tracking).
    """

    def __init__(self, config: SweepConfig, store: Any, results: Any, progress: SweepProgress,
                 executor: Executor, tracker_factory: Optional[Callable[[], Any]] = None) -> None:
        self.config = config
        self.store = store
        self.results = results
        self.progress = progress
        self.executor = executor
        self._tracker_factory = tracker_factory
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._finished = threading.Event()
        self._finished.set()
        self._thread: Optional[threading.Thread] = None
        self._background = False
        self._folder_lock: Optional[Any] = None
        self._bar: Optional[Any] = None
        self._tracker: Optional[Any] = None
        self._sweep_id: Optional[str] = None  # new at every start: names the run in the status and summary
        self.last_exception: Optional[BaseException] = None
        self.last_traceback: Optional[str] = None

    # -- public lifecycle ---------------------------------------------------------------
    def start_background(self) -> None:
        """Start the sweep in a daemon thread and return at once."""
        with self._lock:
            jobs = self._begin()
            capture = getattr(self._tracker_factory, "capture", None)
            if capture is not None:  # MLflow's active run is per thread: note the caller's, to nest under it
                capture()
            self._background = True
            self._thread = threading.Thread(target=self._run_in_thread, args=(jobs,), name="bcml-sweep", daemon=True)
            _background_runners.add(self)
            self._thread.start()

    def run_synchronous(self, progress_bar: bool = True, raise_on_error: bool = False) -> None:
        """Run the sweep in the calling thread (see ``SweepManager.start_sweep_synchronous``)."""
        with self._lock:
            jobs = self._begin()
            self._background = False
            self._thread = threading.current_thread()
        self._run(jobs, progress_bar=progress_bar)
        if raise_on_error and self.progress.state == FAILED and self.last_exception is not None:
            raise self.last_exception

    def is_running(self) -> bool:
        """Whether a sweep runs."""
        return self.progress.state == RUNNING

    def cancel(self, wait: float = 10.0) -> bool:
        """Ask the running sweep to stop after its current training step; True if one was running."""
        with self._lock:
            if not self.is_running():
                return False
            self._cancel.set()
            runner = self._thread
        if wait and runner is not threading.current_thread():
            self._finished.wait(wait)
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the running sweep has ended; for a background sweep, join its thread."""
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return self._finished.is_set()
        if self._background:
            thread.join(timeout)
            return not thread.is_alive()
        return self._finished.wait(timeout)

    def should_stop(self) -> bool:
        """Whether the sweep has been asked to stop (checked before every training step)."""
        return self._cancel.is_set()

    # -- starting --------------------------------------------------------------------
    def _begin(self) -> List[TrainingJob]:
        """Check that a sweep may start, decide what to train, and mark it running (under the lock)."""
        if self.is_running():
            raise SweepAlreadyRunningError("a sweep is already running")
        previous = self._thread
        if self._background and previous is not None and previous.is_alive():
            previous.join(10)  # the previous sweep has ended and is only tidying up
        try:
            self._folder_lock = self.store.lock()
        except BlockingIOError:
            raise SweepAlreadyRunningError(
                f"another sweep is running in the folder {self.store.folder!r}"
            ) from None
        try:
            jobs = jobs_to_run(self.config, self.store, self.results)
        except BaseException:
            self._release_folder()
            raise
        self._cancel.clear()
        self._finished.clear()
        self.last_exception = self.last_traceback = None
        total_jobs = len(self.config.lambda_c_values) * len(self.config.families)
        self._sweep_id = uuid.uuid4().hex
        self.progress.begin(
            self.config.total_points, len(self.results.points),
            (total_jobs - len(jobs)) / total_jobs if total_jobs else 0.0, self._sweep_id,
        )
        return jobs

    def _release_folder(self) -> None:
        if self._folder_lock is not None:
            self.store.unlock(self._folder_lock)
            self._folder_lock = None

    # -- running ---------------------------------------------------------------------
    def _run_in_thread(self, jobs: List[TrainingJob]) -> None:
        try:
            from .threads import configure_sweep_thread
        except ImportError:  # pragma: no cover - the module ships with the package
            pass
        else:
            configure_sweep_thread()
        self._run(jobs, progress_bar=False)

    def _run(self, jobs: List[TrainingJob], progress_bar: bool) -> None:
        state, error = FAILED, None
        interrupted: Optional[BaseException] = None
        try:
            self.results.begin_sweep(self.config, sweep_id=self._sweep_id)
            self._write_summary(RUNNING)
            if self._tracker_factory is not None:
                self._tracker = self._tracker_factory(self._sweep_id)
            with seeded_random_state(self.config.seed, self.config.device):  # augmentation draws: h1 sees them alike
                context = prepare(self.config, should_stop=self.should_stop)
            stale = self.results.stale_reason(context)
            if stale is not None:
                # The fingerprint holds the datasets' sizes, not their contents: kept points made on other
                # instances, labels or inputs would be shown against this data. Set them aside, start over.
                logger.warning("the stored results in %s were made on other data: %s", self.store.folder, stale)
                jobs = start_clean(self.config, self.store, self.results, stale)
                self.progress.set_completed_points(0)
                self._write_summary(RUNNING)
            self.results.set_references(context)
            _warn_of_shared_ids(self.config, context)
            kept = self.results.summary_points()  # kept by a resume: one MLflow run holds them all
            if self._tracker is not None and kept:
                values = self.config.lambda_c_values
                self._tracker.log_points([(point, values.index(point["lambda_c"])) for point in kept])
            executor = self.executor
            units = self._units_per_job(context)
            total_jobs = len(self.config.lambda_c_values) * len(self.config.families)
            self.progress.plan(total_jobs - len(jobs), len(jobs), units, executor.name)
            if progress_bar and jobs:
                self._bar = _progress_bar(len(jobs) * units, total_jobs, len(jobs))
            sink = _RunnerSink(lambda event: self._handle(event, context), on_error=self._cancel.set)
            try:
                executor.run(jobs, context, sink, self.should_stop)
            except TrainingCancelled:
                if sink.error is None:
                    raise
            finally:
                sink.close()
            if sink.error is not None:  # storing a result put from an executor's thread failed
                raise sink.error
            sink.check_every_job(jobs, executor.name)
            state = COMPLETED
        except TrainingCancelled:
            state = CANCELLED
            logger.info("sweep in %s cancelled; %d datapoints kept", self.store.folder, len(self.results.points))
        except KeyboardInterrupt as exception:
            state, interrupted = CANCELLED, exception
            logger.info("sweep in %s interrupted; %d datapoints kept", self.store.folder, len(self.results.points))
        except Exception as exception:  # a failing sweep must keep what it finished
            error = public_error_message(exception)
            self.last_exception = exception
            self.last_traceback = traceback.format_exc()
            logger.error("sweep in %s failed: %s\n%s", self.store.folder, error, self.last_traceback)
        finally:
            # Tidy up first, then say the sweep has ended: a new sweep may start at once after that.
            self._close_bar(state)
            try:
                self._write_summary(state, error)
            except Exception:
                logger.exception("could not write the sweep summary")
            if self._tracker is not None:
                try:
                    self._tracker.end(state)
                except Exception:
                    logger.exception("could not end the MLflow run")
                self._tracker = None
            with self._lock:
                self._release_folder()
                self.progress.finish(state, error)
                self._finished.set()
        if interrupted is not None:
            raise interrupted

    def _units_per_job(self, context: PreparedContext) -> int:
        """Batches of one job: its training epochs, then one evaluation pass over each dataset as read."""
        evaluated = sum(count_batches(context.dataset(name)) for name in DATASETS)
        return self.config.number_of_epochs * count_batches(context.training_set) + evaluated

    def _handle(self, event: Event, context: PreparedContext) -> None:
        """Consume one event of the executor (in the runner's thread)."""
        self.progress.on_event(event)
        if isinstance(event, JobFinished):
            self._persist(event.result, context)
        elif isinstance(event, (StepDone, BatchDone)) and self._bar is not None:
            self._bar.update(len(event.jobs))
        elif isinstance(event, ExecutorNote):
            logger.debug("executor note: %s", event.message)  # the executor logs it itself; the status shows it
        elif isinstance(event, JobFailed):
            logger.error("training lambda_c=%s %s failed: %s", event.job.lambda_c, event.job.family, event.error)
        if self.results.summary_due():  # not one per job: each summary holds every point
            self._write_summary(RUNNING)

    def _persist(self, result: JobResult, context: PreparedContext) -> None:
        job = result.job
        self.store.save_model_state(job.lambda_c, job.family, result.model_state)
        points = self.results.write_result(result, context)
        self.progress.set_completed_points(len(self.results.points))
        if self._tracker is not None:
            self._tracker.log_points([(point, job.lambda_index) for point in points])

    def _write_summary(self, state: str, error: Optional[str] = None) -> None:
        self.results.write_summary(state, error, executor=self.progress.snapshot()["executor"])

    def _close_bar(self, state: str) -> None:
        if self._bar is not None:
            try:
                self._bar.set_postfix_str(state)
                self._bar.close()
            finally:
                self._bar = None


def _warn_of_shared_ids(config: SweepConfig, context: PreparedContext) -> None:
    """Warn when an instance id names an instance of both datasets and callbacks are asked by id alone."""
    training, testing = (context.references[name].ids for name in DATASETS)
    shared = np.intersect1d(training, testing, assume_unique=True)
    custom = [name for name, given in (
        ("get_instance_image_by_id", config.get_instance_image_by_id is not None),
        ("get_instance_metadata", config.get_instance_metadata is not default_instance_metadata),
    ) if given]
    if shared.size and custom:
        logger.warning(
            "%d instance ids (such as %d) name an instance of the training set and one of the testing set; "
            "%s is called with the id alone and cannot tell them apart (batches of (inputs, targets) pairs "
            "are numbered from 0 in each set): give batches (instance_ids, inputs, targets) with ids of "
            "their own", shared.size, int(shared[0]), " and ".join(custom))


def _progress_bar(total_units: int, total_jobs: int, jobs_left: int) -> Any:
    """A ``tqdm.auto`` bar over the work units of the jobs left (a widget in notebooks, text elsewhere)."""
    from tqdm.auto import tqdm

    done = total_jobs - jobs_left
    description = f"sweep ({done} of {total_jobs} trainings done)" if done else "sweep"
    return tqdm(total=total_units, desc=description, unit="step", leave=True)
