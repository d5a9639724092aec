"""The Start button's path: a sweep in a background thread against the same sweep in the caller, in a real kernel.

A Jupyter kernel is started with nbclient. In it, the same sweep (digits,
h1 MLP-16, h2 MLP-64, batch 32, ``--epochs`` epochs, stepsize ``--stepsize``,
``--executor``, default ``"auto"``) runs alternately through ``start_sweep_synchronous()``
and through ``start_sweep()`` + ``wait()`` (the background thread the
widget's Start button uses), ``--repeats`` times each, in two settings of
the notebook:

* torch's default thread count (what a notebook gets without asking), and
* ``torch.set_num_threads(1)`` called in the notebook first.

Before the sweeps, a probe times the operations a sweep is made of (small
matrix products) in the notebook's thread and in a new thread, to show the
cause (see ``backwardcompatibilityml/engine/threads.py``).

Each background sweep is run with the sweep thread's settings of
``engine/threads.py`` (``configure_sweep_thread``) and without them
(``BCML_SWEEP_NUM_THREADS=inherit``: torch's defaults in the new thread), so
the cause shows in the same run. Goal: background <= 1.15x synchronous.

Usage: ``python benchmarks/bench_background_thread.py [--repeats 3] [--epochs 5] [--stepsize 0.25]
[--executor auto|sequential|vectorized]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

SETUP = r'''
import json, os, resource, sys, tempfile, time
sys.path[:0] = [{here!r}, {root!r}]
import torch
if {one_thread!r}:
    torch.set_num_threads(1)
from _workloads import digits_reference_workload
from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.sweep_management import SweepManager

h1, h2, train, test = digits_reference_workload()

def sweep(path):
    with tempfile.TemporaryDirectory() as folder:
        manager = SweepManager(folder, {epochs}, h1, h2, train, test, 32, 32, torch.optim.SGD, {{"lr": 0.1}},
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
                               lambda_c_stepsize={stepsize}, executor={executor!r})
        start = time.perf_counter()
        if path == "synchronous":
            manager.start_sweep_synchronous(progress_bar=False)
        else:
            manager.start_sweep()
            manager.wait()
        wall = time.perf_counter() - start
        assert manager.get_sweep_status()["state"] == "completed", manager.get_sweep_status()
        return wall

def small_ops():
    a, w = torch.randn(32, 64), torch.randn(64, 64)
    start = time.perf_counter()
    for _ in range(20000):
        torch.relu(a @ w)
    return time.perf_counter() - start

def in_thread(function, configure):
    import threading
    from backwardcompatibilityml.engine.threads import configure_sweep_thread
    box = {{}}
    def target():
        if configure:
            configure_sweep_thread()
        box["value"] = function()
    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return box["value"]

probe = {{"notebook thread": [], "new thread, torch defaults": [], "new thread, configure_sweep_thread()": []}}
for _ in range({repeats}):
    probe["notebook thread"].append(small_ops())
    probe["new thread, torch defaults"].append(in_thread(small_ops, False))
    probe["new thread, configure_sweep_thread()"].append(in_thread(small_ops, True))

times = {{"synchronous": [], "background": [], "background, torch defaults": []}}
for _ in range({repeats}):
    times["synchronous"].append(sweep("synchronous"))
    os.environ.pop("BCML_SWEEP_NUM_THREADS", None)
    times["background"].append(sweep("background"))
    os.environ["BCML_SWEEP_NUM_THREADS"] = "inherit"
    times["background, torch defaults"].append(sweep("background"))
    os.environ.pop("BCML_SWEEP_NUM_THREADS", None)
print("RESULT " + json.dumps({{"times": times, "probe": probe, "notebook_threads": torch.get_num_threads(),
                              "cores": len(os.sched_getaffinity(0))}}))
'''


def run_kernel(one_thread: bool, args: argparse.Namespace) -> dict:
    import nbformat
    from nbclient import NotebookClient

    code = SETUP.format(here=HERE, root=ROOT, one_thread=one_thread, epochs=args.epochs, stepsize=args.stepsize,
                        repeats=args.repeats, executor=args.executor)
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)])
    NotebookClient(notebook, timeout=args.timeout, kernel_name="python3").execute()
    for output in notebook.cells[0].get("outputs", []):
        for line in output.get("text", "").splitlines():
            if line.startswith("RESULT "):
                return json.loads(line[len("RESULT "):])
    raise RuntimeError(f"the kernel printed no result: {notebook.cells[0].get('outputs')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--stepsize", type=float, default=0.25)
    parser.add_argument("--executor", default="auto", choices=("auto", "sequential", "vectorized"))
    parser.add_argument("--timeout", type=int, default=3600)
    args = parser.parse_args()
    print(f"sweep: stepsize {args.stepsize}, {args.epochs} epochs, executor={args.executor!r}; in a real kernel (nbclient); "
          f"{args.repeats} runs of each path, interleaved")
    for one_thread in (False, True):
        result = run_kernel(one_thread, args)
        label = "torch.set_num_threads(1) in the notebook" if one_thread else "torch's default threads"
        print(f"\n{label} (notebook thread count {result['notebook_threads']}, {result['cores']} cores)")
        print(f"   {'path':<28} {'best':>8} {'median':>8} {'best / synchronous best':>24}")
        probe = result["probe"]
        base = min(probe["notebook thread"])
        print("   20000 x relu(x @ w), x 32x64 (the size of a sweep's operations):")
        for where, times in probe.items():
            print(f"   {where:<40} {min(times):>7.2f}s {min(times) / base:>6.2f}x")
        sync_best = min(result["times"]["synchronous"])
        for path, times in result["times"].items():
            ratio = min(times) / sync_best
            goal = "  (goal <= 1.15x)" if path == "background" else ""
            print(f"   {path:<28} {min(times):>7.2f}s {statistics.median(times):>7.2f}s {ratio:>23.2f}x{goal}")


if __name__ == "__main__":
    main()
