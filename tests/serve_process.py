"""The command line's ``serve FOLDER`` in a child process, for tests that call it over HTTP."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_URL = re.compile(r"widget: http://127\.0\.0\.1:(\d+)/\?token=([0-9a-f]+)")


def serve(folder):
    """Start ``python -m backwardcompatibilityml serve FOLDER`` on a free port.

    Returns ``(process, port, token, output)``, ``output`` being the lines it
    printed up to its widget URL; AssertionError (with them) when it printed none.
    """
    process = subprocess.Popen(
        [sys.executable, "-m", "backwardcompatibilityml", "serve", str(folder), "--no-browser", "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO,
        env=dict(os.environ, OMP_NUM_THREADS="1"),
    )
    output = []
    deadline = time.monotonic() + 120  # only bounds a failure: a serve that never prints its URL
    for line in process.stdout:
        output.append(line)
        match = _URL.search(line)
        if match:
            return process, int(match.group(1)), match.group(2), output
        if time.monotonic() > deadline:
            break
    stop(process)
    raise AssertionError("serve printed no widget URL:\n" + "".join(output))


def fetch(port, token, path):
    """``GET /api/v1<path>`` with the token; returns (status, parsed JSON body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", "/api/v1" + path, headers={"X-BCML-Token": token})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def stop(process):
    """SIGTERM (as a user's Ctrl-C would), then kill if it has not exited within 30 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    process.stdout.close()
