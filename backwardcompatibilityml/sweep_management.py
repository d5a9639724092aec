"""SweepManager: train h2 for every lambda_c of a grid and both loss families, and keep the results.

Lifecycle: ``idle`` -> ``running`` -> ``completed`` / ``failed`` / ``cancelled``.
Results stream: each datapoint is stored and visible as soon as it is
evaluated. See :class:`SweepManager`.
"""

from __future__ import annotations

import atexit
import copy
import hashlib
import json
import logging
import math
import numbers
import re
import threading
import time
import weakref
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional

import torch

from .data import ReferenceOutputs, count_batches, has_fixed_order
from .device import check_model_device, resolve_device
from .evaluation import default_instance_metadata, metric_name
from .metrics import model_accuracy
from .store import SweepStore, point_of
from .sweep_jobs import (
    FAMILIES, NEW_ERROR, STRICT_IMITATION, InThreadExecutor, JobResult, SweepContext, TrainingJob, run_training_job,
)
from .training import TrainingCancelled, check_class, check_positive_int
from .tracking import MlflowSweepTracker, require_mlflow

__all__ = ["SweepManager", "SweepAlreadyRunningError", "ReadOnlySweepError", "lambda_c_grid"]

logger = logging.getLogger(__name__)

IDLE, RUNNING, COMPLETED, FAILED, CANCELLED = "idle", "running", "completed", "failed", "cancelled"


# Managers whose sweep may run in a background thread: stopped at interpreter exit.
_background_managers: "weakref.WeakSet[SweepManager]" = weakref.WeakSet()


def _stop_background_sweeps() -> None:
    """At interpreter exit: cancel running background sweeps and wait for their threads.

    A daemon thread still inside PyTorch while the interpreter finalises can
    abort the process; cancelling keeps the finished results and records the
    sweep as cancelled.
    """
    for manager in list(_background_managers):
        try:
            if manager.is_running():
                manager.cancel_sweep(wait=0)
            manager.wait(30)
        except Exception:  # pragma: no cover - best effort at exit
            logger.debug("stopping a sweep at exit failed", exc_info=True)


atexit.register(_stop_background_sweeps)


class SweepAlreadyRunningError(RuntimeError):
    """``start_sweep`` was called while a sweep runs."""


class ReadOnlySweepError(RuntimeError):
    """The sweep was opened from a folder without models and cannot train."""


def lambda_c_grid(stepsize: float) -> List[float]:
    """The lambda_c values ``k * stepsize`` for ``k = 0 .. floor(1 / stepsize)``, rounded.

    >>> lambda_c_grid(0.3)
    [0.0, 0.3, 0.6, 0.9]
    >>> lambda_c_grid(0.25)[-1]
    1.0
    """
    if isinstance(stepsize, bool) or not isinstance(stepsize, numbers.Real):
        raise TypeError(f"lambda_c_stepsize must be a real number, got {type(stepsize).__name__}")
    stepsize = float(stepsize)
    if not (math.isfinite(stepsize) and MIN_STEPSIZE <= stepsize <= 1.0):
        raise ValueError(f"lambda_c_stepsize must lie in [{MIN_STEPSIZE}, 1], got {stepsize!r}")
    count = int(math.floor(1.0 / stepsize + 1e-9))
    return [round(k * stepsize, 10) for k in range(count + 1)]


_PATH_RE = re.compile(r"""(?<![\w.~])(?:[A-Za-z]:[\\/]|~?/)[^\s'"<>]+""")
MIN_STEPSIZE = 0.001


def public_error_message(exception: BaseException) -> str:
    """``"Type: message"`` for the status and the API, with file paths left out.

    The full exception, traceback included, goes to :mod:`logging`; what is
    shown to a web page must not reveal the layout of the machine.
    """
    name = type(exception).__name__
    if isinstance(exception, OSError) and exception.strerror:
        return f"{name}: {exception.strerror}"
    message = _PATH_RE.sub("<path>", str(exception))
    return f"{name}: {message}" if message else name


def _state_digest(model: torch.nn.Module) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def _size_of(dataset: Any) -> Optional[int]:
    try:
        return len(dataset)
    except TypeError:
        return None


def _check_pairs_have_fixed_order(dataset: Any, name: str) -> None:
    """Refuse early a shuffling DataLoader of (inputs, targets) pairs (instances need stable ids)."""
    if has_fixed_order(dataset):
        return
    try:
        first = dataset.dataset[0]
    except Exception:  # not map-style: found when its first batch is read
        return
    if isinstance(first, (tuple, list)) and len(first) == 2:
        raise ValueError(
            f"{name} is a shuffling DataLoader of (inputs, targets) pairs; instances need stable ids: "
            "give items (instance_id, inputs, target), e.g. TensorDataset(torch.arange(n), x, y)"
        )


def _qualname(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"


def _check_kwargs(value: Any, name: str) -> Dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of keyword arguments, got {type(value).__name__}")
    return dict(value)


class SweepManager:
    """Trains and evaluates h2 for each lambda_c and loss family, in a thread, and stores the results.

    For every lambda_c of :func:`lambda_c_grid` it trains a fresh deep copy of
    ``h2`` with the New Error loss, then another with the Strict Imitation
    loss, and evaluates each on the training and the test set: datapoints
    0, 1, 2, ... in the order NE-train, NE-test, SI-train, SI-test. h1 is never
    modified; its outputs are computed once per instance and reused by every
    training and evaluation.

    Results live in ``folder_name``: ``sweep_summary.json``,
    ``<i>-evaluation-data.json`` and ``<lambda_c>-model-<family>.state``, each
    written atomically. A manager created on a folder that holds results serves
    them at once. ``start_sweep`` on a partial sweep of the same configuration
    resumes it (finished jobs are not retrained); on a complete one, or one of a
    different configuration, it starts clean, after moving the earlier results
    into the subfolder ``previous/``.

    Parameters
    ----------
    folder_name : str
        Folder of the results (created if missing).
    number_of_epochs : int
        Training epochs per job.
    h1 : torch.nn.Module
        The reference (old) model.
    h2 : torch.nn.Module
        The new model; every job trains a deep copy of it.
    training_set, test_set : iterable of (instance_ids, inputs, targets)
        Re-iterable batches (lists or DataLoaders); ``instance_ids`` are global ids.
    batch_size_train, batch_size_test : int
        Batch sizes of the two datasets (recorded in the configuration).
    OptimizerClass : type
        Optimizer class, built as ``OptimizerClass(h2.parameters(), **optimizer_kwargs)``.
    optimizer_kwargs : dict or None
        Its keyword arguments.
    NewErrorLossClass, StrictImitationLossClass : type
        Loss classes of the two families (see :mod:`backwardcompatibilityml.loss`).
    lambda_c_stepsize : float
        Grid step in (0, 1] (default 0.25: 0, 0.25, 0.5, 0.75, 1.0).
    new_error_loss_kwargs, strict_imitation_loss_kwargs : dict, optional
        Extra keyword arguments of the losses (``num_classes``, ``discriminant_pivot``).
    performance_metric : callable
        ``metric(model, dataset, device) -> float`` (default accuracy).
    get_instance_image_by_id : callable, optional
        ``instance_id -> image``, served by the widget.
    get_instance_metadata : callable, optional
        ``instance_id -> str`` (default: the id as text).
    device : {"cpu", "cuda"}
        Where inputs go; the models must already be there.
    use_ml_flow : bool
        Log the sweep to MLflow (needs the ``[mlflow]`` extra).
    ml_flow_run_name : str
        Name of the MLflow run.
    seed : int
        Seed of the random number generators at the start of every training, so
        that every job sees the same batch order (shuffling DataLoaders) and
        the same dropout draws, and a resumed sweep trains as the first would have.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong type or value (the message names the argument).
    ImportError
        If ``use_ml_flow=True`` and MLflow is not installed.
    """

    RECORD_CACHE_SIZE = 8

    def __init__(
        self,
        folder_name: str,
        number_of_epochs: int,
        h1: torch.nn.Module,
        h2: torch.nn.Module,
        training_set: Iterable,
        test_set: Iterable,
        batch_size_train: int,
        batch_size_test: int,
        OptimizerClass: type,
        optimizer_kwargs: Optional[Mapping[str, Any]],
        NewErrorLossClass: type,
        StrictImitationLossClass: type,
        lambda_c_stepsize: float = 0.25,
        new_error_loss_kwargs: Optional[Mapping[str, Any]] = None,
        strict_imitation_loss_kwargs: Optional[Mapping[str, Any]] = None,
        performance_metric: Callable = model_accuracy,
        get_instance_image_by_id: Optional[Callable[[int], Any]] = None,
        get_instance_metadata: Optional[Callable[[int], str]] = None,
        device: str = "cpu",
        use_ml_flow: bool = False,
        ml_flow_run_name: str = "compatibility_sweep",
        seed: int = 0,
    ) -> None:
        self.lambda_c_values = lambda_c_grid(lambda_c_stepsize)
        self.lambda_c_stepsize = float(lambda_c_stepsize)
        self.number_of_epochs = check_positive_int(number_of_epochs, "number_of_epochs")
        self.batch_size_train = check_positive_int(batch_size_train, "batch_size_train")
        self.batch_size_test = check_positive_int(batch_size_test, "batch_size_test")
        self.device = resolve_device(device)
        for name, model in (("h1", h1), ("h2", h2)):
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
            check_model_device(model, self.device, name)
        for name, dataset in (("training_set", training_set), ("test_set", test_set)):
            if dataset is None or not isinstance(dataset, Iterable) or isinstance(dataset, Iterator):
                raise TypeError(
                    f"{name} must be a re-iterable of (instance_ids, inputs, targets) batches "
                    f"(a list or a DataLoader), got {type(dataset).__name__}"
                )
            _check_pairs_have_fixed_order(dataset, name)
        self.optimizer_class = check_class(OptimizerClass, "OptimizerClass")
        self.optimizer_kwargs = _check_kwargs(optimizer_kwargs, "optimizer_kwargs")
        self.loss_classes = {
            NEW_ERROR: check_class(NewErrorLossClass, "NewErrorLossClass"),
            STRICT_IMITATION: check_class(StrictImitationLossClass, "StrictImitationLossClass"),
        }
        self.loss_kwargs = {
            NEW_ERROR: _check_kwargs(new_error_loss_kwargs, "new_error_loss_kwargs"),
            STRICT_IMITATION: _check_kwargs(strict_imitation_loss_kwargs, "strict_imitation_loss_kwargs"),
        }
        for name, callback in (
            ("performance_metric", performance_metric),
            ("get_instance_image_by_id", get_instance_image_by_id),
            ("get_instance_metadata", get_instance_metadata),
        ):
            if callback is not None and not callable(callback):
                raise TypeError(f"{name} must be callable, got {type(callback).__name__}")
        if performance_metric is None:
            raise TypeError("performance_metric must be callable, got None")
        if not isinstance(ml_flow_run_name, str) or not ml_flow_run_name:
            raise TypeError("ml_flow_run_name must be a non-empty string")
        self.use_ml_flow = bool(use_ml_flow)
        if self.use_ml_flow:
            require_mlflow()
        self.ml_flow_run_name = ml_flow_run_name
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed = seed
        self._fingerprint_inputs = {
            "h1": _state_digest(h1), "h2": _state_digest(h2),
            "training_batches": _size_of(training_set), "test_batches": _size_of(test_set), "seed": seed,
        }
        self.h1, self.h2 = h1, h2
        self.training_set, self.test_set = training_set, test_set
        self.performance_metric = performance_metric
        self.get_instance_image_by_id = get_instance_image_by_id
        self.get_instance_metadata = get_instance_metadata or default_instance_metadata
        self.executor = InThreadExecutor()
        self._store = SweepStore(folder_name)
        self.folder_name = self._store.folder
        self._trainable = True
        self._lock = threading.RLock()
        self._cancel = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self._finished = threading.Event()
        self._finished.set()  # no sweep runs
        self._background = False
        self._generation = 0
        self._folder_lock: Optional[Any] = None
        self._points: Dict[int, Dict[str, Any]] = {}
        self._record_cache: "OrderedDict[int, Dict[str, Any]]" = OrderedDict()
        self._summary_extra: Dict[str, Any] = {}
        self._status = self._idle_status()
        self._load_folder()

    # -- opening a folder ---------------------------------------------------------------
    @classmethod
    def open_folder(cls, folder_name: str) -> "SweepManager":
        """Open a saved sweep read-only: browse its results; ``start_sweep`` raises ReadOnlySweepError."""
        manager = cls.__new__(cls)
        manager._store = SweepStore(folder_name)
        manager.folder_name = manager._store.folder
        manager._trainable = False
        manager._lock = threading.RLock()
        manager._cancel = threading.Event()
        manager._thread = None
        manager._finished = threading.Event()
        manager._finished.set()
        manager._background = False
        manager._generation = 0
        manager._folder_lock = None
        manager._points = {}
        manager._record_cache = OrderedDict()
        manager._summary_extra = {}
        manager.lambda_c_values = []
        manager.get_instance_image_by_id = None
        manager.get_instance_metadata = default_instance_metadata
        manager.use_ml_flow = False
        manager._status = manager._idle_status()
        manager._load_folder()
        if manager._store.read_summary() is None and not manager._points:
            raise ValueError(f"{folder_name!r} holds no sweep (no sweep_summary.json and no evaluation files)")
        return manager

    def _load_folder(self) -> None:
        summary = self._store.read_summary() or {}
        records = self._store.read_points()
        with self._lock:
            self._points = records
            self._record_cache.clear()
            self._summary_extra = {
                key: summary.get(key)
                for key in ("h1_performance", "performance_metric", "fingerprint", "configuration", "lambda_c_values")
            }
            stored_values = summary.get("lambda_c_values") or []
            if not self.lambda_c_values and stored_values:
                self.lambda_c_values = list(stored_values)
            total = 4 * len(stored_values or self.lambda_c_values) or len(records)
            total = max(total, len(records))
            stored_state = summary.get("state")
            if records and len(records) >= total:
                state = COMPLETED
            elif stored_state in (FAILED, CANCELLED):
                state = stored_state
            else:
                state = IDLE
            self._status.update(
                state=state,
                completed_points=len(records),
                total_points=total,
                percent_complete=min(1.0, len(records) / total) if total else 0.0,
                error=summary.get("error") if state == FAILED else None,
            )
        stored = summary.get("fingerprint")
        if self._trainable and records and stored and stored != self.fingerprint():
            logger.warning(
                "the results in %s were made with other models, data or settings; they are shown until a new "
                "sweep replaces them", self.folder_name,
            )

    # -- configuration --------------------------------------------------------------------
    def configuration(self) -> Dict[str, Any]:
        """The settings that make two sweeps comparable (the resume fingerprint covers them)."""
        return {
            "lambda_c_stepsize": self.lambda_c_stepsize,
            "number_of_epochs": self.number_of_epochs,
            "batch_size_train": self.batch_size_train,
            "batch_size_test": self.batch_size_test,
            "optimizer_class": _qualname(self.optimizer_class),
            "optimizer_kwargs": {k: repr(v) for k, v in sorted(self.optimizer_kwargs.items())},
            "new_error_loss_class": _qualname(self.loss_classes[NEW_ERROR]),
            "strict_imitation_loss_class": _qualname(self.loss_classes[STRICT_IMITATION]),
            "new_error_loss_kwargs": {k: repr(v) for k, v in sorted(self.loss_kwargs[NEW_ERROR].items())},
            "strict_imitation_loss_kwargs": {
                k: repr(v) for k, v in sorted(self.loss_kwargs[STRICT_IMITATION].items())
            },
            "performance_metric": metric_name(self.performance_metric),
        }

    def fingerprint(self) -> str:
        """A hash of :meth:`configuration`, the initial weights of h1 and h2, the datasets' sizes and the seed.

        A sweep resumes only results with the same fingerprint.
        """
        text = json.dumps({"configuration": self.configuration(), **self._fingerprint_inputs}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- public lifecycle -----------------------------------------------------------------
    def start_sweep(self) -> None:
        """Start the sweep in a background thread and return at once.

        Raises
        ------
        SweepAlreadyRunningError
            If a sweep is running.
        ReadOnlySweepError
            If the manager was opened with :meth:`open_folder`.
        """
        with self._lock:
            jobs = self._begin()
            self._background = True
            self._thread = threading.Thread(target=self._run, args=(jobs,), name="bcml-sweep", daemon=True)
            _background_managers.add(self)
            self._thread.start()

    def start_sweep_synchronous(self) -> None:
        """Run the sweep in the calling thread; returns when it completes, fails or is cancelled.

        An exception in training is not raised: it ends the sweep with state
        ``failed`` (see :meth:`get_sweep_status`). ``KeyboardInterrupt`` (Ctrl-C)
        cancels the sweep and is raised again.
        """
        with self._lock:
            jobs = self._begin()
            self._background = False
            self._thread = threading.current_thread()
        self._run(jobs)

    def is_running(self) -> bool:
        """Whether a sweep is running."""
        with self._lock:
            return self._status["state"] == RUNNING

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
        """
        with self._lock:
            if self._status["state"] != RUNNING:
                return False
            self._cancel.set()
            runner = self._thread
        if wait and runner is not threading.current_thread():
            self._finished.wait(wait)
        return True

    def wait(self, timeout: Optional[float] = None) -> bool:
        """Block until the running sweep has ended (at most ``timeout`` seconds).

        For a background sweep this joins its thread, so that nothing of the
        sweep is still running when it returns True.
        """
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return self._finished.is_set()
        if self._background:
            thread.join(timeout)
            return not thread.is_alive()
        return self._finished.wait(timeout)

    # -- reading results ---------------------------------------------------------------------
    def get_sweep_status(self) -> Dict[str, Any]:
        """A snapshot of the sweep's progress.

        Returns
        -------
        dict
            ``running``, ``state`` (idle / running / completed / failed /
            cancelled), ``percent_complete`` (0..1, measured in training steps
            and evaluation batches), ``lambda_c`` and ``loss_family`` of the
            current training, ``loss`` (last step), ``completed_points``,
            ``total_points``, ``eta_seconds`` and ``error`` ("Type: message" or None).
        """
        with self._lock:
            status = dict(self._status)
        status["running"] = status["state"] == RUNNING
        return status

    def get_sweep_summary(self) -> Dict[str, Any]:
        """``{h1_performance, performance_metric, data}`` with every datapoint finished so far.

        ``h1_performance`` is h1's performance on the test set; each entry of
        ``data`` carries h1's performance on its own dataset too.
        """
        with self._lock:
            points = [self._points[i] for i in sorted(self._points)]
            extra = dict(self._summary_extra)
        h1_test = next((p["h1_performance"] for p in points if p["testing"]), extra.get("h1_performance"))
        return {
            "h1_performance": h1_test,
            "performance_metric": extra.get("performance_metric") or (
                metric_name(self.performance_metric) if self._trainable else None
            ),
            "data": points,
        }

    def get_evaluation(self, datapoint_index: int) -> Dict[str, Any]:
        """The full evaluation record of a datapoint.

        Records are read from the sweep folder and the last
        ``RECORD_CACHE_SIZE`` are kept in memory, so memory does not grow with
        the number of datapoints. While a record stays cached the same object
        is returned (callers may cache what they derive from it by identity).

        Raises
        ------
        KeyError
            If no such datapoint has been evaluated.
        """
        with self._lock:
            if datapoint_index not in self._points:
                raise KeyError(datapoint_index)
            record = self._record_cache.get(datapoint_index)
            if record is not None:
                self._record_cache.move_to_end(datapoint_index)
                return record
            generation = self._generation
        record = self._store.read_evaluation(datapoint_index)
        with self._lock:
            if generation != self._generation:
                # A new sweep started while the file was read: what was read may be stale.
                return self.get_evaluation(datapoint_index)
            if record is None:
                raise KeyError(datapoint_index)
            cached = self._record_cache.get(datapoint_index)
            return cached if cached is not None else self._remember(record)

    def _remember(self, record: Dict[str, Any]) -> Dict[str, Any]:
        """Cache ``record`` as the current one of its datapoint (replacing any older one)."""
        index = record["datapoint_index"]
        self._record_cache[index] = record
        self._record_cache.move_to_end(index)
        while len(self._record_cache) > self.RECORD_CACHE_SIZE:
            self._record_cache.popitem(last=False)
        return record

    def _forget_results(self, keep: Dict[int, Dict[str, Any]]) -> None:
        with self._lock:
            self._points = keep
            self._record_cache.clear()
            self._generation += 1

    def load_model(self, lambda_c: float, family: str) -> torch.nn.Module:
        """A copy of h2 with the weights trained for ``(lambda_c, family)``.

        ``family`` is ``"new-error"`` or ``"strict-imitation"``.
        """
        if family not in FAMILIES:
            raise ValueError(f"family must be one of {FAMILIES}, got {family!r}")
        if not self._trainable:
            raise ReadOnlySweepError("a sweep opened read-only has no h2 to load weights into")
        model = copy.deepcopy(self.h2)
        model.load_state_dict(self._store.load_model_state(lambda_c, family, map_location=self.device))
        return model

    # -- the sweep ------------------------------------------------------------------------------
    def _idle_status(self) -> Dict[str, Any]:
        return {
            "running": False, "state": IDLE, "percent_complete": 0.0, "lambda_c": None, "loss_family": None,
            "loss": None, "completed_points": 0, "total_points": 4 * len(self.lambda_c_values),
            "eta_seconds": None, "error": None,
        }

    def _begin(self) -> List[TrainingJob]:
        """Check that a sweep may start, decide what to train, and mark the sweep running (under the lock)."""
        if not self._trainable:
            raise ReadOnlySweepError("this sweep was opened read-only from its folder; it cannot train")
        if self._status["state"] == RUNNING:
            raise SweepAlreadyRunningError("a sweep is already running")
        previous = self._thread
        if self._background and previous is not None and previous.is_alive():
            previous.join(10)  # the previous sweep has ended and is only tidying up
        try:
            self._folder_lock = self._store.lock()
        except BlockingIOError:
            raise SweepAlreadyRunningError(
                f"another sweep is running in the folder {self.folder_name!r}"
            ) from None
        try:
            jobs = self._jobs_to_run()
        except BaseException:
            self._release_folder()
            raise
        self._cancel.clear()
        self._finished.clear()
        total_jobs = 2 * len(self.lambda_c_values)
        self._status = self._idle_status()
        self._status.update(
            state=RUNNING, running=True, completed_points=len(self._points),
            percent_complete=(total_jobs - len(jobs)) / total_jobs if total_jobs else 0.0,
        )
        self._units_done = 0
        self._units_total = 1
        self._units_at_start = 0
        self._run_started = time.monotonic()
        return jobs

    def _release_folder(self) -> None:
        if self._folder_lock is not None:
            self._store.unlock(self._folder_lock)
            self._folder_lock = None

    def _jobs_to_run(self) -> List[TrainingJob]:
        jobs = [
            TrainingJob(k, lambda_c, family)
            for k, lambda_c in enumerate(self.lambda_c_values)
            for family in FAMILIES
        ]
        summary = self._store.read_summary() or {}
        records = self._store.read_points()
        done = [
            job for job in jobs
            if all(i in records for i in job.datapoint_indices) and self._store.has_model_state(job.lambda_c, job.family)
        ]
        same_config = summary.get("fingerprint") == self.fingerprint()
        if same_config and 0 < len(done) < len(jobs):
            logger.info("resuming the sweep in %s: %d of %d trainings already done", self.folder_name, len(done), len(jobs))
            keep = {i for job in done for i in job.datapoint_indices}
            self._forget_results({i: records[i] for i in keep})
            return [job for job in jobs if job not in done]
        if records or summary:
            reason = "the previous sweep is complete" if same_config else "its configuration, models or data differ"
            logger.info("starting the sweep in %s from scratch: %s", self.folder_name, reason)
        previous = self._store.clear()
        if previous:
            logger.info("the previous results of %s were moved to %s", self.folder_name, previous)
        self._forget_results({})
        return jobs

    def _run(self, jobs: List[TrainingJob]) -> None:
        tracker: Optional[MlflowSweepTracker] = None
        state, error = FAILED, None
        interrupted: Optional[BaseException] = None
        try:
            self._summary_extra = {
                "fingerprint": self.fingerprint(),
                "configuration": self.configuration(),
                "performance_metric": metric_name(self.performance_metric),
                "lambda_c_values": self.lambda_c_values,
            }
            self._write_summary(RUNNING)
            if self.use_ml_flow:
                tracker = MlflowSweepTracker(self.ml_flow_run_name, self.configuration())
                for point in self.get_sweep_summary()["data"]:  # kept by a resume: one run holds them all
                    tracker.log_point(point, self.lambda_c_values.index(point["lambda_c"]))
            context = self._context()
            train_batches = count_batches(self.training_set)
            test_batches = count_batches(self.test_set)
            per_job = self.number_of_epochs * train_batches + train_batches + test_batches
            with self._lock:
                done_jobs = 2 * len(self.lambda_c_values) - len(jobs)
                self._units_total = max(1, (done_jobs + len(jobs)) * per_job)
                self._units_done = done_jobs * per_job
                self._units_at_start = self._units_done
                self._status["completed_points"] = len(self._points)
                self._status["percent_complete"] = self._units_done / self._units_total
            for result in self.executor.map(lambda job: run_training_job(job, context, self), jobs):
                self._persist(result, tracker)
            state = COMPLETED
        except TrainingCancelled:
            state = CANCELLED
            logger.info("sweep in %s cancelled; %d datapoints kept", self.folder_name, len(self._points))
        except KeyboardInterrupt as exception:
            state, interrupted = CANCELLED, exception
            logger.info("sweep in %s interrupted; %d datapoints kept", self.folder_name, len(self._points))
        except Exception as exception:  # a failing sweep must keep what it finished
            error = public_error_message(exception)
            logger.exception("sweep in %s failed", self.folder_name)
        finally:
            # Tidy up first, then say the sweep has ended: a new sweep may start at once after that.
            try:
                self._write_summary(state, error)
            except Exception:
                logger.exception("could not write the sweep summary")
            if tracker is not None:
                try:
                    tracker.end(state)
                except Exception:
                    logger.exception("could not end the MLflow run")
            with self._lock:
                self._release_folder()
                self._status.update(state=state, running=False, error=error, eta_seconds=None)
                if state == COMPLETED:
                    self._status["percent_complete"] = 1.0
                self._finished.set()
        if interrupted is not None:
            raise interrupted

    def _context(self) -> SweepContext:
        return SweepContext(
            h2=self.h2,
            training_set=self.training_set,
            test_set=self.test_set,
            references=(ReferenceOutputs(self.h1, self.device), ReferenceOutputs(self.h1, self.device)),
            number_of_epochs=self.number_of_epochs,
            optimizer_class=self.optimizer_class,
            optimizer_kwargs=self.optimizer_kwargs,
            loss_classes=self.loss_classes,
            loss_kwargs=self.loss_kwargs,
            device=self.device,
            performance_metric=self.performance_metric,
            get_instance_metadata=self.get_instance_metadata,
            seed=self.seed,
        )

    def _persist(self, result: JobResult, tracker: Optional[MlflowSweepTracker]) -> None:
        job = result.job
        self._store.save_model_state(job.lambda_c, job.family, result.model_state)
        for record in result.evaluations:
            self._store.write_evaluation(record)
            with self._lock:
                self._points[record["datapoint_index"]] = point_of(record)
                self._remember(record)
                self._status["completed_points"] = len(self._points)
            if tracker is not None:
                tracker.log_point(point_of(record), job.lambda_index)
        self._write_summary(RUNNING)

    def _write_summary(self, state: str, error: Optional[str] = None) -> None:
        summary = self.get_sweep_summary()
        summary.update({
            key: self._summary_extra.get(key) for key in ("fingerprint", "configuration", "lambda_c_values")
        })
        summary["state"] = state
        summary["error"] = error
        self._store.write_summary(summary)

    # -- ProgressSink (called from the sweep's thread) ----------------------------------------------
    def begin(self, job: TrainingJob) -> None:
        with self._lock:
            self._status.update(lambda_c=job.lambda_c, loss_family=job.family, loss=None)

    def step(self, loss: float) -> None:
        with self._lock:
            self._status["loss"] = loss
            self._advance()

    def batch(self) -> None:
        with self._lock:
            self._advance()

    def should_stop(self) -> bool:
        return self._cancel.is_set()

    def _advance(self) -> None:
        self._units_done += 1
        fraction = min(1.0, self._units_done / self._units_total)
        self._status["percent_complete"] = max(self._status["percent_complete"], fraction)
        done_here = self._units_done - self._units_at_start
        if done_here > 0:
            elapsed = time.monotonic() - self._run_started
            self._status["eta_seconds"] = elapsed / done_here * (self._units_total - self._units_done)
