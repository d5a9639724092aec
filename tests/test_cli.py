"""The command line, run for real in subprocesses: names, version, flags, signals, the demo's folder.

A step to interrupt is stalled (h1's training, or the first training step of
the sweep) and the signal is sent once the child says it is there, so no
test depends on timing.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
from urllib.parse import urlparse

import pytest

from backwardcompatibilityml import __version__

TIMEOUT = 300  # start-up imports torch and trains h1; generous on a loaded 2-core machine

# Runs the real CLI (``main``) as ``bcml``, with one step stalled where the test needs it:
#   h1     -- h1's training blocks (start-up); the child prints STALLED
#   sweep  -- the sweep's first training step blocks until the sweep is asked to stop; prints TRAINING
#   none   -- nothing stalled
# It also prints EXECUTOR <name> once the demo's SweepManager is built.
DRIVER = r"""
import sys, threading
from backwardcompatibilityml import demo

mode = sys.argv[1]
if mode == "h1":
    def stalled_training(*args, **kwargs):
        print("STALLED", flush=True)
        threading.Event().wait()
    demo.train_reference_model = stalled_training

real_build = demo.build_digits_sweep

def build(*args, **kwargs):
    if mode == "sweep":
        from backwardcompatibilityml.engine.executors import resolve_executor

        class StallFirstStep:
            name = "sequential"
            def __init__(self):
                self.inner = resolve_executor("sequential")
            def applies(self, context):
                return None
            def run(self, jobs, context, sink, should_stop):
                told = []
                def stop():
                    if not told:
                        told.append(True)
                        print("TRAINING", flush=True)
                        while not should_stop():
                            threading.Event().wait(0.01)
                    return should_stop()
                return self.inner.run(jobs, context, sink, stop)

        kwargs["executor"] = StallFirstStep()
    manager, data = real_build(*args, **kwargs)
    print("EXECUTOR", manager.executor.name, flush=True)
    return manager, data

demo.build_digits_sweep = build
sys.argv[0] = "bcml"
from backwardcompatibilityml.__main__ import main
sys.exit(main(sys.argv[2:]))
"""


class Cli:
    """A running CLI child whose output lines can be awaited."""

    def __init__(self, mode, args, tmp_path):
        env = dict(os.environ, TMPDIR=str(tmp_path), PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [sys.executable, "-c", DRIVER, mode, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, env=env, cwd=str(tmp_path),
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.seen = []
        self._stderr = []
        self._pumps = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self.lines.put), daemon=True),
            threading.Thread(target=self._pump, args=(self.process.stderr, self._add_stderr), daemon=True),
        ]
        for pump in self._pumps:
            pump.start()

    @staticmethod
    def _pump(stream, put):
        for line in stream:
            put(line)
        put(None)  # end of output

    def wait_for(self, pattern):
        """The first output line matching ``pattern`` (a regex), waiting for it."""
        for line in self.seen:
            if re.search(pattern, line):
                return line
        while True:
            try:
                line = self.lines.get(timeout=TIMEOUT)
            except queue.Empty:
                self.kill()
                pytest.fail(f"no line matching {pattern!r}; output: {self.seen}; stderr: {self.stderr}")
            if line is None:
                self.lines.put(None)
                pytest.fail(f"the CLI ended without a line matching {pattern!r}; output: {self.seen}; "
                            f"stderr: {self.stderr}")
            self.seen.append(line)
            if re.search(pattern, line):
                return line

    def finish(self):
        code = self.process.wait(TIMEOUT)
        for pump in self._pumps:  # every line read before the test looks at the output
            pump.join(TIMEOUT)
        return code

    def _add_stderr(self, line):
        if line is not None:
            self._stderr.append(line)

    @property
    def stderr(self):
        return "".join(self._stderr)

    def kill(self):
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def cli(tmp_path):
    started = []

    def start(mode, *args):
        child = Cli(mode, args, tmp_path)
        started.append(child)
        return child

    yield start
    for child in started:
        child.kill()


def demo_folder(child):
    return child.wait_for(r"sweep folder: ").split("sweep folder: ")[1].split(" (")[0].strip()


def port_is_free(url):
    port = urlparse(url).port
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) != 0


def test_bcml_names_itself_and_prints_its_version():
    script = os.path.join(os.path.dirname(sys.executable), "bcml")
    if not os.path.exists(script):
        pytest.skip("the console script is installed with the package (pip install -e .)")
    help_text = subprocess.run([script, "--help"], capture_output=True, text=True, timeout=TIMEOUT, check=True).stdout
    assert help_text.startswith("usage: bcml ") and "{demo,serve}" in help_text
    version = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=TIMEOUT, check=True)
    assert version.stdout.strip() == f"bcml {__version__}"
    demo_help = subprocess.run([script, "demo", "--help"], capture_output=True, text=True, timeout=TIMEOUT).stdout
    assert demo_help.startswith("usage: bcml demo") and "--executor {auto,sequential,vectorized}" in demo_help


def test_python_dash_m_is_the_same_command():
    run = subprocess.run([sys.executable, "-m", "backwardcompatibilityml", "--version"],
                         capture_output=True, text=True, timeout=TIMEOUT, check=True)
    assert run.stdout.strip() == f"python -m backwardcompatibilityml {__version__}"
    bad = subprocess.run([sys.executable, "-m", "backwardcompatibilityml", "demo", "--executor", "fast"],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert bad.returncode == 2 and "--executor" in bad.stderr and "invalid choice" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_serve_of_a_missing_folder_is_an_error_without_traceback(tmp_path):
    run = subprocess.run([sys.executable, "-m", "backwardcompatibilityml", "serve", str(tmp_path / "nothing")],
                         capture_output=True, text=True, timeout=TIMEOUT)
    assert run.returncode == 2 and run.stderr.startswith("error: ") and "Traceback" not in run.stderr


@pytest.mark.parametrize("signum, code, word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_start_up_exits_without_traceback_and_removes_the_folder(cli, signum, code, word):
    child = cli("h1", "demo", "--no-browser")
    folder = demo_folder(child)
    child.wait_for(r"^STALLED")
    assert os.path.isdir(folder)
    child.process.send_signal(signum)
    assert child.finish() == code
    assert "Traceback" not in child.stderr and word in child.stderr
    assert not os.path.exists(folder), "the demo's temporary folder must be removed at exit"


def test_ctrl_c_while_serving_stops_cleanly_and_removes_the_temporary_folder(cli):
    child = cli("none", "demo", "--no-browser", "--executor", "sequential", "--epochs", "1")
    folder = demo_folder(child)
    assert child.wait_for(r"^EXECUTOR ").split()[1] == "sequential", "--executor reaches the SweepManager"
    url = child.wait_for(r"^widget: ").split()[1]
    child.wait_for(r"^press Ctrl-C to stop")
    assert not port_is_free(url), "the widget's server listens"
    child.process.send_signal(signal.SIGINT)
    assert child.finish() == 0
    assert "Traceback" not in child.stderr
    assert not os.path.exists(folder)
    assert child.wait_for(r"^stopping")


def test_sigterm_during_a_sweep_cancels_it_records_it_and_keeps_the_folder(cli, tmp_path):
    folder = tmp_path / "kept"
    child = cli("sweep", "demo", "--no-browser", "--start", "--folder", str(folder), "--epochs", "1")
    assert demo_folder(child) == str(folder)
    child.wait_for(r"^widget: ")
    child.wait_for(r"^TRAINING")
    child.wait_for(r"^press Ctrl-C to stop")
    child.process.send_signal(signal.SIGTERM)
    assert child.finish() == 0
    assert "Traceback" not in child.stderr
    with open(folder / "sweep_summary.json", encoding="utf-8") as handle:
        assert json.load(handle)["state"] == "cancelled"
    assert child.wait_for(r"^sweep cancelled"), "the console reports the cancelled sweep"
