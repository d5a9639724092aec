"""The widget server's limits against idle connections (issue: a flood of idle
connections exhausted the process's file descriptors and failed the sweep).

- flood: a process at ``ulimit -n 512`` runs a real small sweep behind its
  widget server while another process holds 700 idle connections to it; the
  sweep completes, the process can still open files, the server's descriptors
  stay under its cap, and a token request is answered within 5 s of the end
  of the flood;
- 100 idle connections: a token request is answered within 1 s;
- a connection that sends nothing is closed after the idle timeout.

Every wait is on a real condition (a line from a process, a descriptor count,
a server counter) with a deadline; nothing sleeps for luck.
"""

import http.client
import json
import os
import select
import socket
import subprocess
import sys
import textwrap
import time

import pytest
import torch

from backwardcompatibilityml.sweep_management import SweepManager
from backwardcompatibilityml.widgets import CompatibilityAnalysis
from backwardcompatibilityml.widgets.compatibility_analysis.server import (
    IDLE_TIMEOUT,
    WidgetServer,
    connection_limit,
)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="counts descriptors through /proc")

SWEEP_CHILD = textwrap.dedent("""
    import json, os, resource, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (512, hard))
    import torch
    from sklearn.datasets import load_digits
    from backwardcompatibilityml.widgets import CompatibilityAnalysis

    features, labels = load_digits(return_X_y=True)
    x = torch.tensor(features[:400] / 16.0, dtype=torch.float32)
    y = torch.tensor(labels[:400], dtype=torch.long)
    batches = lambda lo, hi: [(torch.arange(i, i + 20), x[i:i + 20], y[i:i + 20])
                              for i in range(lo, hi, 20)]
    torch.manual_seed(0)
    h1 = torch.nn.Linear(64, 10)
    optimizer = torch.optim.Adam(h1.parameters(), lr=0.05)
    for _ in range(30):
        optimizer.zero_grad()
        torch.nn.functional.cross_entropy(h1(x[:300]), y[:300]).backward()
        optimizer.step()
    h2 = torch.nn.Sequential(torch.nn.Linear(64, 16), torch.nn.ReLU(), torch.nn.Linear(16, 10))
    folder = sys.argv[1]
    widget = CompatibilityAnalysis(folder, 2, h1, h2, batches(0, 300), batches(300, 400), 20, 20,
                                   lambda_c_stepsize=0.5, display_widget=False)
    print(json.dumps({"port": widget.port, "token": widget.token,
                      "max_connections": widget._server.max_connections,
                      "limit": resource.getrlimit(resource.RLIMIT_NOFILE)[0]}), flush=True)
    assert sys.stdin.readline().strip() == "start"
    manager = widget.sweep_manager
    manager.start_sweep_synchronous(progress_bar=False)
    opened = []
    try:
        for i in range(100):
            opened.append(open(os.path.join(folder, "probe-%d.txt" % i), "w"))
    except OSError as error:
        opened_error = repr(error)
    else:
        opened_error = None
    for handle in opened:
        handle.close()
    status = manager.get_sweep_status()
    print(json.dumps({"state": status["state"], "error": status["error"],
                      "points": len(manager.get_sweep_summary()["data"]),
                      "total": status["total_points"], "opened": len(opened),
                      "open_error": opened_error, "serving": widget.running}), flush=True)
    assert sys.stdin.readline().strip() == "exit"
    widget.close()
""")

FLOOD_CHILD = textwrap.dedent("""
    import resource, selectors, socket, sys, time
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 4096), hard))
    port, count = int(sys.argv[1]), int(sys.argv[2])
    sockets, pending = [], selectors.DefaultSelector()
    for _ in range(count):
        sock = socket.socket()
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        sockets.append(sock)
        pending.register(sock, selectors.EVENT_WRITE)
    deadline = time.monotonic() + 30
    connected = 0
    while connected < count and time.monotonic() < deadline:
        for key, _ in pending.select(timeout=1):
            pending.unregister(key.fileobj)
            if key.fileobj.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0:
                connected += 1
    print("flooding %d" % connected, flush=True)
    assert sys.stdin.readline().strip() == "stop"
    for sock in sockets:
        sock.close()
    print("stopped", flush=True)
""")


def spawn(script, *args):
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, bufsize=1)


def read_line(process, timeout):
    """The next line the process prints, waiting at most ``timeout`` seconds."""
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    if not ready:
        raise AssertionError("no line from the process within %.0f s" % timeout)
    line = process.stdout.readline()
    if not line:
        raise AssertionError("the process ended: %s" % process.stderr.read()[-3000:])
    return line.strip()


def send(process, line):
    process.stdin.write(line + "\n")
    process.stdin.flush()


def descriptors(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def token_request(port, token, timeout):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", "/api/v1/sweep_status", headers={"X-BCML-Token": token})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def stop(process):
    if process.poll() is None:
        process.kill()
    process.communicate(timeout=30)


def test_a_flood_of_idle_connections_cannot_starve_the_sweep_or_the_server(tmp_path):
    sweep = spawn(SWEEP_CHILD, tmp_path / "sweep")
    flood = None
    try:
        info = json.loads(read_line(sweep, 120))
        assert info["limit"] == 512 and info["max_connections"] == 128
        baseline = descriptors(sweep.pid)
        flood = spawn(FLOOD_CHILD, info["port"], 700)
        assert read_line(flood, 60) == "flooding 700"
        # The server takes connections up to its cap, and no more.
        cap = info["max_connections"]
        deadline = time.monotonic() + 30
        while descriptors(sweep.pid) < baseline + cap - 4:
            assert time.monotonic() < deadline, descriptors(sweep.pid)
            select.select([], [], [], 0.05)
        send(sweep, "start")
        highest = 0
        result = None
        deadline = time.monotonic() + 300
        while result is None:
            highest = max(highest, descriptors(sweep.pid))
            ready, _, _ = select.select([sweep.stdout], [], [], 0.05)
            if ready:
                result = json.loads(read_line(sweep, 1))
            assert time.monotonic() < deadline, "the sweep did not end"
        assert result["state"] == "completed", result
        assert result["error"] is None and result["points"] == result["total"] == 12
        assert result["opened"] == 100 and result["open_error"] is None
        assert result["serving"] is True
        # The server's capped connections, the 100 probe files and the
        # sweep's own few files: far from the 512 limit.
        assert highest <= baseline + cap + 100 + 40, (highest, baseline, cap)
        print("descriptors: baseline %d, highest %d (cap %d connections, limit %d)"
              % (baseline, highest, cap, info["limit"]))
        send(flood, "stop")
        assert read_line(flood, 30) == "stopped"
        ended = time.monotonic()
        while True:
            try:
                status, body = token_request(info["port"], info["token"],
                                             max(0.1, ended + 5 - time.monotonic()))
                break
            except (socket.timeout, ConnectionError):
                assert time.monotonic() < ended + 5, "no answer within 5 s of the flood's end"
        latency = time.monotonic() - ended
        print("answered %.3f s after the flood ended" % latency)
        assert status == 200 and body["state"] == "completed"
        assert latency < 5
        send(sweep, "exit")
        assert sweep.wait(60) == 0, sweep.stderr.read()[-3000:]
    finally:
        stop(sweep)
        if flood is not None:
            stop(flood)


@pytest.fixture
def idle_widget(tmp_path):
    x = torch.rand(40, 4)
    y = torch.randint(0, 2, (40,))
    data = [(torch.arange(i, i + 20), x[i:i + 20], y[i:i + 20]) for i in (0, 20)]
    manager = SweepManager(str(tmp_path), 1, torch.nn.Linear(4, 2), torch.nn.Linear(4, 2),
                           data, data, 20, 20)
    with CompatibilityAnalysis.from_sweep_manager(manager, display_widget=False) as widget:
        yield widget


def wait_for_connections(widget, count, timeout=20):
    deadline = time.monotonic() + timeout
    while widget._server.connection_count < count:
        assert time.monotonic() < deadline, widget._server.connection_count
        select.select([], [], [], 0.01)


def test_a_token_request_is_answered_within_1_s_with_100_idle_connections(idle_widget):
    if connection_limit() <= 101:
        pytest.skip("this process's descriptor limit caps the server below 101 connections")
    idle = [socket.create_connection(("127.0.0.1", idle_widget.port), timeout=5)
            for _ in range(100)]
    try:
        wait_for_connections(idle_widget, 100)
        began = time.monotonic()
        status, body = token_request(idle_widget.port, idle_widget.token, timeout=5)
        latency = time.monotonic() - began
        print("answered in %.1f ms with 100 idle connections" % (latency * 1000))
        assert status == 200 and body["state"] == "idle"
        assert latency < 1.0
    finally:
        for sock in idle:
            sock.close()


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(idle_widget):
    with socket.create_connection(("127.0.0.1", idle_widget.port), timeout=IDLE_TIMEOUT + 10) as sock:
        wait_for_connections(idle_widget, 1)
        began = time.monotonic()
        assert sock.recv(1) == b""  # closed by the server, no answer
        waited = time.monotonic() - began
    assert IDLE_TIMEOUT - 1 <= waited <= IDLE_TIMEOUT + 3, waited
    status, _ = token_request(idle_widget.port, idle_widget.token, timeout=5)
    assert status == 200


def test_an_idle_server_waits_in_poll_instead_of_spinning(monkeypatch):
    """The server thread's poll() must block (waitress reads its timeout as whole seconds)."""
    from waitress import wasyncore

    timeouts = []
    real_poll = wasyncore.poll2

    def counted_poll(timeout=0.0, map=None):
        timeouts.append(timeout)
        return real_poll(timeout, map)

    monkeypatch.setattr(wasyncore, "poll2", counted_poll)
    server = WidgetServer(lambda environ, start_response: [])
    try:
        deadline = time.monotonic() + 20
        while not timeouts:
            assert time.monotonic() < deadline, "the server loop never polled"
            select.select([], [], [], 0.01)
        seen = len(timeouts)
    finally:
        server.close()
    assert min(timeouts) >= 1, f"poll() was given a timeout of {min(timeouts)} s: the loop spins"
    assert seen <= 3, f"{seen} polls before the first was seen: the loop spins"
