"""A sweep's configuration: the arguments, checked once, with the seed's defaults filled in.

:class:`SweepConfig` is what every other part of the engine reads. It is built
once by :meth:`SweepConfig.from_arguments` (which raises ``TypeError`` /
``ValueError`` naming the argument), never changed afterwards, and carries the
fingerprint that decides whether stored results may be resumed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import numbers
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import torch

from ..data import has_fixed_order
from ..device import check_model_device, resolve_device
from ..evaluation import default_instance_metadata, metric_name
from ..loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from ..metrics import model_accuracy
from ..preflight import preflight
from ..random_state import kept_random_state
from ..validation import (
    check_bool, check_callable, check_kwargs, check_loss_class, check_optimizer_class, check_positive_int, check_scalar,
)
from .families import LossFamily, seed_families

logger = logging.getLogger(__name__)

# The argument that fills each of the seed's family slots, for messages.
_SLOT_ARGUMENTS = {"new-error": "NewErrorLossClass", "strict-imitation": "StrictImitationLossClass"}

__all__ = [
    "SweepConfig", "lambda_c_grid", "MIN_STEPSIZE", "DEFAULT_OPTIMIZER", "DEFAULT_LEARNING_RATE", "state_digest",
]

MIN_STEPSIZE = 0.001
DEFAULT_OPTIMIZER = torch.optim.SGD
DEFAULT_LEARNING_RATE = 0.01


def lambda_c_grid(stepsize: float) -> List[float]:
    """The lambda_c values ``k * stepsize`` for ``k = 0 .. floor(1 / stepsize)``, rounded.

    >>> lambda_c_grid(0.3)
    [0.0, 0.3, 0.6, 0.9]
    >>> lambda_c_grid(0.25)[-1]
    1.0
    """
    stepsize = float(check_scalar(stepsize, "lambda_c_stepsize", numbers.Real, min_val=MIN_STEPSIZE, max_val=1))
    count = int(math.floor(1.0 / stepsize + 1e-9))
    return [round(k * stepsize, 10) for k in range(count + 1)]


def state_digest(model: torch.nn.Module) -> str:
    """A short hash of a model's state (names, shapes and values; ``repr`` of a module's extra state)."""
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        if not isinstance(tensor, torch.Tensor):  # get_extra_state() may return any object
            digest.update(repr(tensor).encode())
            continue
        digest.update(str(tuple(tensor.shape)).encode())
        raw = tensor.detach().cpu()
        # A quantized tensor's values need its scales: hashed as the values it stands for.
        raw = (raw.dequantize() if raw.is_quantized else raw).contiguous()
        # The bytes read as bytes (numpy has no bfloat16 to read the values as); the same bytes as before.
        digest.update(raw.reshape(-1).view(torch.uint8).numpy().tobytes() if raw.numel() else b"")
    return digest.hexdigest()[:16]


def _size_of(dataset: Any) -> Optional[int]:
    try:
        return len(dataset)
    except TypeError:
        return None


def _qualname(value: Any) -> str:
    return f"{getattr(value, '__module__', '?')}.{getattr(value, '__qualname__', repr(value))}"


def _warn_of_loss_in_another_slot(families: Iterable[LossFamily]) -> None:
    """Log a warning for a loss class of one family given in another family's slot.

    Allowed (the class trains its own loss, stored under the slot's name), but
    more often a mix-up: a Strict Imitation class as ``NewErrorLossClass``
    fills the New Error points with Strict Imitation models.
    """
    for family in families:
        computes = getattr(family.loss_class, "family", None)
        if isinstance(computes, str) and computes != family.name:
            argument = _SLOT_ARGUMENTS.get(family.name, f"the {family.name!r} family's loss class")
            logger.warning(
                "%s is %s, a %s loss: the sweep trains that loss and stores its models as the %s points",
                argument, family.loss_class.__name__, computes, family.label)


def _warn_of_batch_size(dataset: Any, name: str, given: int, argument: str) -> None:
    """Log a warning when ``given`` is not the size of ``dataset``'s batches (a DataLoader's, or a list's first).

    The batches are used as they are; the argument is only recorded in the
    configuration, where a wrong value would mislead whoever reads it.
    """
    actual = getattr(dataset, "batch_size", None) if isinstance(dataset, torch.utils.data.DataLoader) else None
    if actual is None and isinstance(dataset, (list, tuple)) and dataset:
        first = dataset[0]
        if isinstance(first, (list, tuple)) and len(first) in (2, 3):
            try:  # the targets: the inputs may be a tuple or a dict of tensors
                actual = int(torch.as_tensor(first[-1]).shape[0])
            except (TypeError, ValueError, IndexError, RuntimeError):
                actual = None
    if isinstance(actual, int) and actual > 0 and actual != given:
        logger.warning("%s=%d but the batches of %s hold %d instances; the batches are used as they are (%s is "
                       "only recorded in the configuration)", argument, given, name, actual, argument)


def _check_dataset(dataset: Any, name: str) -> None:
    if dataset is None or not isinstance(dataset, Iterable) or isinstance(dataset, Iterator):
        raise TypeError(
            f"{name} must be a re-iterable of (instance_ids, inputs, targets) batches "
            f"(a list or a DataLoader), got {type(dataset).__name__}"
        )
    if has_fixed_order(dataset):
        return
    try:
        with kept_random_state(torch.device("cpu")):  # an augmenting dataset draws: the caller's state stays
            first = dataset.dataset[0]
    except Exception:  # not map-style: found when its first batch is read
        return
    if isinstance(first, (tuple, list)) and len(first) == 2:
        raise ValueError(
            f"{name} is a shuffling DataLoader of (inputs, targets) pairs; instances need stable ids: "
            "give items (instance_id, inputs, target), e.g. TensorDataset(torch.arange(n), x, y)"
        )


@dataclass(frozen=True)
class SweepConfig:
    """Everything a sweep is made of, checked and with defaults filled in.

    Build it with :meth:`from_arguments`; the fields are not meant to be set by hand.
    """

    h1: torch.nn.Module
    h2: torch.nn.Module
    training_set: Iterable
    test_set: Iterable
    number_of_epochs: int
    batch_size_train: int
    batch_size_test: int
    optimizer_class: type
    optimizer_kwargs: Mapping[str, Any]
    families: Tuple[LossFamily, ...]
    lambda_c_stepsize: float
    lambda_c_values: Tuple[float, ...]
    performance_metric: Callable
    get_instance_image_by_id: Optional[Callable[[int], Any]]
    get_instance_metadata: Callable[[int], str]
    device: torch.device
    use_ml_flow: bool
    ml_flow_run_name: str
    seed: int
    model_digests: Tuple[str, str]

    @classmethod
    def from_arguments(
        cls,
        *,
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
    ) -> "SweepConfig":
        """Check the SweepManager's arguments and fill in the seed's defaults.

        Every argument is checked before anything is raised about the next
        one only where checks depend on each other; the message always names
        the argument. Defaults: ``OptimizerClass=None`` is
        :class:`torch.optim.SGD` with ``lr=DEFAULT_LEARNING_RATE`` (0.01)
        unless ``optimizer_kwargs`` says otherwise; ``optimizer_kwargs=None``
        is ``{}``; ``None`` loss classes are the cross-entropy pair
        (:class:`~backwardcompatibilityml.loss.BCCrossEntropyLoss`,
        :class:`~backwardcompatibilityml.loss.StrictImitationCrossEntropyLoss`),
        which accept logits and the ``(logits, softmax, log_softmax)`` triple;
        ``performance_metric=None`` is accuracy.
        """
        lambda_c_values = tuple(lambda_c_grid(lambda_c_stepsize))
        number_of_epochs = check_positive_int(number_of_epochs, "number_of_epochs")
        batch_size_train = check_positive_int(batch_size_train, "batch_size_train")
        batch_size_test = check_positive_int(batch_size_test, "batch_size_test")
        torch_device = resolve_device(device)
        for name, model in (("h1", h1), ("h2", h2)):
            if not isinstance(model, torch.nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(model).__name__}")
            check_model_device(model, torch_device, name)
        _check_dataset(training_set, "training_set")
        _check_dataset(test_set, "test_set")
        _warn_of_batch_size(training_set, "training_set", batch_size_train, "batch_size_train")
        _warn_of_batch_size(test_set, "test_set", batch_size_test, "batch_size_test")
        optimizer_kwargs = check_kwargs(optimizer_kwargs, "optimizer_kwargs")
        if OptimizerClass is None:
            OptimizerClass = DEFAULT_OPTIMIZER
            optimizer_kwargs.setdefault("lr", DEFAULT_LEARNING_RATE)
        optimizer_class = check_optimizer_class(OptimizerClass, "OptimizerClass")
        families = seed_families(
            check_loss_class(NewErrorLossClass or BCCrossEntropyLoss, "NewErrorLossClass", 0),
            check_loss_class(StrictImitationLossClass or StrictImitationCrossEntropyLoss, "StrictImitationLossClass", 1),
            check_kwargs(new_error_loss_kwargs, "new_error_loss_kwargs"),
            check_kwargs(strict_imitation_loss_kwargs, "strict_imitation_loss_kwargs"),
        )
        _warn_of_loss_in_another_slot(families)
        performance_metric = model_accuracy if performance_metric is None else performance_metric
        for name, callback in (
            ("performance_metric", performance_metric),
            ("get_instance_image_by_id", get_instance_image_by_id),
            ("get_instance_metadata", get_instance_metadata),
        ):
            check_callable(callback, name, allow_none=True)
        use_ml_flow = check_bool(use_ml_flow, "use_ml_flow")
        if not isinstance(ml_flow_run_name, str):
            raise TypeError(f"ml_flow_run_name must be a string, got {type(ml_flow_run_name).__name__}")
        if not ml_flow_run_name.strip():
            raise ValueError("ml_flow_run_name must be a non-empty string")
        # torch.manual_seed's range: a seed outside it would fail only once h1 has run, without naming seed.
        seed = int(check_scalar(seed, "seed", numbers.Integral, min_val=-2 ** 63, max_val=2 ** 64 - 1))
        preflight(h1, h2, training_set, test_set, families, optimizer_class, optimizer_kwargs, torch_device)
        return cls(
            h1=h1, h2=h2, training_set=training_set, test_set=test_set,
            number_of_epochs=number_of_epochs, batch_size_train=batch_size_train, batch_size_test=batch_size_test,
            optimizer_class=optimizer_class, optimizer_kwargs=optimizer_kwargs, families=families,
            lambda_c_stepsize=float(lambda_c_stepsize), lambda_c_values=lambda_c_values,
            performance_metric=performance_metric,
            get_instance_image_by_id=get_instance_image_by_id,
            get_instance_metadata=get_instance_metadata or default_instance_metadata,
            device=torch_device, use_ml_flow=use_ml_flow, ml_flow_run_name=ml_flow_run_name, seed=seed,
            model_digests=(state_digest(h1), state_digest(h2)),
        )

    # -- derived ---------------------------------------------------------------------
    def family(self, name: str) -> LossFamily:
        """The family called ``name``."""
        for family in self.families:
            if family.name == name:
                return family
        raise ValueError(f"family must be one of {[f.name for f in self.families]}, got {name!r}")

    @property
    def total_points(self) -> int:
        """Number of datapoints of the whole sweep."""
        return 2 * len(self.families) * len(self.lambda_c_values)

    def configuration(self) -> Dict[str, Any]:
        """The settings that make two sweeps comparable (JSON-able; the fingerprint covers them)."""
        families = {family.name: family for family in self.families}
        configuration = {
            "lambda_c_stepsize": self.lambda_c_stepsize,
            "number_of_epochs": self.number_of_epochs,
            "batch_size_train": self.batch_size_train,
            "batch_size_test": self.batch_size_test,
            "optimizer_class": _qualname(self.optimizer_class),
            "optimizer_kwargs": {k: repr(v) for k, v in sorted(self.optimizer_kwargs.items())},
            "performance_metric": metric_name(self.performance_metric),
        }
        for name, family in families.items():
            key = name.replace("-", "_")
            configuration[f"{key}_loss_class"] = _qualname(family.loss_class)
            configuration[f"{key}_loss_kwargs"] = {k: repr(v) for k, v in sorted(family.loss_kwargs.items())}
        return configuration

    def fingerprint(self) -> str:
        """A hash of :meth:`configuration`, the initial weights of h1 and h2, the datasets' sizes and the seed.

        A sweep resumes only results with the same fingerprint. The executor
        is not part of it: a sweep started with one executor may be resumed
        with another.
        """
        inputs = {
            "configuration": self.configuration(),
            "h1": self.model_digests[0], "h2": self.model_digests[1],
            "training_batches": _size_of(self.training_set), "test_batches": _size_of(self.test_set),
            "seed": self.seed,
        }
        text = json.dumps(inputs, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]
