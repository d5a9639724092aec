"""Interactive widgets of BackwardCompatibilityML.

``from backwardcompatibilityml.widgets import CompatibilityAnalysis``; the
import is lazy so that the server modules load without torch.
"""

from typing import Any

__all__ = ["CompatibilityAnalysis"]


def __getattr__(name: str) -> Any:
    if name == "CompatibilityAnalysis":
        from .compatibility_analysis.compatibility_analysis import CompatibilityAnalysis
        return CompatibilityAnalysis
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
