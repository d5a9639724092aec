"""The one place that decides which device tensors go to."""

from __future__ import annotations

from typing import Any, Mapping, Union

import torch

__all__ = ["resolve_device", "to_device", "check_model_device"]

DeviceLike = Union[str, torch.device]


def resolve_device(device: DeviceLike) -> torch.device:
    """Validate a device argument and return it as a :class:`torch.device`.

    Parameters
    ----------
    device : str or torch.device
        ``"cpu"``, ``"cuda"`` or ``"cuda:<index>"``.

    Raises
    ------
    TypeError
        If ``device`` is neither a string nor a ``torch.device``.
    ValueError
        If it names another kind of device, or CUDA is asked for but not available.
    """
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be 'cpu' or 'cuda', got {type(device).__name__}")
    try:
        resolved = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}") from None
    if resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was asked for but CUDA is not available on this machine")
    if resolved.type == "cuda" and resolved.index is not None and resolved.index >= torch.cuda.device_count():
        raise ValueError(
            f"device={device!r} was asked for but this machine has {torch.cuda.device_count()} CUDA device(s), "
            f"numbered from 0"
        )
    return resolved


def to_device(value: Any, device: torch.device) -> Any:
    """Move a tensor, or the tensors of a tuple, named tuple, list or dict (nested), to ``device``.

    Other values pass through unchanged.
    """
    if isinstance(value, torch.Tensor):
        return value.to(device, non_blocking=device.type == "cuda")
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple takes its fields positionally
        return type(value)(*(to_device(item, device) for item in value))
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(item, device) for item in value)
    if isinstance(value, Mapping):
        moved = {key: to_device(item, device) for key, item in value.items()}
        return moved if type(value) is dict else _same_mapping(value, moved)
    return value


def _same_mapping(original: Mapping, moved: dict) -> Mapping:
    """``moved`` as the mapping type of ``original`` when it can be built from a dict, else a dict."""
    try:
        return type(original)(moved)
    except Exception:
        return moved


def check_model_device(model: Any, device: torch.device, name: str) -> None:
    """Raise ``ValueError`` if ``model`` has parameters on another device than ``device``."""
    parameters = getattr(model, "parameters", None)
    if parameters is None:
        return
    first = next(iter(parameters()), None)
    if first is None:
        return
    expected = device
    if device.type == "cuda" and device.index is None:
        expected = torch.device("cuda", torch.cuda.current_device())
    if first.device != expected and not (first.device.type == expected.type == "cpu"):
        raise ValueError(
            f"{name} has its parameters on {first.device} but device={str(device)!r}; "
            f"move it first, e.g. {name}.to({str(device)!r})"
        )
