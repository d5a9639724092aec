"""Evaluation at scale: 1,000 training and N test instances (default 1,000,000), one thread.

20 features, 10 classes, linear h1 and h2, batches of 50 (training) and 1,000
(test), stepsize 1.0, 1 epoch (4 trainings, 8 datapoints), through ``SweepManager.start_sweep_synchronous``.
The sweep runs in a fresh subprocess (its peak RSS is that process's); the
views are then timed in this process on a cold cache (a fresh
``ResultFiles``), as the server computes them.

Prints: sweep wall time, peak RSS, the file of a test datapoint, the compact
view (what a click on a point fetches), the first and a later instances page,
and, with ``--json-era``, the size of the JSON-era record of the same
datapoint and the ratio to its columns.

Usage::

    python benchmarks/bench_evaluation_scale.py [--n 1000000] [--executor auto] [--json-era] [--keep DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
FEATURES, CLASSES, BATCH = 20, 10, 1000


def make_batches(n: int, first_id: int, weights, generator, batch: int = 1000):
    """Batches of ``(ids, x, y)`` made in torch without a second copy of the data."""
    import torch

    x = torch.randn(n, FEATURES, generator=generator)
    y = torch.empty(n, dtype=torch.long)
    for start in range(0, n, 100_000):  # labels from a noisy linear teacher, in chunks
        chunk = x[start:start + 100_000]
        noise = 2.0 * torch.randn(chunk.shape[0], CLASSES, generator=generator)
        y[start:start + 100_000] = (chunk @ weights + noise).argmax(1)
    ids = torch.arange(first_id, first_id + n)
    return [(ids[i:i + batch], x[i:i + batch], y[i:i + batch]) for i in range(0, n, batch)]


def child(n: int, folder: str, executor: str) -> None:
    """Run the sweep; print one JSON line of figures."""
    import torch

    torch.set_num_threads(1)
    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from backwardcompatibilityml.sweep_management import SweepManager

    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(FEATURES, CLASSES, generator=generator)
    train = make_batches(1000, 0, weights, generator, batch=50)  # 20 steps: h2 learns something
    test = make_batches(n, 1000, weights, generator)
    torch.manual_seed(0)
    h1, h2 = torch.nn.Linear(FEATURES, CLASSES), torch.nn.Linear(FEATURES, CLASSES)
    with torch.no_grad():
        h1.weight.copy_(weights.T + 0.8 * torch.randn(CLASSES, FEATURES))
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    manager = SweepManager(folder, 1, h1, h2, train, test, 50, BATCH, torch.optim.SGD, {"lr": 0.1},
                           BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=1.0,
                           executor=executor)
    start = time.perf_counter()
    manager.start_sweep_synchronous(progress_bar=False, raise_on_error=True)
    wall = time.perf_counter() - start
    status = manager.get_sweep_status()
    print(json.dumps({
        "wall": wall, "state": status["state"], "executor": status.get("executor"),
        "rss_peak": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "rss_data": rss_data,
    }))


def timed(function, repeat: int = 1):
    best, value = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        value = function()
        best = min(best, time.perf_counter() - start)
    return best, value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="test instances (default 1,000,000)")
    parser.add_argument("--executor", default="auto", help="auto, sequential or vectorized (default auto)")
    parser.add_argument("--json-era", action="store_true", help="also build the JSON-era record to compare sizes")
    parser.add_argument("--keep", help="write the sweep to this folder and keep it (for bench_click_venn.py)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--folder", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.n, args.folder, args.executor)
        return
    folder = args.keep or tempfile.mkdtemp(prefix="bcml-scale-")
    if args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    try:
        env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")
        out = subprocess.run([sys.executable, __file__, "--child", "--n", str(args.n), "--folder", folder,
                              "--executor", args.executor], env=env, check=True, capture_output=True, text=True)
        sweep = json.loads(out.stdout.strip().splitlines()[-1])
        report(args, folder, sweep)
    finally:
        if not args.keep:
            shutil.rmtree(folder, ignore_errors=True)


def report(args: argparse.Namespace, folder: str, sweep: dict) -> None:
    sys.path.insert(0, os.path.dirname(HERE))
    from backwardcompatibilityml.results import ResultFiles
    from backwardcompatibilityml.results.views import to_json_bytes

    mb = 1024 * 1024
    size = lambda name: os.path.getsize(os.path.join(folder, name))  # noqa: E731
    files = ResultFiles(folder)  # a cold cache, as a fresh server has
    compact_s, compact = timed(lambda: files.view(1).compact_json())
    regions = json.loads(compact)["regions"]
    first_page_s, _ = timed(lambda: files.view(1).page(region="regress", sort="-h2_prediction", limit=50))
    later_page_s, _ = timed(lambda: files.view(1).page(region="common", offset=5000, limit=50), repeat=3)
    other_compact_s, _ = timed(lambda: files.view(3).compact_json())
    print(f"evaluation at scale: 1,000 train / {args.n:,} test instances, stepsize 1.0, 1 epoch, 1 thread, "
          f"executor {sweep['executor']}: {sweep['state']}")
    print(f"  sweep wall time                 {sweep['wall']:8.2f} s")
    print(f"  peak RSS of the sweep process   {sweep['rss_peak'] / 1e9:8.2f} GB   "
          f"(the data alone: {sweep['rss_data'] / 1e9:.2f} GB)")
    print(f"  file of a test datapoint        {size('1-evaluation.arrow') / mb:8.2f} MB   "
          f"(+ {size('1-evaluation.json')} B JSON; reference once: {size('testing-reference.arrow') / mb:.2f} MB)")
    print(f"  compact view, cold (a click)    {compact_s * 1000:8.1f} ms   ({len(compact)} B; regions {regions})")
    print(f"  compact view of a 2nd datapoint {other_compact_s * 1000:8.1f} ms   (its reference already mapped)")
    print(f"  first instances page, cold      {first_page_s * 1000:8.1f} ms   (region=regress, sort=-h2_prediction)")
    print(f"  a later instances page, warm    {later_page_s * 1000:8.1f} ms")
    if args.json_era:
        record_s, record = timed(lambda: files.view(1).record())
        text_s, text = timed(lambda: to_json_bytes(record))
        columns = size("1-evaluation.arrow")
        print(f"  JSON-era record of datapoint 1  {len(text) / mb:8.2f} MB   (built in {record_s:.1f} s, "
              f"encoded in {text_s:.1f} s; {len(text) / columns:.1f} x the columns file)")


if __name__ == "__main__":
    main()
