"""The WSGI server thread behind a widget: port choice, start, stop.

Werkzeug's threaded server runs the Flask app in a daemon thread. The listening
socket is bound and listening before :class:`WidgetServer` returns, so the
first request never races the server thread; :meth:`WidgetServer.close`
stops the loop, closes the listening socket and every open connection, and
frees the port. A port that is taken is reported with :class:`PortInUseError`
naming it. Live servers are closed at interpreter exit.

Why not rai-core-flask's ``FlaskHelper``: see the widget-server issue (its
``stop()`` does nothing while serving, it refuses early requests, scans other
ports and its gevent thread can crash the interpreter at exit).
"""

from __future__ import annotations

import atexit
import errno
import logging
import re
import socket
import sys
import threading
import weakref
from typing import Any, Iterable, Optional, Set

from werkzeug.serving import ThreadedWSGIServer, WSGIRequestHandler

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT_RANGE",
    "PortInUseError",
    "WidgetServer",
    "live_servers",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT_RANGE = range(5000, 5100)
_POLL_INTERVAL = 0.1
_CONNECTION_TIMEOUT = 120.0


class PortInUseError(RuntimeError):
    """The requested port (or every port of the default range) is taken."""

    def __init__(self, message: str, port: Optional[int] = None) -> None:
        super().__init__(message)
        self.port = port


_TOKEN_RE = re.compile(r"(token=)[^&\s]*", re.IGNORECASE)


def _redact(text: str) -> str:
    """Hide the token of a request line in logs."""
    return _TOKEN_RE.sub(r"\1***", text)


class _QuietHandler(WSGIRequestHandler):
    """Request handler that logs through ``logging`` at DEBUG, not stderr,
    and answers HTTP-level parse errors with JSON instead of an HTML page."""

    timeout = _CONNECTION_TIMEOUT

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
        logger.debug("%s %s", self.address_string(), _redact(message % args))

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        logger.debug("%s %s %s", self.address_string(),
                     _redact(getattr(self, "requestline", "")), code)

    def send_error(self, code: int, message: Optional[str] = None,
                   explain: Optional[str] = None) -> None:
        import json
        try:
            short, _ = self.responses.get(code, ("Error", ""))
        except Exception:  # pragma: no cover
            short = "Error"
        body = json.dumps({"error": "%s." % short}).encode("ascii")
        self.log_error("code %d, message %s", code, message)
        self.send_response(code, short)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body)


class _Server(ThreadedWSGIServer):
    """Threaded Werkzeug server that tracks its connections so that
    :meth:`close_connections` can end keep-alive connections at close."""

    daemon_threads = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._connections: Set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def log(self, type: str, message: str, *args: Any) -> None:  # noqa: A002
        logger.debug("werkzeug %s: %s", type, _redact(message % args if args else message))

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Client disconnects and the like: log, never print to the notebook.
        logger.debug("error while handling a request from %s", client_address,
                     exc_info=True)


def _family_for(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _bind(host: str, port: int) -> socket.socket:
    """Bind and listen on (host, port); OSError when that fails."""
    family = _family_for(host)
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if sys.platform == "win32":  # pragma: no cover - Windows only
            sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_EXCLUSIVEADDRUSE", -5), 1)
        else:
            # Lets a closed port be taken again at once despite TIME_WAIT
            # connections; on Linux it never allows two listeners.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


def _validate_port(port: Any) -> int:
    if isinstance(port, bool) or not isinstance(port, int):
        raise TypeError("port must be an integer, got %r" % (port,))
    if not 0 <= port <= 65535:
        raise ValueError("port must be between 0 and 65535, got %d" % port)
    return port


def bind_socket(host: str, port: Optional[int] = None,
                port_range: Iterable[int] = DEFAULT_PORT_RANGE) -> socket.socket:
    """Bind a listening socket.

    Parameters
    ----------
    host : str
        The interface address.
    port : int, optional
        The port; 0 lets the system choose. ``None`` takes the first free port
        of ``port_range``.
    port_range : iterable of int
        The ports to try when ``port`` is None.

    Returns
    -------
    socket.socket
        A listening socket.

    Raises
    ------
    PortInUseError
        The given port is taken, or no port of the range is free.
    """
    if port is not None:
        port = _validate_port(port)
        try:
            return _bind(host, port)
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", -1)):
                raise PortInUseError(
                    "Port %d on %s is already in use (or not allowed). Pass another "
                    "port, or port=None to take a free one in %d-%d."
                    % (port, host, DEFAULT_PORT_RANGE[0], DEFAULT_PORT_RANGE[-1]),
                    port=port) from None
            raise
    ports = list(port_range)
    for candidate in ports:
        try:
            return _bind(host, candidate)
        except OSError as exc:
            if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
                raise  # the host is wrong, not the port
            continue
    raise PortInUseError(
        "No free port in %d-%d on %s. Close other widgets or pass port=."
        % (ports[0], ports[-1], host) if ports else "No port to try.")


_live: "weakref.WeakSet[WidgetServer]" = weakref.WeakSet()
_live_lock = threading.Lock()


def live_servers() -> list:
    """The servers of this process that are still serving."""
    with _live_lock:
        return [s for s in _live if s.running]


class WidgetServer:
    """Serve a WSGI app on ``host:port`` from a daemon thread.

    Parameters
    ----------
    app : callable
        The WSGI application (a Flask app).
    host : str
        Interface to bind; loopback by default.
    port : int, optional
        The port; ``None`` takes the first free one in 5000-5099; 0 lets the
        system choose.
    port_range : iterable of int
        Ports tried when ``port`` is None.

    Attributes
    ----------
    host : str
    port : int
        The bound port.

    Notes
    -----
    The socket accepts connections before the constructor returns. The server
    is closed by :meth:`close`, by leaving a ``with`` block, or at interpreter
    exit.
    """

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: Optional[int] = None,
                 port_range: Iterable[int] = DEFAULT_PORT_RANGE) -> None:
        self.host = host
        self._closed = False
        self._close_lock = threading.Lock()
        sock = bind_socket(host, port, port_range)
        try:
            self.port = sock.getsockname()[1]
            # Werkzeug duplicates the descriptor; ours is closed right after.
            self._server = _Server(host, self.port, app, handler=_QuietHandler,
                                   fd=sock.fileno())
        finally:
            sock.close()
        self._thread = threading.Thread(
            target=self._serve, name="bcml-widget-server-%d" % self.port, daemon=True)
        self._thread.start()
        with _live_lock:
            _live.add(self)

    def _serve(self) -> None:
        try:
            self._server.serve_forever(poll_interval=_POLL_INTERVAL)
        except Exception:  # pragma: no cover - logged, never printed
            logger.exception("the widget server on port %d stopped", self.port)

    @property
    def running(self) -> bool:
        """Whether the server still serves."""
        return not self._closed and self._thread.is_alive()

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end open connections and free the port (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        if self._thread.is_alive():
            if threading.current_thread() is not self._thread:
                self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)
        with _live_lock:
            _live.discard(self)

    def __enter__(self) -> "WidgetServer":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "closed"
        return "<WidgetServer %s:%d %s>" % (self.host, self.port, state)


def _close_all() -> None:
    for server in live_servers():
        try:
            server.close(timeout=1.0)
        except Exception:  # pragma: no cover
            pass


atexit.register(_close_all)
