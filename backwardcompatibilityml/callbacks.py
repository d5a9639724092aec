"""User callbacks (metric, image, metadata) and errors that say which one failed."""

from __future__ import annotations

import functools
from typing import Any, Callable, Optional, TypeVar

__all__ = ["UserCallbackError", "named_callback"]

F = TypeVar("F", bound=Callable[..., Any])


class UserCallbackError(RuntimeError):
    """A callback given by the user raised; the message names the callback and its error.

    The original exception is the ``__cause__``.
    """

    def __init__(self, callback: str, error: BaseException) -> None:
        self.callback = callback
        message = str(error)
        super().__init__(f"{callback} raised {type(error).__name__}" + (f": {message}" if message else ""))


def named_callback(name: str, callback: Optional[Callable[..., Any]]) -> Optional[Callable[..., Any]]:
    """Wrap ``callback`` so that an exception it raises becomes a :class:`UserCallbackError` naming ``name``."""
    if callback is None or getattr(callback, "__bcml_callback__", None) == name:
        return callback

    @functools.wraps(callback)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        try:
            return callback(*args, **kwargs)
        except UserCallbackError:
            raise
        except Exception as error:
            raise UserCallbackError(name, error) from error

    guarded.__bcml_callback__ = name  # type: ignore[attr-defined]
    return guarded
