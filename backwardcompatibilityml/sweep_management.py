"""SweepManager: train h2 for every lambda_c of a grid and every loss family, and keep the results.

Lifecycle: ``idle`` -> ``running`` -> ``completed`` / ``failed`` / ``cancelled``
(``interrupted`` for a folder whose sweep died without saying so). Results
stream: each datapoint is stored and visible as soon as it is evaluated.

The manager is the seed's façade over the engine
(:mod:`backwardcompatibilityml.engine`): a checked configuration
(:class:`~backwardcompatibilityml.engine.config.SweepConfig`), a runner that
feeds an executor and persists its results, the progress it reports, and the
results read back from the folder. The reading methods come from
:class:`~backwardcompatibilityml.sweep_reader.SweepReader`, the lifecycle
methods (start, cancel, wait, the last exception) from
:class:`~backwardcompatibilityml.sweep_controls.SweepControls`.

Results live in the sweep's folder (``sweep_summary.json``, per-datapoint
result files and ``<lambda_c>-model-<family>.state``), each written
atomically. A manager created on a folder that holds results serves them at
once. ``start_sweep`` on a partial sweep of the same configuration resumes it
(finished jobs are not retrained, whichever executor ran them); on a complete
one, or one of a different configuration, it starts clean after moving the
earlier results into ``previous/<timestamp>/``. A restart never destroys a
finished sweep.
"""

from __future__ import annotations

import copy
import logging
import math
import numbers
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Union

import torch

from .engine.config import MIN_STEPSIZE, SweepConfig, lambda_c_grid
from .engine.errors import ReadOnlySweepError, SweepAlreadyRunningError, public_error_message
from .engine.executors import Executor, resolve_executor
from .engine.families import DATASETS
from .engine.runner import SweepRunner
from .evaluation import default_instance_metadata
from .sweep_controls import SweepControls
from .sweep_reader import SweepReader
from .validation import check_scalar

__all__ = [
    "SweepManager", "SweepAlreadyRunningError", "ReadOnlySweepError", "lambda_c_grid", "public_error_message",
    "MIN_STEPSIZE",
]

logger = logging.getLogger(__name__)


class SweepManager(SweepControls, SweepReader):
    """Trains and evaluates h2 for each lambda_c and loss family, in a thread, and stores the results.

    For every lambda_c of :func:`lambda_c_grid` it trains a fresh deep copy of
    ``h2`` with the New Error loss and another with the Strict Imitation
    loss, and evaluates each on the training and the test set: datapoints
    0, 1, 2, ... in the order NE-train, NE-test, SI-train, SI-test (the
    summary's ``datapoint_layout`` states it). h1 is never modified; its
    outputs are computed once per instance, before the first training, and
    reused by every training and evaluation. Results are stored in
    ``folder_name`` as they come; a start on a partial sweep of the same
    configuration resumes it, and a restart never destroys a finished sweep
    (see the module's description).

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
        Re-iterable batches (lists or DataLoaders); ``instance_ids`` are
        global ids, unique within a dataset.
    batch_size_train, batch_size_test : int
        Batch sizes of the two datasets (recorded in the configuration; the
        batches are used as given, and a size other than a DataLoader's, or a
        list's first batch's, is logged as a warning).
    OptimizerClass : type, optional
        Optimizer class, built as ``OptimizerClass(parameters, **optimizer_kwargs)``.
        Default (``None``): :class:`torch.optim.SGD` with ``lr=0.01`` (unless
        ``optimizer_kwargs`` gives ``lr``).
    optimizer_kwargs : dict, optional
        Its keyword arguments (default ``{}``).
    NewErrorLossClass, StrictImitationLossClass : type, optional
        Loss classes of the two families (see :mod:`backwardcompatibilityml.loss`).
        Default (``None``): :class:`~backwardcompatibilityml.loss.BCCrossEntropyLoss`
        and :class:`~backwardcompatibilityml.loss.StrictImitationCrossEntropyLoss`,
        which accept logits and the ``(logits, softmax, log_softmax)`` triple.
    lambda_c_stepsize : float
        Grid step in [0.001, 1] (default 0.25: 0, 0.25, 0.5, 0.75, 1.0).
    new_error_loss_kwargs, strict_imitation_loss_kwargs : dict, optional
        Extra keyword arguments of the losses (``num_classes``, ``discriminant_pivot``).
    performance_metric : callable, optional
        ``metric(model, dataset, device) -> float`` where ``model`` is the
        trained h2 (or h1) in eval mode, ``dataset`` the same iterable of
        ``(instance_ids, inputs, targets)`` batches given as ``training_set``
        / ``test_set``, and ``device`` the device as a string (``"cpu"``,
        ``"cuda:0"``). Default:
        accuracy, computed from predictions the sweep already has (a metric
        with a ``from_predictions(predicted, expected)`` attribute is never
        given the model).
    get_instance_image_by_id : callable, optional
        ``instance_id -> image`` (PNG bytes, a PIL image or an array), served by the widget.
    get_instance_metadata : callable, optional
        ``instance_id -> str`` (default: the id as text).
    device : {"cpu", "cuda"}
        Where inputs go; the models must already be there.
    use_ml_flow : bool
        Log the sweep to MLflow (needs the ``[mlflow]`` extra): in the active
        experiment, nested in the active run if there is one.
    ml_flow_run_name : str
        Name of the MLflow run.
    seed : int
        Seed of the random number generators at the start of every training, so
        that every job sees the same batch order and the same initial random
        draws, and a resumed sweep trains as the first would have. PyTorch's
        CPU generator reads only its low 32 bits (0 and 2**32 draw alike there).
    executor : {"auto", "sequential", "vectorized"} or Executor
        How the trainings run. ``"sequential"`` trains one model at a time.
        ``"vectorized"`` trains several lambda_c values and families as one
        stacked model (``torch.func``), exact for element-wise optimizers, and
        falls back to one at a time, saying why in the status, where it does
        not apply. ``"auto"`` (default) is vectorised where it applies.

    Raises
    ------
    TypeError, ValueError
        For arguments of the wrong type or value (the message names the argument).
    ImportError
        If ``use_ml_flow=True`` and MLflow is not installed.

    See Also
    --------
    backwardcompatibilityml.sweep_reader.SweepReader : the reading methods
        (``get_sweep_status``, ``get_sweep_summary``, ``get_evaluation``,
        ``get_evaluation_view``, ``dataframe``, ``configuration``, ``fingerprint``).
    backwardcompatibilityml.sweep_controls.SweepControls : the lifecycle methods
        (``start_sweep``, ``start_sweep_synchronous``, ``is_running``,
        ``cancel_sweep``, ``cancel_requested``, ``wait``, ``last_exception``,
        ``last_traceback``).
    """

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
        OptimizerClass: Optional[type] = None,
        optimizer_kwargs: Optional[Mapping[str, Any]] = None,
        NewErrorLossClass: Optional[type] = None,
        StrictImitationLossClass: Optional[type] = None,
        lambda_c_stepsize: float = 0.25,
        new_error_loss_kwargs: Optional[Mapping[str, Any]] = None,
        strict_imitation_loss_kwargs: Optional[Mapping[str, Any]] = None,
        performance_metric: Optional[Callable] = None,
        get_instance_image_by_id: Optional[Callable[[int], Any]] = None,
        get_instance_metadata: Optional[Callable[[int], str]] = None,
        device: str = "cpu",
        use_ml_flow: bool = False,
        ml_flow_run_name: str = "compatibility_sweep",
        seed: int = 0,
        executor: Union[str, Executor] = "auto",
    ) -> None:
        config = SweepConfig.from_arguments(
            number_of_epochs=number_of_epochs, h1=h1, h2=h2, training_set=training_set, test_set=test_set,
            batch_size_train=batch_size_train, batch_size_test=batch_size_test,
            OptimizerClass=OptimizerClass, optimizer_kwargs=optimizer_kwargs,
            NewErrorLossClass=NewErrorLossClass, StrictImitationLossClass=StrictImitationLossClass,
            lambda_c_stepsize=lambda_c_stepsize,
            new_error_loss_kwargs=new_error_loss_kwargs, strict_imitation_loss_kwargs=strict_imitation_loss_kwargs,
            performance_metric=performance_metric,
            get_instance_image_by_id=get_instance_image_by_id, get_instance_metadata=get_instance_metadata,
            device=device, use_ml_flow=use_ml_flow, ml_flow_run_name=ml_flow_run_name, seed=seed,
        )
        self._executor = resolve_executor(executor)
        tracker_factory = None
        if config.use_ml_flow:
            from .tracking import SweepTrackerFactory, require_mlflow

            require_mlflow()
            tracker_factory = SweepTrackerFactory(config.ml_flow_run_name, config.configuration)
        super().__init__(folder_name, config)
        self._runner: Optional[SweepRunner] = SweepRunner(
            config, self._store, self._records, self._progress, self._executor, tracker_factory,
        )

    # -- opening a folder -----------------------------------------------------------------
    @classmethod
    def open_folder(cls, folder_name: str) -> "SweepManager":
        """Open a saved sweep read-only: browse its results; ``start_sweep`` raises ReadOnlySweepError.

        Folders written by this version, by earlier versions of this package
        (JSON records) and by the earlier tool open alike. A sweep that another
        process is running in the folder is followed: every read sees the
        points stored so far (see :class:`~backwardcompatibilityml.sweep_reader.SweepReader`).

        Raises
        ------
        ValueError
            If the folder holds no sweep.
        """
        manager = cls.__new__(cls)
        manager._executor = None
        manager._runner = None
        SweepReader.__init__(manager, folder_name, None)
        return manager

    # -- the seed's attributes ----------------------------------------------------------
    @property
    def executor(self) -> Optional[Executor]:
        """The executor that runs the trainings (None for a folder opened read-only)."""
        return self._executor

    @property
    def loss_classes(self) -> Dict[str, type]:
        """The loss class of each family, by family name."""
        return {} if self.config is None else {f.name: f.loss_class for f in self.config.families}

    @property
    def loss_kwargs(self) -> Dict[str, Dict[str, Any]]:
        """The loss keyword arguments of each family, by family name."""
        return {} if self.config is None else {f.name: dict(f.loss_kwargs) for f in self.config.families}

    def __getattr__(self, name: str) -> Any:
        # The seed's attributes (h1, h2, training_set, number_of_epochs, device, ...) read from the configuration.
        config = self.__dict__.get("config")
        if config is not None and name in _CONFIG_ATTRIBUTES:
            return getattr(config, _CONFIG_ATTRIBUTES[name])
        if name == "get_instance_image_by_id":
            return None
        if name == "get_instance_metadata":
            return default_instance_metadata
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def load_model(self, lambda_c: float, family: str) -> torch.nn.Module:
        """A copy of h2 with the weights trained for ``(lambda_c, family)``.

        ``lambda_c`` is one of the sweep's values (:attr:`lambda_c_values`; a
        float within 1e-9 of one, such as ``3 * 0.1``, counts as it);
        ``family`` is ``"new-error"`` or ``"strict-imitation"``.

        Raises
        ------
        ValueError
            If ``lambda_c`` is not on the sweep's grid or ``family`` is unknown.
        FileNotFoundError
            If that training has not finished (yet).
        """
        if self.config is None:
            raise ReadOnlySweepError("a sweep opened read-only has no h2 to load weights into")
        value = float(check_scalar(lambda_c, "lambda_c", numbers.Real))
        found = next((v for v in self.config.lambda_c_values if math.isclose(v, value, rel_tol=0, abs_tol=1e-9)), None)
        if found is None:
            grid = list(self.config.lambda_c_values)
            if len(grid) <= 12:
                shown = str(grid)
            else:  # a fine grid: the range, the step and the values nearest to the one asked
                nearest = sorted(sorted(grid, key=lambda v: abs(v - value))[:2])
                shown = (f"from {grid[0]} to {grid[-1]} in steps of {self.config.lambda_c_stepsize} "
                         f"({len(grid)} values; nearest: {nearest[0]} and {nearest[1]})")
            raise ValueError(f"lambda_c must be one of the sweep's values {shown}, got {lambda_c!r}")
        self.config.family(family)
        model = copy.deepcopy(self.config.h2)
        model.load_state_dict(self._store.load_model_state(found, family, map_location=self.config.device))
        return model


_CONFIG_ATTRIBUTES = {
    "h1": "h1", "h2": "h2", "training_set": "training_set", "test_set": "test_set",
    "number_of_epochs": "number_of_epochs", "batch_size_train": "batch_size_train",
    "batch_size_test": "batch_size_test", "optimizer_class": "optimizer_class",
    "optimizer_kwargs": "optimizer_kwargs", "lambda_c_stepsize": "lambda_c_stepsize",
    "performance_metric": "performance_metric", "get_instance_image_by_id": "get_instance_image_by_id",
    "get_instance_metadata": "get_instance_metadata", "device": "device", "use_ml_flow": "use_ml_flow",
    "ml_flow_run_name": "ml_flow_run_name", "seed": "seed",
}

assert DATASETS == ("training", "testing")
