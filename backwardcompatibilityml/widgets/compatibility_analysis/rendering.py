"""The widget's HTML: the UI bundle and CSS inlined, one unique root per widget.

The mounting contract is in ``docs/api.md``::

    <div class="bcml-widget" id="bcml-widget-<32 hex>"></div>
    <style>widget.css</style>
    <script>widget.js</script>
    <script>window.BackwardCompatibilityML.mountWidget(root, CONFIG);</script>

The bundle and the CSS are package data, read through ``importlib.resources``
(so they load from a wheel, a zip or an editable install alike) once per
process and kept, already made safe to inline; each render only adds a new
root id and the configuration.
"""

from __future__ import annotations

import functools
import json
import re
import uuid
from importlib import resources
from typing import Any, Dict, Mapping, Optional, Tuple

__all__ = [
    "RESOURCES",
    "clear_asset_cache",
    "config_json",
    "render_widget_html",
    "render_page",
    "script_safe",
]

#: The package's ``resources`` folder (an ``importlib.resources`` Traversable).
RESOURCES = resources.files(__package__) / "resources"
_BUNDLE_NAME = "widget.js"
_CSS_NAME = "widget.css"
# Shown instead of a file system path: answers must not reveal paths.
_PACKAGE_RESOURCES = "backwardcompatibilityml/widgets/compatibility_analysis/resources"

_CONFIG_KEYS = ("environment_type", "base_url", "port", "token")

_JSON_ESCAPES = {
    "<": "\\u003c",
    ">": "\\u003e",
    "&": "\\u0026",
    "\u2028": "\\u2028",
    "\u2029": "\\u2029",
}
_JSON_ESCAPE_RE = re.compile("[<>&\u2028\u2029]")
_SCRIPT_CLOSE_RE = re.compile(r"<(/script|!--)", re.IGNORECASE)
_STYLE_CLOSE_RE = re.compile(r"</(style)", re.IGNORECASE)


def config_json(api_service_environment: Mapping[str, Any]) -> str:
    """The CONFIG object as JSON that cannot leave a ``<script>`` element.

    Parameters
    ----------
    api_service_environment : mapping
        ``environment_type``, ``base_url``, ``port`` and ``token``.

    Returns
    -------
    str
        JSON with ``<``, ``>``, ``&``, U+2028 and U+2029 written as ``\\uXXXX``.
    """
    config: Dict[str, Any] = {
        "environment_type": api_service_environment.get("environment_type") or "local",
        "base_url": api_service_environment.get("base_url") or None,
        "port": api_service_environment.get("port"),
        "token": api_service_environment.get("token"),
    }
    text = json.dumps(config, ensure_ascii=True, allow_nan=False)
    return _JSON_ESCAPE_RE.sub(lambda m: _JSON_ESCAPES[m.group(0)], text)


def script_safe(source: str) -> str:
    """Make JavaScript source safe to inline in a ``<script>`` element.

    ``</script`` and ``<!--`` become ``\\x3c/script`` and ``\\x3c!--``: the same
    text inside string, template and regular-expression literals, and the HTML
    parser no longer sees the end of the element.
    """
    return _SCRIPT_CLOSE_RE.sub(lambda m: "\\x3c" + m.group(1), source)


def _style_safe(source: str) -> str:
    return _STYLE_CLOSE_RE.sub(lambda m: "<\\/" + m.group(1), source)


def _read_resource(root: Any, name: str) -> Optional[str]:
    try:
        return (root / name).read_text(encoding="utf-8")
    except OSError:
        return None


@functools.lru_cache(maxsize=4)
def _assets(root: Any) -> Tuple[Optional[str], str]:
    """``(bundle, css)`` of ``root``, made safe to inline; the bundle is None
    when it is missing. Read once per root, then cached."""
    bundle = _read_resource(root, _BUNDLE_NAME)
    css = _read_resource(root, _CSS_NAME) or ""
    return (None if bundle is None else script_safe(bundle)), _style_safe(css)


def clear_asset_cache() -> None:
    """Forget the bundle and CSS read so far (after rebuilding the UI in a
    running kernel, for instance); the next render reads them again."""
    _assets.cache_clear()


def render_widget_html(api_service_environment: Mapping[str, Any]) -> str:
    """Render the HTML of one compatibility analysis widget.

    Parameters
    ----------
    api_service_environment : mapping
        The environment of the API service: ``environment_type``,
        ``base_url``, ``port`` and ``token`` (see ``docs/api.md``).

    Returns
    -------
    str
        A ``<div>`` with a unique id, the inlined CSS and UI bundle, and the
        script that mounts the UI on the ``<div>``. When the bundle is missing
        from the package, the ``<div>`` says so instead.
    """
    root_id = "bcml-widget-" + uuid.uuid4().hex
    bundle, css = _assets(RESOURCES)
    if bundle is None:
        return (
            '<div class="bcml-widget" id="%s" style="padding:8px;border:1px solid #c00;'
            'color:#900;font-family:sans-serif">BackwardCompatibilityML: the widget UI '
            'bundle (%s/%s) is missing from this installation. Build it with '
            '<code>npm run build</code> in <code>widget-ui/</code> or reinstall the '
            'package.</div>' % (root_id, _PACKAGE_RESOURCES, _BUNDLE_NAME))
    mount = (
        "(function(){var root=document.getElementById(%s);var config=%s;"
        "var lib=window.BackwardCompatibilityML;"
        "if(lib&&typeof lib.mountWidget===\"function\"){lib.mountWidget(root,config);}"
        "else if(root){root.textContent=\"BackwardCompatibilityML: the widget UI "
        "did not load.\";}})();"
        % (json.dumps(root_id), config_json(api_service_environment)))
    return (
        '<div class="bcml-widget" id="%s"></div>\n'
        "<style>%s</style>\n"
        "<script>%s</script>\n"
        "<script>%s</script>\n"
        % (root_id, css, bundle, mount))


def render_page(api_service_environment: Mapping[str, Any]) -> str:
    """The widget as a complete HTML page (the standalone page at ``/``).

    Parameters
    ----------
    api_service_environment : mapping
        As for :func:`render_widget_html`.

    Returns
    -------
    str
        An HTML document.
    """
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<link rel=\"icon\" href=\"data:,\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        "<title>BackwardCompatibilityML - compatibility analysis</title>\n"
        "</head>\n<body>\n%s</body>\n</html>\n"
        % render_widget_html(api_service_environment))
