"""Command line: ``python -m backwardcompatibilityml demo`` and ``... serve FOLDER``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import tempfile
import threading
import webbrowser
from typing import List, Optional


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m backwardcompatibilityml",
        description="Backward-compatible model updates: run the digits demo or browse a saved sweep.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="train h1 and h2 on scikit-learn's digits and serve the widget")
    demo.add_argument("--folder", help="sweep folder (default: a new temporary folder)")
    demo.add_argument("--epochs", type=int, default=5, help="training epochs per lambda_c (default 5)")
    demo.add_argument("--stepsize", type=float, default=0.25, help="lambda_c step in (0, 1] (default 0.25)")
    demo.add_argument("--start", action="store_true", help="start the sweep at once instead of from the page")
    for sub in (demo, commands.add_parser("serve", help="browse a saved sweep folder without training")):
        if sub is not demo:
            sub.add_argument("folder", help="a folder written by a sweep")
        sub.add_argument("--port", type=int, default=None, help="port (default: first free in 5000-5099)")
        sub.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
        sub.add_argument("--no-browser", action="store_true", help="do not open a web browser")
    return parser


def _wait_for_interrupt(widget, manager) -> int:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    print("\nstopping...", flush=True)
    if manager.is_running():
        manager.cancel_sweep()
    widget.close()
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """Entry point of the command line."""
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from .sweep_management import SweepManager
    from .widgets.compatibility_analysis.compatibility_analysis import CompatibilityAnalysis

    try:
        if args.command == "demo":
            from .demo import ConsoleProgress, build_digits_sweep

            folder = args.folder or tempfile.mkdtemp(prefix="bcml-demo-")
            print(f"training h1 on scikit-learn's digits; sweep folder: {folder}", flush=True)
            manager, _ = build_digits_sweep(folder, epochs=args.epochs, stepsize=args.stepsize)
        else:
            manager = SweepManager.open_folder(args.folder)
        widget = CompatibilityAnalysis.from_sweep_manager(manager, port=args.port, host=args.host, display_widget=False)
    except ImportError as error:
        print(f"error: {error}. The demo needs scikit-learn: pip install 'backwardcompatibilityml[demo]'",
              file=sys.stderr)
        return 2
    except (TypeError, ValueError, OSError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    progress = ConsoleProgress(manager) if args.command == "demo" else None
    print(f"widget: {widget.url}", flush=True)
    print("press Ctrl-C to stop", flush=True)
    if args.command == "demo" and args.start:
        manager.start_sweep()
    if not args.no_browser:
        webbrowser.open(widget.url)
    code = _wait_for_interrupt(widget, manager)
    if progress is not None:
        progress.stop()
    return code


if __name__ == "__main__":
    sys.exit(main())
