"""The command line refuses wrong arguments at once, naming the option, and serves other hosts when told.

Found by following README.md literally: ``bcml demo --stepsize 0`` (or a
taken ``--port``, or a ``--host`` of another machine) trained h1 for about
20 s before failing with the Python argument's name
(``lambda_c_stepsize must lie in [0.001, 1]``, ``port=None``); and
``bcml serve --host 0.0.0.0`` answered every other machine 403, having no
way to allow the name it is reached by.
"""

from __future__ import annotations

import http.client
import os
import re
import socket
import subprocess
import sys
import time

import pytest

from backwardcompatibilityml import __main__ as cli

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "json_era_sweep")
TIMEOUT = 120  # a failure here happens before torch trains anything: far below this
URL = re.compile(r"widget: http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]+)")


def bcml(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "backwardcompatibilityml", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, cwd=cwd)


def assert_refused(run, option):
    assert run.returncode == 2, (run.stdout, run.stderr)
    assert f"argument {option}:" in run.stderr, run.stderr
    assert "Traceback" not in run.stderr
    assert "training h1" not in run.stdout, "refused before h1 is trained"


@pytest.mark.parametrize("args, option, words", [
    (["--stepsize", "0"], "--stepsize", "[0.001, 1]"),
    (["--stepsize", "2"], "--stepsize", "[0.001, 1]"),
    (["--stepsize", "nan"], "--stepsize", "'nan'"),
    (["--epochs", "0"], "--epochs", ">= 1"),
    (["--epochs", "-3"], "--epochs", ">= 1"),
    (["--port", "99999"], "--port", "[0, 65535]"),
    (["--host", ""], "--host", "empty"),
])
def test_wrong_demo_options_are_refused_by_the_parser(args, option, words):
    run = bcml("demo", "--no-browser", *args)
    assert_refused(run, option)
    assert words in run.stderr and run.stderr.startswith("usage: ")


def test_the_stepsize_bound_is_the_sweeps():
    from backwardcompatibilityml.engine.config import MIN_STEPSIZE

    assert cli.MIN_STEPSIZE == MIN_STEPSIZE
    from backwardcompatibilityml.widgets.compatibility_analysis.server import DEFAULT_PORT_RANGE

    assert cli.DEFAULT_PORTS == (DEFAULT_PORT_RANGE[0], DEFAULT_PORT_RANGE[-1])


def test_a_taken_port_is_refused_before_h1_is_trained():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = bcml("demo", "--no-browser", "--port", str(port))
    assert_refused(run, "--port")
    assert f"port {port} on 127.0.0.1 is already in use" in run.stderr and "port=None" not in run.stderr


@pytest.mark.parametrize("host", ["999.1.1.1", "no-such-host.invalid"])
def test_a_host_that_cannot_be_listened_on_is_refused_before_h1_is_trained(host):
    run = bcml("demo", "--no-browser", "--host", host)
    assert_refused(run, "--host")
    assert "--host 127.0.0.1" in run.stderr and "host='" not in run.stderr


def test_a_folder_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "file").write_text("x")
    run = bcml("demo", "--no-browser", "--folder", "file", cwd=str(tmp_path))
    assert_refused(run, "--folder")
    assert "folder_name" not in run.stderr
    served = bcml("serve", str(tmp_path / "missing"))
    assert served.returncode == 2 and served.stderr.startswith("error: argument folder: no such folder")
    served = bcml("serve", str(tmp_path / "file"))
    assert served.returncode == 2 and "argument folder:" in served.stderr and "is not a folder" in served.stderr


def test_help_states_the_real_ranges():
    text = bcml("demo", "--help").stdout
    assert "[0.001, 1]" in text and "(0, 1]" not in text
    assert "--allowed-host NAME" in text


def request_status(port, token, host_header):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/api/v1/sweep_status", headers={"X-BCML-Token": token, "Host": host_header})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def serve(*extra):
    """``serve FIXTURE`` on a free port; returns once it says ``press Ctrl-C to stop`` (from then on SIGTERM exits 0)."""
    process = subprocess.Popen(
        [sys.executable, "-m", "backwardcompatibilityml", "serve", FIXTURE, "--no-browser", "--port", "0", *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO)
    output = []
    deadline = time.monotonic() + TIMEOUT
    for line in process.stdout:
        output.append(line)
        match = URL.search("".join(output))
        if match and line.startswith("press Ctrl-C to stop"):
            return process, int(match.group(1)), match.group(2), output
        if time.monotonic() > deadline:
            break
    process.kill()
    process.wait()
    raise AssertionError("serve did not start:\n" + "".join(output))


def stop(process):
    process.terminate()
    try:
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        process.stdout.close()


def test_allowed_host_lets_a_server_answer_the_name_it_is_reached_by():
    process, port, token, _ = serve("--allowed-host", "bcml.example.test")
    try:
        assert request_status(port, token, f"bcml.example.test:{port}") == 200
        assert request_status(port, token, f"other.example.test:{port}") == 403
        assert request_status(port, token, f"127.0.0.1:{port}") == 200
    finally:
        stop(process)
    process, port, token, _ = serve()
    try:
        assert request_status(port, token, f"bcml.example.test:{port}") == 403, "not allowed unless asked"
    finally:
        stop(process)


def test_listening_on_every_interface_says_how_to_be_reached():
    process, port, token, output = serve("--host", "0.0.0.0")
    stop(process)
    assert any(line.startswith("note: listening on 0.0.0.0") and "--allowed-host NAME" in line for line in output)
