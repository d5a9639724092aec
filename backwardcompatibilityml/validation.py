"""Argument checks shared by the whole package.

Every function takes the value and the name of the argument it came from, and
raises ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, wrong
value) with a message that names that argument and says what was expected.
On success it returns the value, sometimes normalised (a ``dict`` for keyword
arguments, a ``str`` for a folder), so a caller can write
``self.epochs = check_positive_int(epochs, "number_of_epochs")``.

The checks follow scikit-learn's ``check_scalar``; ``bool`` is never accepted
as a number, and real numbers must be finite unless ``allow_non_finite``.
"""

from __future__ import annotations

import inspect
import math
import numbers
import os
import tempfile
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Union

import numpy as np

__all__ = [
    "check_scalar", "check_bool", "check_positive_int", "check_class", "check_optimizer_class",
    "check_loss_class", "check_callable", "check_kwargs", "check_folder", "check_lambda_c",
    "check_instance", "check_str", "check_str_list", "check_port", "check_label_array", "check_comparable_labels",
]

TypeSpec = Union[type, Tuple[type, ...]]
_BOUNDARIES = ("both", "left", "right", "neither")

# Plain PyTorch losses and the compatibility losses that replace them (New Error, Strict Imitation).
_COMPATIBLE_LOSSES = {
    "CrossEntropyLoss": ("BCCrossEntropyLoss", "StrictImitationCrossEntropyLoss"),
    "NLLLoss": ("BCNLLLoss", "StrictImitationNLLLoss"),
    "BCELoss": ("BCBinaryCrossEntropyLoss", "StrictImitationBinaryCrossEntropyLoss"),
    "BCEWithLogitsLoss": ("BCBinaryCrossEntropyLoss", "StrictImitationBinaryCrossEntropyLoss"),
    "KLDivLoss": ("BCKLDivergenceLoss", "StrictImitationKLDivergenceLoss"),
}


def _type_names(target_type: TypeSpec) -> str:
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    readable = {numbers.Integral: "int", numbers.Real: "real number", numbers.Number: "number"}
    names = [readable.get(t, t.__name__) for t in types]
    return names[0] if len(names) == 1 else " or ".join(names)


def _is_numeric_type(target_type: TypeSpec) -> bool:
    types = target_type if isinstance(target_type, tuple) else (target_type,)
    return any(isinstance(t, type) and issubclass(t, numbers.Number) for t in types)


def check_scalar(
    value: Any,
    name: str,
    target_type: TypeSpec,
    *,
    min_val: Optional[float] = None,
    max_val: Optional[float] = None,
    include_boundaries: str = "both",
    allow_non_finite: bool = False,
) -> Any:
    """Check the type and range of a scalar argument.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Name of the argument, used in the messages.
    target_type : type or tuple of types
        Accepted types, e.g. ``int`` or ``numbers.Real``. ``bool`` is refused
        for numeric types although it is an ``int`` to Python.
    min_val, max_val : float, optional
        Bounds of the accepted range (none when omitted).
    include_boundaries : {"both", "left", "right", "neither"}
        Which of the bounds are themselves accepted.
    allow_non_finite : bool
        Accept NaN and infinities for real numbers (refused by default).

    Returns
    -------
    object
        ``value``, unchanged.

    Raises
    ------
    TypeError
        If ``value`` is not of ``target_type``.
    ValueError
        If it lies outside the range, or is NaN or infinite.
    """
    if include_boundaries not in _BOUNDARIES:
        raise ValueError(f"include_boundaries must be one of {_BOUNDARIES}, got {include_boundaries!r}")
    numeric = _is_numeric_type(target_type)
    if not isinstance(value, target_type) or (numeric and isinstance(value, (bool, np.bool_))):
        raise TypeError(f"{name} must be of type {_type_names(target_type)}, got {type(value).__name__}: {value!r}")
    if numeric and isinstance(value, numbers.Real) and not allow_non_finite and not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    low_closed = include_boundaries in ("both", "left")
    high_closed = include_boundaries in ("both", "right")
    too_low = min_val is not None and (value < min_val if low_closed else value <= min_val)
    too_high = max_val is not None and (value > max_val if high_closed else value >= max_val)
    if too_low or too_high:
        if min_val is not None and max_val is not None:
            left, right = ("[" if low_closed else "("), ("]" if high_closed else ")")
            expected = f"lie in {left}{min_val}, {max_val}{right}"
        elif min_val is not None:
            expected = f"be {'>=' if low_closed else '>'} {min_val}"
        else:
            expected = f"be {'<=' if high_closed else '<'} {max_val}"
        raise ValueError(f"{name} must {expected}, got {value!r}")
    return value


def check_positive_int(value: Any, name: str) -> int:
    """Check an integer argument that must be ``>= 1`` (an ``int``, not a ``bool``)."""
    return int(check_scalar(value, name, numbers.Integral, min_val=1))


def check_lambda_c(lambda_c: Any, name: str = "lambda_c") -> float:
    """Check a dissonance weight: a finite real number ``>= 0``; returned as ``float``."""
    return float(check_scalar(lambda_c, name, numbers.Real, min_val=0))


def check_bool(value: Any, name: str) -> bool:
    """Check a flag: only ``True`` or ``False`` (or a numpy bool) is accepted.

    ``"no"``, ``0`` or ``None`` are refused rather than read by their truth
    value (``bool("no")`` is True).
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {type(value).__name__}: {value!r}")
    return bool(value)


def check_class(value: Any, name: str, base: Optional[type] = None, *, example: Optional[str] = None) -> type:
    """Check that an argument is a class, and a subclass of ``base`` when given.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Name of the argument.
    base : type, optional
        Required base class.
    example : str, optional
        An example of a fitting class, quoted in the message.
    """
    hint = f" (e.g. {example})" if example else ""
    if base is not None:
        expected = f"a subclass of {base.__module__}.{base.__qualname__}{hint}"
    else:
        expected = f"a class{hint}"
    if not inspect.isclass(value):
        raise TypeError(f"{name} must be {expected}, got {type(value).__name__}: {value!r}")
    if base is not None and not issubclass(value, base):
        raise TypeError(f"{name} must be {expected}, got the class {value.__module__}.{value.__qualname__}")
    return value


def check_optimizer_class(value: Any, name: str = "OptimizerClass") -> type:
    """Check an optimizer class: a subclass of :class:`torch.optim.Optimizer`."""
    import torch

    return check_class(value, name, torch.optim.Optimizer, example="torch.optim.SGD")


def check_loss_class(value: Any, name: str, family_index: int = 0) -> type:
    """Check a compatibility loss class, built as ``cls(h1, h2, lambda_c, **kwargs)``.

    A plain PyTorch loss (``torch.nn.CrossEntropyLoss``...) is refused with the
    name of the compatibility loss that replaces it; another class must accept
    ``(h1, h2, lambda_c)``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Name of the argument (``NewErrorLossClass``).
    family_index : int
        0 to suggest New Error losses, 1 for Strict Imitation ones.
    """
    import torch

    check_class(value, name, example="backwardcompatibilityml.loss.BCCrossEntropyLoss")
    if issubclass(value, torch.nn.modules.loss._Loss):
        replacement = _COMPATIBLE_LOSSES.get(value.__name__, ("BCCrossEntropyLoss", "StrictImitationCrossEntropyLoss"))
        raise TypeError(
            f"{name} must be a compatibility loss class, got the plain PyTorch loss {value.__name__}, "
            f"which cannot compare h1 with h2: use backwardcompatibilityml.loss.{replacement[family_index]}"
        )
    try:
        inspect.signature(value).bind_partial("h1", "h2", 0.0)
    except TypeError:
        raise TypeError(
            f"{name} must be a compatibility loss class built as {name}(h1, h2, lambda_c, **kwargs), "
            f"e.g. backwardcompatibilityml.loss.BCCrossEntropyLoss; {value.__qualname__} does not take those arguments"
        ) from None
    except ValueError:  # no signature to read (a builtin): found when it is built
        pass
    return value


def check_callable(value: Any, name: str, *, allow_none: bool = False) -> Optional[Callable]:
    """Check a callback argument (``None`` accepted only with ``allow_none``)."""
    if value is None and allow_none:
        return None
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def check_kwargs(value: Any, name: str) -> Dict[str, Any]:
    """Check keyword arguments: ``None`` (no arguments) or a mapping with string keys; returns a new dict."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} must be a dict of keyword arguments, got {type(value).__name__}")
    bad = [key for key in value if not isinstance(key, str)]
    if bad:
        raise TypeError(f"{name} must have string keys (argument names), got {bad[0]!r}")
    return dict(value)


def check_folder(folder_name: Any, name: str = "folder_name") -> str:
    """Check a results folder: a non-empty path to a folder this process can create and write to.

    The folder is created (with its parents) when missing, and a temporary
    file is written and removed there to prove it is writable.

    Returns
    -------
    str
        The path, as a string.

    Raises
    ------
    TypeError
        If ``folder_name`` is not a ``str`` or ``os.PathLike``.
    ValueError
        If it is empty, names a file, or cannot be created or written to.
    """
    if not isinstance(folder_name, (str, os.PathLike)):
        raise TypeError(f"{name} must be a path (str or os.PathLike), got {type(folder_name).__name__}")
    folder = os.fspath(folder_name)
    if not isinstance(folder, str):
        folder = os.fsdecode(folder)
    if not folder.strip():
        raise ValueError(f"{name} must name a folder, got an empty path {folder!r}")
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise ValueError(f"{name} {folder!r} exists and is not a folder")
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"{name} {folder!r} cannot be created: {reason}") from None
    try:
        with tempfile.TemporaryFile(prefix=".bcml-write-test-", dir=folder):
            pass
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise ValueError(f"{name} {folder!r} is not writable: {reason}") from None
    return folder


def check_instance(value: Any, name: str, cls: type) -> Any:
    """Check that an argument is an instance of ``cls``.

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Name of the argument.
    cls : type
        The required class.

    Returns
    -------
    object
        ``value``, unchanged.

    Raises
    ------
    TypeError
        If ``value`` is not an instance of ``cls``.
    """
    if not isinstance(value, cls):
        raise TypeError(f"{name} must be a {cls.__module__}.{cls.__qualname__}, "
                        f"got {type(value).__name__}: {value!r}")
    return value


def check_str(value: Any, name: str, *, allow_empty: bool = True, allow_none: bool = False) -> Optional[str]:
    """Check a text argument: a ``str`` (not ``bytes``).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Name of the argument.
    allow_empty : bool
        Accept ``""``.
    allow_none : bool
        Accept ``None`` (returned as is).

    Returns
    -------
    str or None
        ``value``, unchanged.

    Raises
    ------
    TypeError
        If ``value`` is not a ``str`` (nor an allowed ``None``).
    ValueError
        If it is empty and ``allow_empty`` is False.
    """
    if value is None and allow_none:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, got {type(value).__name__}: {value!r}")
    if not allow_empty and not value:
        raise ValueError(f"{name} must be a non-empty str, got {value!r}")
    return value


def check_str_list(value: Any, name: str, *, allow_none: bool = True) -> Tuple[str, ...]:
    """Check an argument that is a collection of strings (a list of host names...).

    A plain ``str`` is refused rather than read as its characters
    (``"example.com"`` would otherwise mean ``"e"``, ``"x"``, ...).

    Parameters
    ----------
    value : object
        The value to check: an iterable of ``str`` (list, tuple, set...).
    name : str
        Name of the argument.
    allow_none : bool
        Accept ``None``, read as no strings.

    Returns
    -------
    tuple of str
        The strings, in iteration order.

    Raises
    ------
    TypeError
        If ``value`` is a ``str`` or ``bytes``, is not iterable, or holds an
        item that is not a ``str``.
    """
    if value is None and allow_none:
        return ()
    if isinstance(value, (str, bytes, bytearray)):
        raise TypeError(f"{name} must be a list of str, got the single {type(value).__name__} {value!r}: "
                        f"pass [{value!r}]")
    if isinstance(value, Mapping) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a list of str, got {type(value).__name__}: {value!r}")
    items = tuple(value)
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"{name} must hold only str items, got {type(item).__name__}: {item!r}")
    return items


def check_port(value: Any, name: str = "port", *, allow_none: bool = True) -> Optional[int]:
    """Check a TCP port: an ``int`` in [0, 65535] (0: the system chooses).

    Parameters
    ----------
    value : object
        The value to check.
    name : str
        Name of the argument.
    allow_none : bool
        Accept ``None`` (no port given).

    Returns
    -------
    int or None
        The port.

    Raises
    ------
    TypeError
        If ``value`` is not an ``int`` (``bool`` and ``"5000"`` are refused).
    ValueError
        If it lies outside [0, 65535].
    """
    if value is None and allow_none:
        return None
    return int(check_scalar(value, name, numbers.Integral, min_val=0, max_val=65535))


def check_label_array(labels: Any, name: str) -> np.ndarray:
    """Check labels (a list, numpy array or tensor) and return them as a 1-D numpy array.

    Labels are class indices or names: floating-point labels must hold whole
    numbers (``1.0`` is class 1), so that probabilities or scores passed by
    mistake are refused instead of never equalling a label.

    Raises
    ------
    TypeError
        If ``labels`` cannot be read as an array, or holds complex numbers.
    ValueError
        If it is not one-dimensional, or holds floating-point values that are
        not whole numbers (NaN included).
    """
    if hasattr(labels, "detach"):
        labels = labels.detach().cpu()
        if labels.is_floating_point() and labels.element_size() < 4:  # bfloat16 has no numpy dtype
            labels = labels.float()
        labels = labels.numpy()
    try:
        array = np.asarray(labels)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a sequence of labels: {error}") from None
    if array.dtype == object:
        raise TypeError(f"{name} must be a sequence of numeric labels")
    if array.dtype.kind == "c":
        raise TypeError(f"{name} must hold real labels, got {array.dtype}")
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional, got shape {array.shape}")
    if array.dtype.kind == "f":
        fractional = ~np.isfinite(array) | (np.floor(array) != array) if array.size else np.zeros(0, dtype=bool)
        if fractional.any():
            example = array[np.argmax(fractional)]
            raise ValueError(
                f"{name} must hold labels (class indices), got the value {example:g}: floating-point labels must "
                "be whole numbers; pass predicted labels, not probabilities or scores (threshold or argmax them)"
            )
    return array


def _label_kind(array: np.ndarray) -> str:
    """``"number"`` (bool, int, float, complex), ``"text"`` (str, bytes) or the numpy dtype's kind."""
    if array.dtype.kind in "biufc":
        return "number"
    if array.dtype.kind in "US":
        return "text"
    return array.dtype.kind


def check_comparable_labels(predicted: np.ndarray, predicted_name: str, expected: np.ndarray,
                            expected_name: str) -> None:
    """Check that two non-empty label arrays hold labels of one kind (numbers, or text).

    numpy compares a number with a string as unequal without a word, so
    ``[0, 1]`` against ``["0", "1"]`` would count every prediction as wrong.

    Raises
    ------
    TypeError
        If one array holds numbers and the other text (or another kind).
    """
    if not (predicted.size and expected.size):
        return
    kinds = _label_kind(predicted), _label_kind(expected)
    if kinds[0] != kinds[1]:
        raise TypeError(
            f"{predicted_name} holds {kinds[0]} labels ({predicted.dtype}) but {expected_name} holds "
            f"{kinds[1]} labels ({expected.dtype}); labels of different kinds never compare equal"
        )
