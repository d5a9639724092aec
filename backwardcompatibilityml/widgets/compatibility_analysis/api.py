"""The REST layer of the compatibility analysis widget (``/api/v1``).

Thin: every answer is computed from the SweepManager's status, summary and
stored evaluation records (see ``docs/api.md``). Compact views and instance
indexes are derived with numpy and cached per datapoint by the identity of the
record object (``SweepManager.get_evaluation`` returns the same dict while the
datapoint is unchanged).

Security: every ``/api/v1`` route and the standalone page ``/`` require the
per-app token (header ``X-BCML-Token`` or query parameter ``token``, compared
in constant time) and a Host header naming a loopback address or an allowed
host (DNS rebinding). CORS preflights pass without a token. Errors are JSON
``{"error": "..."}``; tracebacks are only logged.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
import math
import re
import secrets
import threading
from collections import OrderedDict
from typing import Any, Dict, Iterable, List, Mapping, Optional

import numpy as np
from flask import Blueprint, Flask, Response, request
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from .images import ImageConversionError, is_response, placeholder_png, to_png_bytes

__all__ = [
    "API_PREFIX",
    "TOKEN_HEADER",
    "MAX_PAGE_LIMIT",
    "ApiError",
    "DatapointView",
    "register_api",
    "generate_token",
    "is_loopback_host",
    "dumps",
]

logger = logging.getLogger(__name__)

API_PREFIX = "/api/v1"
TOKEN_HEADER = "X-BCML-Token"
TOKEN_CONFIG_KEY = "BCML_TOKEN"
ALLOWED_HOSTS_CONFIG_KEY = "BCML_ALLOWED_HOSTS"
MAX_PAGE_LIMIT = 500
DEFAULT_PAGE_LIMIT = 50
_MAX_ID = 2 ** 63 - 1
_ID_RE = re.compile(r"^[0-9]+$")
_INT_RE = re.compile(r"^-?[0-9]{1,18}$")
REGIONS = ("progress", "common", "regress")
SORT_KEYS = ("instance_id", "h1_prediction", "h2_prediction", "ground_truth")
# Views hold their record: no more of them than the SweepManager keeps records
# (its RECORD_CACHE_SIZE), so the API does not undo its memory bound.
_CACHE_SIZE = 8

_STATUS_MESSAGES = {
    400: "Bad request.",
    403: "Forbidden.",
    404: "Not found.",
    405: "Method not allowed.",
    409: "Conflict.",
    413: "Request too large.",
    500: "Internal server error.",
}


class ApiError(HTTPException):
    """An HTTP error whose message is safe to show (no path, no traceback)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(description=message)
        self.code = code
        self.message = message


# ---------------------------------------------------------------- JSON


def _jsonable(obj: Any) -> Any:
    if obj is None or isinstance(obj, (str, bool, int)):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {(k if isinstance(k, str) else str(_jsonable(k))): _jsonable(v)
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return _jsonable(obj.item())
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if hasattr(obj, "tolist"):  # torch tensors and the like
        return _jsonable(obj.tolist())
    return str(obj)


def dumps(obj: Any) -> bytes:
    """Strict JSON (NaN and infinities become null; numpy scalars are unwrapped)."""
    # A dict that another thread grows while we walk it raises RuntimeError;
    # the SweepManager hands out finished objects, this is belt and braces.
    for attempt in range(3):
        try:
            clean = _jsonable(obj)
            break
        except RuntimeError:
            if attempt == 2:
                raise
    return json.dumps(clean, separators=(",", ":"), allow_nan=False).encode("utf-8")


def json_response(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status=status, mimetype="application/json")


def _bytes_response(body: bytes, status: int = 200) -> Response:
    return Response(body, status=status, mimetype="application/json")


def error_response(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


# ---------------------------------------------------------------- parsing


def parse_id(text: str, what: str = "id") -> int:
    """A non-negative decimal id; 400 when malformed, 404 when beyond int64."""
    if not _ID_RE.match(text or ""):
        raise ApiError(400, "The %s must be a non-negative integer." % what)
    if len(text) > 19 or int(text) > _MAX_ID:
        raise ApiError(404, "Unknown %s." % what)
    return int(text)


def _arg(name: str) -> Optional[str]:
    value = request.args.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _int_arg(name: str, default: int, low: int, high: Optional[int]) -> int:
    value = _arg(name)
    if value is None:
        return default
    if not _INT_RE.match(value):
        raise ApiError(400, "Parameter '%s' must be an integer." % name)
    number = int(value)
    if number < low or (high is not None and number > high):
        if high is None:
            raise ApiError(400, "Parameter '%s' must be >= %d." % (name, low))
        raise ApiError(400, "Parameter '%s' must be between %d and %d." % (name, low, high))
    return number


def _bool_arg(name: str) -> bool:
    value = _arg(name)
    if value is None:
        return False
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ApiError(400, "Parameter '%s' must be 1 or 0." % name)


# ---------------------------------------------------------------- security


def generate_token() -> str:
    """A fresh random token (48 hex digits)."""
    return secrets.token_hex(24)


def _split_host(host_header: str) -> str:
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        return host[1:end] if end > 0 else host
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def is_loopback_host(host: str) -> bool:
    """Whether a host name (no port) names the loopback interface."""
    host = host.strip().lower().strip("[]").rstrip(".")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _host_allowed(app: Flask) -> bool:
    header = request.headers.get("Host")
    if header is None:
        return True  # HTTP/1.0 without Host: not a browser, no rebinding
    host = _split_host(header)
    if is_loopback_host(host):
        return True
    allowed = app.config.get(ALLOWED_HOSTS_CONFIG_KEY) or ()
    return "*" in allowed or host in allowed


def _token_ok(app: Flask) -> bool:
    expected = app.config.get(TOKEN_CONFIG_KEY) or ""
    given = request.headers.get(TOKEN_HEADER)
    if given is None:
        given = request.args.get("token")
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


# ---------------------------------------------------------------- views


class DatapointView:
    """Indexes derived from one stored evaluation record.

    Parameters
    ----------
    record : dict
        The stored evaluation record (``docs/api.md``).
    """

    def __init__(self, record: Dict[str, Any]) -> None:
        self.record = record
        overlap = record.get("models_error_overlap") or [[], [], []]
        self.h1_errors = np.unique(np.asarray(overlap[0], dtype=np.int64))
        self.h2_errors = np.unique(np.asarray(overlap[1], dtype=np.int64))
        self.ids = np.union1d(self.h1_errors, self.h2_errors)
        self.in_h1 = np.isin(self.ids, self.h1_errors, assume_unique=True)
        self.in_h2 = np.isin(self.ids, self.h2_errors, assume_unique=True)
        # 0 progress (h1 wrong only), 1 common, 2 regress (h2 wrong only)
        self.region = np.where(self.in_h1 & self.in_h2, 1, np.where(self.in_h1, 0, 2))
        instances = record.get("error_instances") or {}
        self.entries: List[Dict[str, Any]] = []
        missing = np.iinfo(np.int64).min
        columns = {key: np.full(len(self.ids), missing, dtype=np.int64)
                   for key in ("h1_prediction", "h2_prediction", "ground_truth")}
        for position, instance_id in enumerate(self.ids.tolist()):
            entry = instances.get(str(instance_id)) or {"instance_id": instance_id}
            self.entries.append(entry)
            for key, column in columns.items():
                value = entry.get(key)
                if isinstance(value, (int, np.integer)) or (
                        isinstance(value, float) and value.is_integer()):
                    column[position] = int(value)
        self.columns = columns
        self._compact: Optional[bytes] = None
        self._lock = threading.Lock()

    # -- compact ---------------------------------------------------------

    def compact(self, defaults: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """The compact view: scalars, counts and per-class figures, no id lists.

        Parameters
        ----------
        defaults : mapping, optional
            Scalar fields to add when the record lacks them (for instance
            ``performance_metric`` from the sweep summary).
        """
        record = self.record
        view: Dict[str, Any] = {k: v for k, v in record.items()
                                if not isinstance(v, (list, dict, tuple))}
        for key, value in (defaults or {}).items():
            if view.get(key) is None:
                view[key] = value
        view["error_counts"] = {"h1": int(self.h1_errors.size), "h2": int(self.h2_errors.size)}
        view["regions"] = {name: int(np.count_nonzero(self.region == code))
                           for code, name in enumerate(REGIONS)}
        view["sorted_classes"] = list(record.get("sorted_classes") or [])
        for key in ("h1_accuracy_by_class", "h2_accuracy_by_class"):
            rows = []
            for row in record.get(key) or []:
                compact_row = {k: v for k, v in row.items() if not isinstance(v, (list, dict))}
                compact_row["error_count"] = len(row.get("error_instance_ids") or [])
                rows.append(compact_row)
            view[key] = rows
        incompatible = [
            {"class": row.get("class"), "count": len(row.get("instance_ids") or [])}
            for row in record.get("h2_incompatible_instance_ids_by_class") or []]
        view["h2_incompatible_count_by_class"] = incompatible
        view["incompatible_total"] = int(sum(row["count"] for row in incompatible))
        return view

    def compact_json(self, defaults: Optional[Mapping[str, Any]] = None) -> bytes:
        with self._lock:
            if self._compact is None:
                self._compact = dumps(self.compact(defaults))
            return self._compact

    def full_json(self) -> bytes:
        # Not cached: megabytes for large datasets, and rarely asked for.
        return dumps(self.record)

    # -- paging ----------------------------------------------------------

    def select(self, region: Optional[str] = None, class_: Optional[int] = None,
               model: Optional[str] = None, sort: str = "instance_id") -> np.ndarray:
        """Positions (into ``ids``) of the error instances that pass the filters,
        in the requested order."""
        mask = np.ones(self.ids.shape, dtype=bool)
        if region is not None:
            mask &= self.region == REGIONS.index(region)
        if class_ is not None:
            mask &= self.columns["ground_truth"] == class_
        if model == "h1":
            mask &= self.in_h1
        elif model == "h2":
            mask &= self.in_h2
        positions = np.flatnonzero(mask)
        descending = sort.startswith("-")
        key = sort.lstrip("-")
        ids = self.ids[positions]
        if key == "instance_id":
            order = np.argsort(-ids if descending else ids, kind="stable")
        else:
            values = self.columns[key][positions]
            # ids are unique and ascending in ``positions``: ties keep id order.
            order = np.argsort(-values if descending else values, kind="stable")
        return positions[order]

    def item(self, position: int) -> Dict[str, Any]:
        entry = self.entries[position]
        return {
            "instance_id": int(self.ids[position]),
            "metadata": entry.get("metadata"),
            "h1_prediction": entry.get("h1_prediction"),
            "h2_prediction": entry.get("h2_prediction"),
            "ground_truth": entry.get("ground_truth"),
            "region": REGIONS[int(self.region[position])],
        }


class _ViewCache:
    """Per-datapoint views, reused while the record object is the same."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._views: "OrderedDict[int, DatapointView]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int, record: Dict[str, Any]) -> DatapointView:
        with self._lock:
            view = self._views.get(index)
            if view is not None and view.record is record:
                self._views.move_to_end(index)
                return view
        view = DatapointView(record)  # outside the lock: may take a while
        with self._lock:
            self._views[index] = view
            self._views.move_to_end(index)
            while len(self._views) > self._size:
                self._views.popitem(last=False)
        return view


def _is_already_running_error(exc: BaseException) -> bool:
    try:
        from backwardcompatibilityml.sweep_management import SweepAlreadyRunningError
    except Exception:  # pragma: no cover - module missing or broken
        SweepAlreadyRunningError = None
    if SweepAlreadyRunningError is not None and isinstance(exc, SweepAlreadyRunningError):
        return True
    return type(exc).__name__ == "SweepAlreadyRunningError"


# ---------------------------------------------------------------- registration


def register_api(app: Flask, sweep_manager: Any, token: Optional[str] = None,
                 allowed_hosts: Optional[Iterable[str]] = None,
                 standalone_page: bool = True) -> str:
    """Register the widget API (and the standalone page) on ``app``.

    Parameters
    ----------
    app : flask.Flask
        The app; routes must be added before it serves its first request.
    sweep_manager : SweepManager
        The sweep behind the API.
    token : str, optional
        The secret every request must present; generated when None.
    allowed_hosts : iterable of str, optional
        Host names accepted in the Host header besides loopback names;
        ``"*"`` turns the check off.
    standalone_page : bool
        Serve the widget as a full page at ``/`` (skipped when the app already
        has a route there).

    Returns
    -------
    str
        The token, also stored in ``app.config["BCML_TOKEN"]``.
    """
    if "bcml_api" in app.blueprints:
        raise ValueError("the widget API is already registered on this app")
    if token is None:
        token = generate_token()
    if not isinstance(token, str) or not token:
        raise ValueError("token must be a non-empty string")
    app.config[TOKEN_CONFIG_KEY] = token
    app.config[ALLOWED_HOSTS_CONFIG_KEY] = frozenset(
        _split_host(h) if h != "*" else "*" for h in (allowed_hosts or ()))
    if standalone_page and any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        standalone_page = False  # the app has its own page at "/": leave it alone
    cache = _ViewCache(max(2, int(getattr(sweep_manager, "RECORD_CACHE_SIZE", _CACHE_SIZE))))
    protected = {"/"} if standalone_page else set()

    def guarded() -> bool:
        """Token and Host checks apply (the API and the standalone page)."""
        return _is_api_path(request.path) or request.path in protected

    def ours() -> bool:
        """JSON errors and no-cache headers apply."""
        return guarded() or bool(app.config.get("BCML_JSON_ERRORS_EVERYWHERE"))

    @app.before_request
    def _check_access() -> Optional[Response]:
        if not guarded():
            return None
        if not _host_allowed(app):
            return error_response(403, "Host not allowed.")
        if request.method == "OPTIONS":
            return None  # CORS preflight: no token by design
        if not _token_ok(app):
            return error_response(403, "Missing or wrong token.")
        return None

    @app.after_request
    def _no_cache(response: Response) -> Response:
        if ours():
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
            response.headers["X-Content-Type-Options"] = "nosniff"
            response.headers["Referrer-Policy"] = "no-referrer"
        return response

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException) -> Any:
        if not ours():
            return exc
        if isinstance(exc, ApiError):
            return error_response(exc.code, exc.message)
        code = exc.code or 500
        message = _STATUS_MESSAGES.get(code, "%s." % (exc.name or "Error"))
        if code == 404:
            message = "Not found: no such route."
        response = error_response(code, message)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(exc.valid_methods)
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        logger.exception("error while serving %s", request.path)
        if not ours():
            from werkzeug.exceptions import InternalServerError
            return InternalServerError(original_exception=exc)
        return error_response(500, "Internal server error (%s)." % type(exc).__name__)

    CORS(app, resources={API_PREFIX + "/*": {
        "origins": "*",
        "methods": ["GET", "POST", "OPTIONS"],
        # The token header, plus what fetch() may add (cache: "no-store").
        "allow_headers": [TOKEN_HEADER, "Content-Type", "Accept", "Cache-Control", "Pragma"],
        "supports_credentials": False,
        "max_age": 600,
    }})

    bp = Blueprint("bcml_api", __name__)

    def _performance_metric_name() -> Optional[str]:
        try:
            return sweep_manager.get_sweep_summary().get("performance_metric")
        except Exception:  # pragma: no cover - the compact view still works
            logger.debug("no performance_metric in the sweep summary", exc_info=True)
            return None

    def evaluation_view(id_text: str) -> DatapointView:
        index = parse_id(id_text, "evaluation id")
        try:
            record = sweep_manager.get_evaluation(index)
        except (KeyError, IndexError, FileNotFoundError):
            raise ApiError(404, "Unknown evaluation id %d." % index) from None
        if record is None:
            raise ApiError(404, "Unknown evaluation id %d." % index)
        return cache.get(index, record)

    @bp.route("/start_sweep", methods=["POST"])
    def start_sweep() -> Response:
        if sweep_manager.is_running():
            raise ApiError(409, "A sweep is already running.")
        try:
            sweep_manager.start_sweep()
        except Exception as exc:
            if _is_already_running_error(exc):
                raise ApiError(409, "A sweep is already running.") from None
            if type(exc).__name__ == "ReadOnlySweepError":
                raise ApiError(409, "This sweep was opened read-only from its folder; "
                                    "it cannot train.") from None
            logger.exception("start_sweep failed")
            raise ApiError(500, "Could not start the sweep (%s)." % type(exc).__name__) from None
        return json_response({"started": True, "status": sweep_manager.get_sweep_status()}, 202)

    @bp.route("/cancel_sweep", methods=["POST"])
    def cancel_sweep() -> Response:
        cancelled = bool(sweep_manager.cancel_sweep())
        return json_response({"cancelled": cancelled, "status": sweep_manager.get_sweep_status()})

    @bp.route("/sweep_status", methods=["GET"])
    def sweep_status() -> Response:
        return json_response(sweep_manager.get_sweep_status())

    @bp.route("/sweep_summary", methods=["GET"])
    def sweep_summary() -> Response:
        return json_response(sweep_manager.get_sweep_summary())

    @bp.route("/evaluation_data/<id_text>", methods=["GET"])
    def evaluation_data(id_text: str) -> Response:
        full = _bool_arg("full")
        view = evaluation_view(id_text)
        if full:
            return _bytes_response(view.full_json())
        defaults = None
        if view.record.get("performance_metric") is None:
            defaults = {"performance_metric": _performance_metric_name()}
        return _bytes_response(view.compact_json(defaults))

    @bp.route("/evaluation_data/<id_text>/instances", methods=["GET"])
    def evaluation_instances(id_text: str) -> Response:
        region = _arg("region")
        if region is not None and region not in REGIONS:
            raise ApiError(400, "Parameter 'region' must be progress, common or regress.")
        model = _arg("model")
        if model is not None and model not in ("h1", "h2"):
            raise ApiError(400, "Parameter 'model' must be h1 or h2.")
        class_text = _arg("class")
        class_ = None
        if class_text is not None:
            if not _INT_RE.match(class_text):
                raise ApiError(400, "Parameter 'class' must be an integer.")
            class_ = int(class_text)
        sort = _arg("sort") or "instance_id"
        if sort.lstrip("-") not in SORT_KEYS or sort.count("-") > 1 or (
                "-" in sort and not sort.startswith("-")):
            raise ApiError(400, "Parameter 'sort' must be one of %s, optionally "
                                "prefixed by '-'." % ", ".join(SORT_KEYS))
        offset = _int_arg("offset", 0, 0, None)
        limit = _int_arg("limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
        view = evaluation_view(id_text)
        positions = view.select(region, class_, model, sort)
        page = positions[offset:offset + limit]
        return json_response({
            "total": int(positions.size),
            "offset": offset,
            "limit": limit,
            "items": [view.item(int(p)) for p in page],
        })

    @bp.route("/instance_data/<id_text>", methods=["GET"])
    def instance_data(id_text: str) -> Response:
        instance_id = parse_id(id_text, "instance id")
        callback = getattr(sweep_manager, "get_instance_image_by_id", None)
        if callback is None:
            return Response(placeholder_png(), mimetype="image/png")
        try:
            result = callback(instance_id)
        except LookupError:
            raise ApiError(404, "No image for instance %d." % instance_id) from None
        except Exception as exc:
            logger.exception("get_instance_image_by_id(%d) raised", instance_id)
            raise ApiError(500, "The get_instance_image_by_id callback raised %s for "
                                "instance %d." % (type(exc).__name__, instance_id)) from None
        if is_response(result):
            return result
        try:
            png = to_png_bytes(result)
        except ImageConversionError as exc:
            raise ApiError(500, "get_instance_image_by_id: %s." % exc) from None
        except Exception as exc:
            logger.exception("converting the image of instance %d failed", instance_id)
            raise ApiError(500, "The image of instance %d could not be converted (%s)."
                           % (instance_id, type(exc).__name__)) from None
        return Response(png, mimetype="image/png")

    app.register_blueprint(bp, url_prefix=API_PREFIX)

    if standalone_page:
        @app.route("/", methods=["GET"], endpoint="bcml_standalone_page")
        def standalone() -> Response:
            from .rendering import render_page
            port = app.config.get("BCML_PORT")
            if port is None:
                try:
                    port = int(request.environ.get("SERVER_PORT", "0"))
                except ValueError:
                    port = None
            env = {"environment_type": "local", "base_url": None, "port": port,
                   "token": app.config[TOKEN_CONFIG_KEY]}
            return Response(render_page(env), mimetype="text/html")

    return token
