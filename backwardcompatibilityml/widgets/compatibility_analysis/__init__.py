"""The compatibility analysis widget (see ``compatibility_analysis.py``)."""

from typing import Any

__all__ = [
    "CompatibilityAnalysis",
    "build_environment_params",
    "default_get_instance_metadata",
    "init_app_routes",
    "render_widget_html",
]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import compatibility_analysis as _module
        return getattr(_module, name)
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
