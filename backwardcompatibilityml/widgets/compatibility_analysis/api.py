"""The REST layer of the compatibility analysis widget (``/api/v1``).

Thin: every answer is computed from the SweepManager's status, summary and
stored datapoints (see ``docs/api.md``). Compact views and instance indexes
come from ``SweepManager.get_evaluation_view`` (computed from the columns
with numpy and cached by the manager); for a manager with
``get_evaluation`` only, they are derived from its records and cached per
datapoint while it returns the same record object.

Security: every ``/api/v1`` route and the standalone page ``/`` require the
per-app token (header ``X-BCML-Token``; the query parameter ``token`` only on
GET ``instance_data`` and the page, where a browser cannot send a header;
compared in constant time) and a Host header naming a loopback address or an
allowed host (DNS rebinding). CORS preflights pass without a token; CORS
answers ``*`` without credentials. Errors are JSON ``{"error": "..."}``;
tracebacks are only logged. The routes are described in OpenAPI 3 by
``resources/openapi.json``, served at ``/api/v1/openapi.json``.
"""

from __future__ import annotations

import hmac
import json
import logging
import math
import re
import secrets
import threading
from collections import OrderedDict
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Tuple

import numpy as np
from flask import Blueprint, Flask, Response, request, stream_with_context
from flask_cors import CORS
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.routing import RequestRedirect

from ...callbacks import UserCallbackError
from ...engine.errors import public_error_message
from ...results import FULL_RECORD_MAX_ERRORS, BaseView, CorruptDatapointError, FullRecordTooLarge, RecordView
from ...results.views import REGIONS, SORT_KEYS
from ...validation import check_str, check_str_list
from .environment import is_loopback_host
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
_ID_RE = re.compile(r"^[0-9]+\Z")
# Integers in query parameters: like ids in paths, decimal digits with any
# number of leading zeros (``007`` is 7), here with an optional minus sign.
_INT_ARG_RE = re.compile(r"^-?[0-9]+\Z")
_MAX_CLASS_DIGITS = 18
_SLASHES_RE = re.compile(r"/{2,}")
# instances.csv: the first rows (up to this many characters) are made before the
# answer starts, so that a failing callback still gets a 500; a longer CSV streams on.
_CSV_PREFETCH_CHARS = 8 * 1024 * 1024
# Status fields that stay in Python (SweepManager.get_sweep_status()) and are
# never sent over HTTP.
_PRIVATE_STATUS_KEYS = ("error_traceback",)
# Record views of a manager without get_evaluation_view (each holds its record).
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
    """A non-negative decimal id (leading zeros allowed: ``007`` is 7); 400
    when malformed, 404 when beyond int64."""
    if not _ID_RE.match(text or ""):
        raise ApiError(400, "The %s must be a non-negative integer." % what)
    digits = text.lstrip("0") or "0"
    if len(digits) > 19 or int(digits) > _MAX_ID:
        raise ApiError(404, "Unknown %s." % what)
    return int(digits)


def public_status(status: Mapping[str, Any]) -> Dict[str, Any]:
    """The sweep status as sent over HTTP: without the traceback (and any
    other field that stays in Python)."""
    return {k: v for k, v in status.items() if k not in _PRIVATE_STATUS_KEYS}


def _arg(name: str) -> Optional[str]:
    value = request.args.get(name)
    if value is None or value.strip() == "":
        return None
    return value.strip()


def _parse_int_text(text: str, max_digits: int) -> Optional[int]:
    """The integer written by ``text`` (``-?digits``, leading zeros allowed),
    or None when it is malformed or has more than ``max_digits`` significant
    digits: the rule of ids in paths, with a sign."""
    if not _INT_ARG_RE.match(text):
        return None
    negative = text.startswith("-")
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) > max_digits:
        return None
    return -int(digits) if negative else int(digits)


def _int_arg(name: str, default: int, low: int, high: Optional[int]) -> int:
    """An integer query parameter in [low, high] (high None: up to int64);
    400 when malformed or out of range. Leading zeros are accepted."""
    value = _arg(name)
    if value is None:
        return default
    if not _INT_ARG_RE.match(value):
        raise ApiError(400, "Parameter '%s' must be an integer." % name)
    number = _parse_int_text(value, 19)
    if number is None or number < low or number > (_MAX_ID if high is None else high):
        if high is None:
            raise ApiError(400, "Parameter '%s' must be between %d and 2**63 - 1." % (name, low))
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


_PORT_RE = re.compile(r"^[0-9]*\Z")


def _split_host(host_header: str) -> Optional[str]:
    """The host name of a Host header (port and trailing dot removed,
    lower case), or None when it is malformed (``[::1`` without its
    closing bracket, ``[::1]x``)."""
    host = host_header.strip().lower()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:]
        if end <= 1 or (rest and not (rest.startswith(":") and _PORT_RE.match(rest[1:]))):
            return None
        return host[1:end]
    if "[" in host or "]" in host:
        return None
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


def _host_allowed(app: Flask) -> bool:
    header = request.headers.get("Host")
    if header is None:
        return True  # HTTP/1.0 without Host: not a browser, no rebinding
    host = _split_host(header)
    if host is None:
        return False
    if is_loopback_host(host):
        return True
    allowed = app.config.get(ALLOWED_HOSTS_CONFIG_KEY) or ()
    return "*" in allowed or host in allowed


def _allowed_host_names(allowed_hosts: Any) -> frozenset:
    """The names of ``allowed_hosts`` as the Host check compares them."""
    names = set()
    for entry in check_str_list(allowed_hosts, "allowed_hosts"):
        if entry == "*":
            names.add("*")
            continue
        name = _split_host(entry)
        if name is None:
            raise ValueError("allowed_hosts must hold host names, got the malformed %r" % (entry,))
        names.add(name)
    return frozenset(names)


def _query_token_allowed() -> bool:
    """Where a browser cannot send a header: an ``<img>`` (GET
    ``instance_data``) and a top-level navigation to the standalone page."""
    if request.method not in ("GET", "HEAD"):
        return False
    path = _normalized_path()
    return path == "/" or path.startswith(API_PREFIX + "/instance_data/")


def _token_ok(app: Flask) -> bool:
    expected = app.config.get(TOKEN_CONFIG_KEY) or ""
    given = request.headers.get(TOKEN_HEADER)
    if given is None and _query_token_allowed():
        given = request.args.get("token")
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


def _normalized_path() -> str:
    """The request path with runs of slashes collapsed (``//api/v1//x``)."""
    return _SLASHES_RE.sub("/", request.path)


def _is_api_path(path: str) -> bool:
    return path == API_PREFIX or path.startswith(API_PREFIX + "/")


# ---------------------------------------------------------------- views

# The views themselves live in backwardcompatibilityml.results (computed from
# columns, or from a stored JSON record); DatapointView is the record view.
DatapointView = RecordView


class _ViewCache:
    """Record views of a manager without ``get_evaluation_view``, reused while the record object is the same."""

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self._size = size
        self._views: "OrderedDict[int, RecordView]" = OrderedDict()
        self._lock = threading.Lock()

    def get(self, index: int, record: Dict[str, Any]) -> RecordView:
        with self._lock:
            view = self._views.get(index)
            if view is not None and view.record() is record:
                self._views.move_to_end(index)
                return view
        view = RecordView(record)  # outside the lock: may take a while
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


# ---------------------------------------------------------------- streaming


def _prefetch(chunks: Iterator[str], limit: int) -> Tuple[List[str], bool]:
    """Take chunks until ``limit`` characters or the end; whether it ended.

    Exceptions of the generator propagate here, before any header is sent."""
    head: List[str] = []
    size = 0
    for chunk in chunks:
        head.append(chunk)
        size += len(chunk)
        if size >= limit:
            return head, False
    return head, True


def _chain(head: List[str], rest: Iterator[str]) -> Iterator[str]:
    yield from head
    yield from rest


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
    allowed_hosts : list of str, optional
        Host names accepted in the Host header besides loopback names;
        ``"*"`` turns the check off. A single ``str`` is refused.
    standalone_page : bool
        Serve the widget as a full page at ``/`` (skipped when the app already
        has a route there).

    Returns
    -------
    str
        The token, also stored in ``app.config["BCML_TOKEN"]``.

    Raises
    ------
    TypeError
        ``allowed_hosts`` is a ``str`` or holds a non-``str`` item, or
        ``token`` is not a ``str``.
    ValueError
        The API is already registered on ``app``, ``token`` is empty, or an
        entry of ``allowed_hosts`` is malformed.
    """
    if "bcml_api" in app.blueprints:
        raise ValueError("the widget API is already registered on this app")
    allowed_names = _allowed_host_names(allowed_hosts)
    check_str(token, "token", allow_empty=False, allow_none=True)
    if token is None:
        token = generate_token()
    app.config[TOKEN_CONFIG_KEY] = token
    app.config[ALLOWED_HOSTS_CONFIG_KEY] = allowed_names
    if standalone_page and any(rule.rule == "/" for rule in app.url_map.iter_rules()):
        standalone_page = False  # the app has its own page at "/": leave it alone
    cache = _ViewCache(_CACHE_SIZE)
    protected = {"/"} if standalone_page else set()

    def guarded() -> bool:
        """Token and Host checks apply (the API and the standalone page)."""
        path = _normalized_path()
        return _is_api_path(path) or path in protected

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
        if isinstance(request.routing_exception, RequestRedirect):
            # Werkzeug would answer ``//`` paths with an HTML 308 redirect.
            return error_response(404, "Not found: no such route.")
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
        if isinstance(exc, UserCallbackError):  # say which of the user's callbacks failed (no path, no traceback)
            return error_response(500, public_error_message(exc))
        return error_response(500, "Internal server error (%s)." % type(exc).__name__)

    CORS(app, resources={API_PREFIX + "/*": {
        # "*" (not an echo of the Origin): the token, not the origin, guards
        # the API, and no credentials (cookies) are ever accepted.
        "origins": "*",
        "send_wildcard": True,
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

    def evaluation_view(id_text: str) -> BaseView:
        index = parse_id(id_text, "evaluation id")
        get_view = getattr(sweep_manager, "get_evaluation_view", None)
        try:
            if get_view is not None:
                return get_view(index)
            record = sweep_manager.get_evaluation(index)
        except (KeyError, IndexError, FileNotFoundError):
            raise ApiError(404, "Unknown evaluation id %d." % index) from None
        except CorruptDatapointError:  # its reason (file names) is logged, never sent
            raise ApiError(500, "Datapoint %d is stored but its files cannot be read." % index) from None
        if record is None:
            raise ApiError(404, "Unknown evaluation id %d." % index)
        return cache.get(index, record)

    def instance_query() -> Dict[str, Any]:
        """The filters and the sort of ``/instances`` and ``/instances.csv`` (400 when malformed)."""
        region = _arg("region")
        if region is not None and region not in REGIONS:
            raise ApiError(400, "Parameter 'region' must be progress, common or regress.")
        model = _arg("model")
        if model is not None and model not in ("h1", "h2"):
            raise ApiError(400, "Parameter 'model' must be h1 or h2.")
        class_text = _arg("class")
        class_ = None
        if class_text is not None:
            class_ = _parse_int_text(class_text, _MAX_CLASS_DIGITS)
            if class_ is None:
                raise ApiError(400, "Parameter 'class' must be an integer of at most %d digits."
                               % _MAX_CLASS_DIGITS)
        sort = _arg("sort") or "instance_id"
        if sort.lstrip("-") not in SORT_KEYS or sort.count("-") > 1 or (
                "-" in sort and not sort.startswith("-")):
            raise ApiError(400, "Parameter 'sort' must be one of %s, optionally "
                                "prefixed by '-'." % ", ".join(SORT_KEYS))
        return {"region": region, "class_": class_, "model": model, "sort": sort}

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
        return json_response({"started": True,
                              "status": public_status(sweep_manager.get_sweep_status())}, 202)

    @bp.route("/cancel_sweep", methods=["POST"])
    def cancel_sweep() -> Response:
        cancelled = bool(sweep_manager.cancel_sweep())
        return json_response({"cancelled": cancelled,
                              "status": public_status(sweep_manager.get_sweep_status())})

    @bp.route("/sweep_status", methods=["GET"])
    def sweep_status() -> Response:
        return json_response(public_status(sweep_manager.get_sweep_status()))

    @bp.route("/sweep_summary", methods=["GET"])
    def sweep_summary() -> Response:
        summary = dict(sweep_manager.get_sweep_summary())
        summary["instance_images"] = getattr(
            sweep_manager, "get_instance_image_by_id", None) is not None
        return json_response(summary)

    @bp.route("/openapi.json", methods=["GET"])
    def openapi_document() -> Response:
        from .openapi import openapi_json
        return _bytes_response(openapi_json())

    @bp.route("/evaluation_data/<id_text>", methods=["GET"])
    def evaluation_data(id_text: str) -> Response:
        full = _bool_arg("full")
        view = evaluation_view(id_text)
        if full:
            try:
                return _bytes_response(view.full_json(FULL_RECORD_MAX_ERRORS))
            except FullRecordTooLarge as exc:
                raise ApiError(413, "The full record of evaluation %s lists %d error instances, over the "
                                    "limit of %d for full=1; page through its instances or download "
                                    "instances.csv instead." % (id_text, exc.errors, exc.limit)) from None
        defaults = None
        if view.scalars().get("performance_metric") is None:
            defaults = {"performance_metric": _performance_metric_name()}
        return _bytes_response(view.compact_json(defaults))

    @bp.route("/evaluation_data/<id_text>/instances", methods=["GET"])
    def evaluation_instances(id_text: str) -> Response:
        query = instance_query()
        offset = _int_arg("offset", 0, 0, None)
        limit = _int_arg("limit", DEFAULT_PAGE_LIMIT, 1, MAX_PAGE_LIMIT)
        view = evaluation_view(id_text)
        return json_response(view.page(offset=offset, limit=limit, **query))

    @bp.route("/evaluation_data/<id_text>/instances.csv", methods=["GET"])
    def evaluation_instances_csv(id_text: str) -> Response:
        query = instance_query()
        view = evaluation_view(id_text)
        positions = view.select(**query)  # before streaming: errors still get their status
        # The rows of the first _CSV_PREFETCH_CHARS are made here, so that a failing user
        # callback (get_instance_metadata) answers 500 JSON like /instances, not a cut download.
        chunks = view.csv_chunks(positions)
        head, finished = _prefetch(chunks, _CSV_PREFETCH_CHARS)
        if finished:
            body: Any = "".join(head)
        else:
            body = stream_with_context(_chain(head, chunks))
        response = Response(body, mimetype="text/csv")
        response.headers["Content-Disposition"] = (
            'attachment; filename="evaluation-%d-instances.csv"' % parse_id(id_text, "evaluation id"))
        return response

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
