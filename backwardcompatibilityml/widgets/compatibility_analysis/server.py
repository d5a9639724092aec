"""The WSGI server behind a widget: port choice, start, limits, stop.

The Flask app is served by waitress (pure Python, production grade) from one
daemon thread running its event loop plus a fixed pool of worker threads. The
listening socket is bound here, only to the chosen port, and listens before
:class:`WidgetServer` returns, so the first request never races the server
thread. :meth:`WidgetServer.close` stops the loop, closes the listening socket
and every open connection, and frees the port at once. A port that is taken
is reported with :class:`PortInUseError` naming it. Live servers are closed at
interpreter exit.

Limits (what an idle-connection flood from another local process can take):

- at most :func:`connection_limit` connections are open at a time: 200, or a
  quarter of the process's soft ``RLIMIT_NOFILE`` when that is lower (at least
  16). Further connections wait in the kernel's accept queue, holding no file
  descriptor of this process, until a connection closes;
- a connection with no request in progress is closed after
  :data:`IDLE_TIMEOUT` seconds (checked every :data:`_CLEANUP_INTERVAL` s);
- :data:`WORKER_THREADS` threads run requests; the thread count never grows
  with the number of connections;
- request headers are capped at 64 KiB (431) and bodies at 64 KiB (413), so
  no request is ever spooled to a temporary file.

Errors of the HTTP layer itself (malformed request, headers too large) are
answered as JSON ``{"error": "..."}`` like the API's own errors.

Why not rai-core-flask's ``FlaskHelper`` or werkzeug's development server:
the former cannot be stopped while it serves and its gevent thread can crash
the interpreter at exit; the latter runs one thread per connection without a
cap, so idle connections could exhaust the process's file descriptors.
"""

from __future__ import annotations

import atexit
import errno
import json
import logging
import resource
import socket
import sys
import threading
import weakref
from typing import Any, Iterable, Optional

from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask, ThreadedTaskDispatcher

from ...validation import check_port, check_str

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_PORT_RANGE",
    "IDLE_TIMEOUT",
    "WORKER_THREADS",
    "PortInUseError",
    "WidgetServer",
    "bind_socket",
    "check_host",
    "connection_limit",
    "live_servers",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT_RANGE = range(5000, 5100)
#: Seconds after which a connection with no request in progress is closed.
IDLE_TIMEOUT = 10.0
#: Threads that run requests (fixed, whatever the number of connections).
WORKER_THREADS = 8
_MAX_CONNECTIONS = 200
_MIN_CONNECTIONS = 16
_CLEANUP_INTERVAL = 1.0
#: Seconds the server's poll() waits for activity. An int: waitress casts it with int(),
#: and 0.5 became 0, a loop that never slept (a whole core while the widget was idle).
_LOOP_TIMEOUT = 1
_MAX_HEADER_BYTES = 64 * 1024
_MAX_BODY_BYTES = 64 * 1024
_BACKLOG = 1024


class PortInUseError(RuntimeError):
    """The requested port (or every port of the default range) is taken."""

    def __init__(self, message: str, port: Optional[int] = None) -> None:
        super().__init__(message)
        self.port = port


def connection_limit() -> int:
    """The most connections a widget server keeps open at a time.

    Returns
    -------
    int
        200, or a quarter of this process's soft limit of open files when that
        is lower, but at least 16.
    """
    try:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):  # pragma: no cover - exotic platforms
        soft = resource.RLIM_INFINITY
    if soft == resource.RLIM_INFINITY or soft <= 0:
        return _MAX_CONNECTIONS
    return max(_MIN_CONNECTIONS, min(_MAX_CONNECTIONS, soft // 4))


# ---------------------------------------------------------------- waitress parts


class _JsonErrorTask(ErrorTask):
    """Answers HTTP-level errors (parse errors, limits) with a JSON body."""

    def execute(self) -> None:
        error = self.request.error
        body = json.dumps({"error": "%s." % error.reason}).encode("ascii")
        self.status = "%d %s" % (error.code, error.reason)
        self.response_headers.extend([
            ("Content-Type", "application/json"),
            ("Cache-Control", "no-store"),
        ])
        self.set_close_on_finish()
        self.content_length = len(body)
        self.write(body)


class _Channel(HTTPChannel):
    error_task_class = _JsonErrorTask
    logger = logger


class _Dispatcher(ThreadedTaskDispatcher):
    logger = logger
    queue_logger = logger


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
        sock.listen(_BACKLOG)
    except BaseException:
        sock.close()
        raise
    return sock


def _validate_port(port: Any) -> int:
    checked = check_port(port, "port", allow_none=False)
    assert checked is not None
    return checked


# Errors of bind() that concern the port (taken, or privileged); any other error concerns the host.
_PORT_ERRNOS = frozenset(
    code for code in (errno.EADDRINUSE, errno.EACCES, getattr(errno, "WSAEADDRINUSE", None),
                      getattr(errno, "WSAEACCES", None)) if code is not None)


def _is_port_error(exc: OSError) -> bool:
    """Whether a failed bind() blames the port rather than the host."""
    return not isinstance(exc, socket.gaierror) and exc.errno in _PORT_ERRNOS


def _host_error(host: str, exc: OSError) -> ValueError:
    reason = exc.strerror or str(exc) or type(exc).__name__
    return ValueError(
        "host %r cannot be listened on: %s. Pass an address of this machine, e.g. "
        "host='127.0.0.1' (the default) or host='0.0.0.0' for every interface." % (host, reason))


def check_host(host: Any) -> str:
    """Check that this process can listen on ``host`` (a trial bind on a
    port the system chooses, closed at once).

    Parameters
    ----------
    host : str
        The interface address or name.

    Returns
    -------
    str
        ``host``, unchanged.

    Raises
    ------
    TypeError
        If ``host`` is not a ``str``.
    ValueError
        If it does not resolve, or is not an address of this machine.
    """
    check_str(host, "host")
    try:
        _bind(host, 0).close()
    except OSError as exc:
        raise _host_error(host, exc) from None
    return host


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
    TypeError
        ``host`` is not a ``str``, or ``port`` not an ``int``.
    ValueError
        ``port`` is outside [0, 65535], or ``host`` cannot be listened on
        (it does not resolve, or is not an address of this machine).
    PortInUseError
        The given port is taken, or no port of the range is free.
    """
    check_str(host, "host")
    if port is not None:
        port = _validate_port(port)
        try:
            return _bind(host, port)
        except OSError as exc:
            if _is_port_error(exc):
                raise PortInUseError(
                    "Port %d on %s is already in use (or not allowed). Pass another "
                    "port, or port=None to take a free one in %d-%d."
                    % (port, host, DEFAULT_PORT_RANGE[0], DEFAULT_PORT_RANGE[-1]),
                    port=port) from None
            raise _host_error(host, exc) from None
    ports = list(port_range)
    for candidate in ports:
        try:
            return _bind(host, candidate)
        except OSError as exc:
            if not _is_port_error(exc):
                raise _host_error(host, exc) from None  # the host is wrong, not the port
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
    """Serve a WSGI app on ``host:port`` with waitress, from a daemon thread.

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
    sock : socket.socket, optional, keyword-only
        A listening socket already bound (by :func:`bind_socket`) to serve
        instead of binding one; ``port`` and ``port_range`` are then unused.
        The server owns it from then on (it is closed if the server fails
        to start).

    Attributes
    ----------
    host : str
    port : int
        The bound port.
    max_connections : int
        The connection cap (:func:`connection_limit` when the server started).

    Notes
    -----
    The socket accepts connections before the constructor returns. The server
    is closed by :meth:`close`, by leaving a ``with`` block, or at interpreter
    exit. See the module documentation for its limits.
    """

    def __init__(self, app: Any, host: str = DEFAULT_HOST, port: Optional[int] = None,
                 port_range: Iterable[int] = DEFAULT_PORT_RANGE, *,
                 sock: Optional[socket.socket] = None) -> None:
        self.host = host
        self._closed = False
        self._close_lock = threading.Lock()
        if sock is None:
            sock = bind_socket(host, port, port_range)
        dispatcher: Optional[_Dispatcher] = None
        try:  # from here the server owns the socket: it is closed if anything below fails
            self.max_connections = connection_limit()
            self.port = sock.getsockname()[1]
            dispatcher = _Dispatcher()
            dispatcher.set_thread_count(WORKER_THREADS)
            self._server = create_server(
                app, map={}, _dispatcher=dispatcher, sockets=[sock],
                connection_limit=self.max_connections,
                channel_timeout=IDLE_TIMEOUT,
                cleanup_interval=_CLEANUP_INTERVAL,
                asyncore_loop_timeout=_LOOP_TIMEOUT,
                asyncore_use_poll=True,  # select() fails on descriptors >= 1024
                backlog=_BACKLOG,
                max_request_header_size=_MAX_HEADER_BYTES,
                max_request_body_size=_MAX_BODY_BYTES,
                expose_tracebacks=False,
                ident="bcml",
            )
        except BaseException:
            if dispatcher is not None:
                dispatcher.shutdown(timeout=1)
            sock.close()
            raise
        self._server.channel_class = _Channel
        self._server.logger = logger
        self._thread = threading.Thread(
            target=self._serve, name="bcml-widget-server-%d" % self.port, daemon=True)
        self._thread.start()
        with _live_lock:
            _live.add(self)

    def _serve(self) -> None:
        try:
            self._server.run()
        except Exception:  # pragma: no cover - logged, never printed
            logger.exception("the widget server on port %d stopped", self.port)

    @property
    def running(self) -> bool:
        """Whether the server still serves."""
        return not self._closed and self._thread.is_alive()

    @property
    def connection_count(self) -> int:
        """Connections open right now (accepted and not yet closed)."""
        return len(self._server.active_channels)

    def _close_everything(self) -> None:
        """In the loop thread: close the listening socket, every connection
        and the trigger; the loop then ends (its map is empty)."""
        for dispatcher in list(self._server._map.values()):
            try:
                if isinstance(dispatcher, HTTPChannel):
                    dispatcher.handle_close()  # also frees its buffers, wakes its writer
                else:
                    dispatcher.close()
            except OSError:  # pragma: no cover - already closed
                pass

    def close(self, timeout: float = 5.0) -> None:
        """Stop serving, end open connections and free the port (idempotent)."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        here = threading.current_thread() is self._thread
        if self._thread.is_alive() and not here:
            try:
                self._server.trigger.pull_trigger(self._close_everything)
            except OSError:  # pragma: no cover - the trigger is gone
                pass
            self._thread.join(timeout)
        if self._server._map:
            # The loop thread is gone, stuck, or is us: close from here.
            self._close_everything()
        self._server.task_dispatcher.shutdown(cancel_pending=True, timeout=timeout)
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
