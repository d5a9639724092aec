"""Command line: ``bcml demo`` and ``bcml serve FOLDER`` (also ``python -m backwardcompatibilityml``).

Stopping: Ctrl-C (SIGINT) and SIGTERM are handled alike. Once the command has
printed ``press Ctrl-C to stop`` they stop it cleanly (a running sweep is
cancelled and recorded as ``cancelled``, the server is closed) and the command
exits with status 0. Before that, during start-up, they abort it without a
traceback, with the shell's conventional status: 130 for Ctrl-C, 143 for
SIGTERM. A second signal while stopping aborts at once (130). The demo's
temporary folder is removed at exit; ``--folder DIR`` keeps the sweep in DIR.

Wrong arguments (``--epochs 0``, ``--stepsize 2``, ``--port 99999``, a
``--host`` this machine cannot listen on, a ``--port`` that is taken, a
folder that is a file) are refused at once, before h1 is trained, with a
message naming the option and exit status 2.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import webbrowser
from types import FrameType
from typing import Any, Callable, Dict, List, Optional

from . import __version__

__all__ = ["main"]

EXIT_OK = 0
EXIT_ERROR = 2
EXIT_SIGINT = 128 + signal.SIGINT  # 130
EXIT_SIGTERM = 128 + signal.SIGTERM  # 143
EXECUTORS = ("auto", "sequential", "vectorized")
#: The smallest ``--stepsize`` (``engine.config.MIN_STEPSIZE``; not imported, so that ``--help`` needs no torch).
MIN_STEPSIZE = 0.001
#: The ports tried without ``--port`` (``DEFAULT_PORT_RANGE`` of the widget's server).
DEFAULT_PORTS = (5000, 5099)


def _bounded(convert: Callable[[str], Any], low: float, high: float, wanted: str) -> Callable[[str], Any]:
    """An argparse ``type``: ``convert(text)`` (``int`` or ``float``), finite and in ``[low, high]``."""

    def parse(text: str) -> Any:
        try:
            value = convert(text)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"must be {wanted}, got {text!r}")
        return value

    return parse


_epochs = _bounded(int, 1, math.inf, "an integer >= 1")  # --epochs
_stepsize = _bounded(float, MIN_STEPSIZE, 1, f"a number in [{MIN_STEPSIZE:g}, 1]")  # --stepsize
_port = _bounded(int, 0, 65535, "an integer in [0, 65535]")  # --port (0: the system chooses)


def _host_name(text: str) -> str:
    """``--host`` / ``--allowed-host``: a non-empty name or address."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must name a host, got an empty string")
    return text


class _Terminated(BaseException):
    """SIGTERM during start-up (a BaseException, like KeyboardInterrupt, so no ``except Exception`` swallows it)."""


def _prog() -> str:
    """``bcml`` when run as the console script, else ``python -m backwardcompatibilityml``."""
    name = os.path.basename(sys.argv[0] if sys.argv and sys.argv[0] else "")
    return "bcml" if name.split(".")[0] == "bcml" else "python -m backwardcompatibilityml"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=_prog(),
        description="Backward-compatible model updates: run the digits demo or browse a saved sweep. "
        "(bcml and python -m backwardcompatibilityml are the same command.)",
        epilog="Ctrl-C or SIGTERM stops the server (a running sweep is cancelled and recorded as cancelled; "
        "exit status 0). During start-up they abort with status 130 (Ctrl-C) or 143 (SIGTERM).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="{demo,serve}")
    demo = commands.add_parser("demo", help="train h1 and h2 on scikit-learn's digits and serve the widget")
    demo.add_argument("--folder", help="keep the sweep in this folder (default: a temporary folder, removed at exit)")
    demo.add_argument("--epochs", type=_epochs, default=5, help="training epochs per lambda_c, >= 1 (default 5)")
    demo.add_argument("--stepsize", type=_stepsize, default=0.25,
                      help=f"lambda_c step in [{MIN_STEPSIZE:g}, 1] (default 0.25: lambda_c = 0, 0.25, ..., 1)")
    demo.add_argument("--executor", choices=EXECUTORS, default="auto",
                      help="how the trainings run: 'vectorized' trains the lambda_c models as one stacked model, "
                      "'sequential' one at a time, 'auto' (default) vectorized where it applies")
    demo.add_argument("--start", action="store_true", help="start the sweep at once instead of from the page")
    serve = commands.add_parser("serve", help="browse a saved sweep folder without training")
    serve.add_argument("folder", help="a folder written by a sweep")
    for sub in (demo, serve):
        sub.add_argument("--port", type=_port, default=None,
                         help="port (default: first free in %d-%d)" % DEFAULT_PORTS)
        sub.add_argument("--host", type=_host_name, default="127.0.0.1",
                         help="interface to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
        sub.add_argument("--allowed-host", dest="allowed_hosts", metavar="NAME", action="append", type=_host_name,
                         default=None,
                         help="also answer requests addressed to NAME (the Host header), e.g. the name or address "
                         "other machines use with --host 0.0.0.0; repeatable. Loopback names and --host are "
                         "always answered")
        sub.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    return parser


class _Session:
    """What the command started (sweep manager, widget, progress bar), stopped in reverse order."""

    def __init__(self) -> None:
        self.manager: Any = None
        self.widget: Any = None
        self.progress: Any = None

    def stop(self) -> None:
        """Cancel a running sweep (recorded as cancelled), wait for it, and close the server. Idempotent."""
        manager, widget, progress = self.manager, self.widget, self.progress
        self.manager = self.widget = self.progress = None
        if manager is not None and manager.is_running():
            manager.cancel_sweep()
            wait = getattr(manager, "wait", None)
            if wait is not None:
                wait(60)
        if widget is not None:
            widget.close()
        if progress is not None:
            progress.stop()


def _set_handler(signum: int, handler: Callable[[int, Optional[FrameType]], Any]) -> Optional[Any]:
    """Install a signal handler where that is possible (the main thread); return the previous one."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signum, handler)


def _raise_terminated(signum: int, frame: Optional[FrameType]) -> None:
    raise _Terminated()


def _stop_on_signal() -> threading.Event:
    """From now on Ctrl-C and SIGTERM set the returned event; after that a second one aborts (KeyboardInterrupt)."""
    stop = threading.Event()

    def request_stop(signum: int, frame: Optional[FrameType]) -> None:
        stop.set()
        _set_handler(signal.SIGINT, signal.default_int_handler)
        _set_handler(signal.SIGTERM, signal.default_int_handler)

    _set_handler(signal.SIGINT, request_stop)
    _set_handler(signal.SIGTERM, request_stop)
    return stop


def _start(args: argparse.Namespace, folder: Optional[str], session: _Session) -> None:
    """Build the sweep (demo) or open the folder (serve), then serve the widget."""
    from .sweep_management import SweepManager
    from .widgets.compatibility_analysis.compatibility_analysis import CompatibilityAnalysis

    if args.command == "demo":
        from .demo import ConsoleProgress, build_digits_sweep

        session.manager, _ = build_digits_sweep(
            folder, epochs=args.epochs, stepsize=args.stepsize, executor=args.executor)
        session.progress = ConsoleProgress(session.manager)
    else:
        session.manager = SweepManager.open_folder(args.folder)
    session.widget = CompatibilityAnalysis.from_sweep_manager(
        session.manager, port=args.port, host=args.host, allowed_hosts=args.allowed_hosts, display_widget=False)


class _ArgumentError(Exception):
    """A command-line argument that cannot work; the message names the option."""


def _port_taken(host: str, port: Optional[int]) -> str:
    if port is None:
        return "no free port in %d-%d on %s; stop other widgets or pass --port" % (DEFAULT_PORTS + (host,))
    return ("argument --port: port %d on %s is already in use (or not allowed); pass another --port, or leave "
            "--port out to take the first free one in %d-%d" % ((port, host) + DEFAULT_PORTS))


def _check_listening(host: str, port: Optional[int]) -> None:
    """Check, by a trial bind closed at once, that the server will be able to listen on ``--host``/``--port``.

    Done before the demo trains h1, so that a wrong option fails in a second, not after the training.
    """
    from .widgets.compatibility_analysis.server import PortInUseError, bind_socket

    try:
        bind_socket(host, port).close()
    except PortInUseError:
        raise _ArgumentError(_port_taken(host, port)) from None
    except ValueError as error:
        cause = error.__context__
        reason = f" ({cause.strerror})" if isinstance(cause, OSError) and cause.strerror else ""
        raise _ArgumentError(
            f"argument --host: host {host!r} cannot be listened on{reason}; pass an address of this machine, "
            "e.g. --host 127.0.0.1 (the default) or --host 0.0.0.0 for every interface") from None


def _check_arguments(args: argparse.Namespace) -> None:
    """Check what argparse cannot: the folder, the host and the port (raises _ArgumentError)."""
    if args.command == "serve":
        if not os.path.exists(args.folder):
            raise _ArgumentError(f"argument folder: no such folder: {args.folder!r}")
        if not os.path.isdir(args.folder):
            raise _ArgumentError(f"argument folder: {args.folder!r} is not a folder")
    _check_listening(args.host, args.port)
    if args.command == "demo" and args.folder:
        from .validation import check_folder

        try:
            check_folder(args.folder, "argument --folder:")
        except ValueError as error:
            raise _ArgumentError(str(error)) from None


def _wildcard_note(args: argparse.Namespace) -> Optional[str]:
    """A hint when the server listens on every interface but only answers loopback names."""
    if args.host in ("0.0.0.0", "::") and not args.allowed_hosts:
        return (f"note: listening on {args.host}, but requests are answered only when addressed to 127.0.0.1, "
                "localhost or [::1]; pass --allowed-host NAME for the name or address other machines use")
    return None


def _run(args: argparse.Namespace) -> int:
    temporary = args.command == "demo" and not args.folder
    folder = tempfile.mkdtemp(prefix="bcml-demo-") if temporary else getattr(args, "folder", None)
    session = _Session()
    try:
        try:
            _check_arguments(args)
        except _ArgumentError as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_ERROR
        if args.command == "demo":
            kept = "removed at exit; pass --folder DIR to keep it" if temporary else "kept"
            print(f"training h1 on scikit-learn's digits; sweep folder: {folder} ({kept})", flush=True)
        try:
            _start(args, folder, session)
        except ImportError as error:
            hint = " The demo needs scikit-learn: pip install 'backwardcompatibilityml[demo]'" \
                if args.command == "demo" else ""
            print(f"error: {error}.{hint}", file=sys.stderr)
            return EXIT_ERROR
        except RuntimeError as error:
            from .widgets.compatibility_analysis.server import PortInUseError

            # PortInUseError: the port was taken between the check and the server's start.
            message = _port_taken(args.host, args.port) if isinstance(error, PortInUseError) else str(error)
            print(f"error: {message}", file=sys.stderr)
            return EXIT_ERROR
        except (TypeError, ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_ERROR
        url = session.widget.url
        print(f"widget: {url}", flush=True)
        note = _wildcard_note(args)
        if note:
            print(note, flush=True)
        if args.command == "demo" and args.start:
            session.manager.start_sweep()
            if session.progress is not None:
                session.progress.sweep_started()
        if not args.no_browser:
            webbrowser.open(url)
        stop = _stop_on_signal()
        print("press Ctrl-C to stop", flush=True)
        while not stop.wait(1.0):  # a timeout keeps the wait interruptible on every platform
            pass
        print("\nstopping...", flush=True)
        session.stop()
        return EXIT_OK
    finally:
        session.stop()
        if temporary:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the command line (``bcml``); returns the exit status.

    Parameters
    ----------
    argv : list of str, optional
        The arguments (default ``sys.argv[1:]``).
    """
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    previous: Dict[int, Any] = {
        signal.SIGINT: signal.getsignal(signal.SIGINT),
        signal.SIGTERM: _set_handler(signal.SIGTERM, _raise_terminated),
    }
    try:
        return _run(args)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr, flush=True)
        return EXIT_SIGINT
    except _Terminated:
        print("\nterminated", file=sys.stderr, flush=True)
        return EXIT_SIGTERM
    finally:
        for signum, handler in previous.items():
            if handler is not None:
                _set_handler(signum, handler)


if __name__ == "__main__":
    sys.exit(main())
