"""Load benchmark of the widget REST API.

N concurrent clients (default 50), each on its own keep-alive connection, poll
``GET /api/v1/sweep_status`` for S seconds (default 10) while a real sweep
trains in the background; prints the request count, errors and the p50 / p99
latency.

    python benchmarks/bench_api_load.py [--clients 50] [--seconds 10]

``run_load`` is also used by ``tests/test_widget_server_load.py``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import tempfile
import threading
import time
from typing import Any, Dict, List, Optional

STATUS_PATH = "/api/v1/sweep_status"


def run_load(port: int, token: str, clients: int = 50, seconds: float = 10.0,
             path: str = STATUS_PATH, host: str = "127.0.0.1") -> Dict[str, Any]:
    """Poll ``path`` from ``clients`` threads for ``seconds``.

    Parameters
    ----------
    port, token : int, str
        The widget server and its token.
    clients : int
        Concurrent clients, one keep-alive connection each.
    seconds : float
        Duration of the load.
    path : str
        The route to poll (a JSON route).
    host : str
        Server address.

    Returns
    -------
    dict
        ``requests``, ``errors``, ``error_samples`` (a few messages),
        ``p50_ms``, ``p99_ms``, ``max_ms``, ``requests_per_second`` and
        ``running_seen`` (answers that said the sweep was running).
    """
    latencies: List[List[float]] = [[] for _ in range(clients)]
    errors: List[str] = []
    running_seen = [0] * clients
    lock = threading.Lock()
    start = threading.Barrier(clients + 1)
    deadline_box: List[float] = [0.0]

    def client(k: int) -> None:
        conn: Optional[http.client.HTTPConnection] = None
        start.wait()
        deadline = deadline_box[0]
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(host, port, timeout=30)
                conn.request("GET", path, headers={"X-BCML-Token": token})
                response = conn.getresponse()
                body = response.read()
                elapsed = time.perf_counter() - began
                if response.status != 200:
                    raise RuntimeError("HTTP %d: %r" % (response.status, body[:200]))
                data = json.loads(body)
                if isinstance(data, dict) and data.get("running"):
                    running_seen[k] += 1
                latencies[k].append(elapsed)
            except Exception as exc:  # counted, never raised
                with lock:
                    errors.append("%s: %s" % (type(exc).__name__, exc))
                if conn is not None:
                    conn.close()
                conn = None
        if conn is not None:
            conn.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    for thread in threads:
        thread.start()
    deadline_box[0] = time.perf_counter() + seconds
    began = time.perf_counter()
    start.wait()
    for thread in threads:
        thread.join(seconds + 60)
    wall = time.perf_counter() - began
    flat = sorted(x for per in latencies for x in per)

    def percentile(q: float) -> Optional[float]:
        if not flat:
            return None
        return 1000.0 * flat[min(len(flat) - 1, int(round(q * (len(flat) - 1))))]

    return {
        "clients": clients,
        "seconds": seconds,
        "requests": len(flat),
        "errors": len(errors),
        "error_samples": errors[:5],
        "p50_ms": percentile(0.50),
        "p99_ms": percentile(0.99),
        "max_ms": 1000.0 * flat[-1] if flat else None,
        "requests_per_second": len(flat) / wall if wall > 0 else None,
        "running_seen": sum(running_seen),
    }


def make_long_sweep(folder: str, epochs: int = 40, train_size: int = 1000,
                    batch_size: int = 10) -> Any:
    """A real SweepManager on sklearn's digits that trains for a while
    (tiny MLPs, many small batches)."""
    import torch
    from sklearn.datasets import load_digits

    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from backwardcompatibilityml.sweep_management import SweepManager

    features, labels = load_digits(return_X_y=True)
    x = torch.tensor(features / 16.0, dtype=torch.float32)
    y = torch.tensor(labels, dtype=torch.long)

    def batches(lo: int, hi: int) -> list:
        return [(torch.arange(i, min(i + batch_size, hi)), x[i:min(i + batch_size, hi)],
                 y[i:min(i + batch_size, hi)]) for i in range(lo, hi, batch_size)]

    torch.manual_seed(0)
    h1 = torch.nn.Linear(64, 10)
    h2 = torch.nn.Sequential(torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    return SweepManager(
        folder, epochs, h1, h2, batches(0, train_size), batches(train_size, len(labels)),
        batch_size, batch_size, torch.optim.SGD, {"lr": 0.05},
        BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=0.25)


def main(argv: Optional[List[str]] = None) -> Dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0)
    args = parser.parse_args(argv)

    from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import (
        CompatibilityAnalysis,
    )

    with tempfile.TemporaryDirectory() as folder:
        manager = make_long_sweep(folder)
        with CompatibilityAnalysis.from_sweep_manager(manager, display_widget=False) as widget:
            manager.start_sweep()
            stats = run_load(widget.port, widget.token, args.clients, args.seconds)
            still_running = manager.is_running()
            manager.cancel_sweep()
    print("clients: %d, seconds: %.1f, sweep running throughout: %s"
          % (stats["clients"], stats["seconds"], still_running))
    print("requests: %d (%.0f/s), errors: %d"
          % (stats["requests"], stats["requests_per_second"] or 0, stats["errors"]))
    if stats["p50_ms"] is not None:
        print("latency p50: %.1f ms, p99: %.1f ms, max: %.1f ms"
              % (stats["p50_ms"], stats["p99_ms"], stats["max_ms"]))
    for sample in stats["error_samples"]:
        print("  error:", sample)
    return stats


if __name__ == "__main__":
    import os
    import sys

    # Run from a checkout without installing the package.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    main()
