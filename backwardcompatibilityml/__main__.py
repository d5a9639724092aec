"""Command line: ``bcml demo`` and ``bcml serve FOLDER`` (also ``python -m backwardcompatibilityml``).

Stopping: Ctrl-C (SIGINT) and SIGTERM are handled alike. Once the command has
printed ``press Ctrl-C to stop`` they stop it cleanly (a running sweep is
cancelled and recorded as ``cancelled``, the server is closed) and the command
exits with status 0. Before that, during start-up, they abort it without a
traceback, with the shell's conventional status: 130 for Ctrl-C, 143 for
SIGTERM. A second signal while stopping aborts at once (130). The demo's
temporary folder is removed at exit; ``--folder DIR`` keeps the sweep in DIR.
"""

from __future__ import annotations

import argparse
import logging
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
    demo.add_argument("--epochs", type=int, default=5, help="training epochs per lambda_c (default 5)")
    demo.add_argument("--stepsize", type=float, default=0.25, help="lambda_c step in (0, 1] (default 0.25)")
    demo.add_argument("--executor", choices=EXECUTORS, default="auto",
                      help="how the trainings run: 'vectorized' trains the lambda_c models as one stacked model, "
                      "'sequential' one at a time, 'auto' (default) vectorized where it applies")
    demo.add_argument("--start", action="store_true", help="start the sweep at once instead of from the page")
    serve = commands.add_parser("serve", help="browse a saved sweep folder without training")
    serve.add_argument("folder", help="a folder written by a sweep")
    for sub in (demo, serve):
        sub.add_argument("--port", type=int, default=None, help="port (default: first free in 5000-5099)")
        sub.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
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
        session.manager, port=args.port, host=args.host, display_widget=False)


def _run(args: argparse.Namespace) -> int:
    temporary = args.command == "demo" and not args.folder
    folder = tempfile.mkdtemp(prefix="bcml-demo-") if temporary else getattr(args, "folder", None)
    session = _Session()
    try:
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
        except (TypeError, ValueError, OSError, RuntimeError) as error:
            print(f"error: {error}", file=sys.stderr)
            return EXIT_ERROR
        url = session.widget.url
        print(f"widget: {url}", flush=True)
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
