"""A short load test of the widget server: 50 concurrent clients poll
sweep_status while a real sweep trains; no request may fail. The 10-second
version with latency figures is benchmarks/bench_api_load.py."""

import importlib.util
import os

from backwardcompatibilityml.widgets.compatibility_analysis.compatibility_analysis import (
    CompatibilityAnalysis,
)

BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                     "benchmarks", "bench_api_load.py")


def load_benchmark():
    spec = importlib.util.spec_from_file_location("bench_api_load", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_50_clients_polling_status_during_a_sweep(tmp_path):
    bench = load_benchmark()
    manager = bench.make_long_sweep(str(tmp_path))
    with CompatibilityAnalysis.from_sweep_manager(manager, display_widget=False) as widget:
        manager.start_sweep()
        try:
            stats = bench.run_load(widget.port, widget.token, clients=50, seconds=2.0)
            assert manager.is_running(), "the sweep must outlast the load"
        finally:
            manager.cancel_sweep()
    print("load: %(requests)d requests, %(errors)d errors, p50 %(p50_ms).1f ms, "
          "p99 %(p99_ms).1f ms" % stats)
    assert stats["errors"] == 0, stats["error_samples"]
    assert stats["requests"] >= 50
    assert stats["running_seen"] > 0
