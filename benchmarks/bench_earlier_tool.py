"""This project against the earlier tool (backwardcompatibilityml 1.4.2 from PyPI), in one run, as ratios.

The same sweep in both: digits (``_workloads.digits_reference_workload``),
h1 MLP-16, h2 MLP-64, batch 32, 5 epochs, SGD(lr=0.1), the cross-entropy
New Error / Strict Imitation pair, one thread. The earlier tool needs models
that return ``(logits, softmax, log_softmax)`` and batch ids as lists, so
both tools get exactly that.

The earlier tool is not installed: its wheel is fetched with
``pip download backwardcompatibilityml==1.4.2 --no-deps`` (or given with
``--wheel``), unpacked into a temporary folder and imported from there in a
child process, against this environment's torch (its pins date from 2020;
its sweep code runs unchanged on torch 2). It imports mlflow, flask and
Pillow at import time, so run this from an environment set up with the
``[mlflow]`` extra (``bash run.sh test`` makes one).

Each figure is the best of ``--repeats`` runs in fresh subprocesses, the
tools alternating so that both see the same machine load. Goal (issue 11):
the vectorized sweep >= 10x faster than the earlier tool at stepsize 0.1.

Usage: ``python benchmarks/bench_earlier_tool.py [--repeats 2] [--wheel PATH]``
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EARLIER = "backwardcompatibilityml==1.4.2"
EPOCHS = 5
STEPSIZES = (0.25, 0.1)
GOAL = {0.1: 10.0}


def child(tool: str, stepsize: float, executor: str, earlier_path: str) -> dict:
    """One sweep of ``tool`` ("earlier" or "ours") in this process."""
    sys.path[:0] = [earlier_path if tool == "earlier" else ROOT, HERE]
    import torch

    torch.set_num_threads(1)
    from _workloads import TripleOutputs, digits_reference_workload, ids_as_lists

    h1, h2, train, test = digits_reference_workload()
    h1, h2 = TripleOutputs(h1.model).eval(), TripleOutputs(h2.model)
    train, test = ids_as_lists(train), ids_as_lists(test)
    import backwardcompatibilityml
    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from backwardcompatibilityml.sweep_management import SweepManager

    where = os.path.dirname(backwardcompatibilityml.__file__)
    expected = earlier_path if tool == "earlier" else ROOT
    assert where.startswith(expected), f"imported {where}, expected a package under {expected}"
    extra = {} if tool == "earlier" else {"executor": executor}
    with tempfile.TemporaryDirectory() as folder:
        manager = SweepManager(folder, EPOCHS, h1, h2, train, test, 32, 32, torch.optim.SGD, {"lr": 0.1},
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=stepsize,
                               **extra)
        start, cpu = time.perf_counter(), time.process_time()
        if tool == "earlier":
            manager.start_sweep_synchronous()
        else:
            manager.start_sweep_synchronous(progress_bar=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        models = len(glob.glob(os.path.join(folder, "*model*")))
        evaluations = len(glob.glob(os.path.join(folder, "*evaluation*.json")))
    return {"wall": wall, "cpu": cpu, "models": models, "evaluations": evaluations}


def unpack_earlier(wheel: str, into: str) -> str:
    if not wheel:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--disable-pip-version-check",
                        "-d", into, EARLIER], check=True)
        wheel = glob.glob(os.path.join(into, "backwardcompatibilityml-*.whl"))[0]
    target = os.path.join(into, "earlier")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(target)
    return target


def _run(tool: str, stepsize: float, executor: str, earlier_path: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", tool, str(stepsize), executor, earlier_path],
                         capture_output=True, text=True, cwd=HERE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if out.returncode != 0:
        raise SystemExit(f"{tool} {executor} at stepsize {stepsize} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--wheel", default="", help="the earlier tool's wheel (default: pip download it)")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        tool, stepsize, executor, earlier_path = args.child
        print(json.dumps(child(tool, float(stepsize), executor, earlier_path)))
        return
    with tempfile.TemporaryDirectory() as scratch:
        earlier_path = unpack_earlier(args.wheel, scratch)
        print(f"earlier tool: {EARLIER}; 1 thread, {EPOCHS} epochs, triple outputs, best of {args.repeats}")
        print(f"   {'stepsize':>8} {'trainings':>9} {'earlier':>9} {'sequential':>11} {'vectorized':>11}"
              f" {'earlier/seq':>12} {'earlier/vec':>12} {'goal':>6}")
        for stepsize in STEPSIZES:
            runs = {"earlier": [], "sequential": [], "vectorized": []}
            for _ in range(args.repeats):
                for name in runs:
                    tool = "earlier" if name == "earlier" else "ours"
                    runs[name].append(_run(tool, stepsize, name, earlier_path))
            best = {name: min(r["wall"] for r in values) for name, values in runs.items()}
            models = {name: values[0]["models"] for name, values in runs.items()}
            assert len(set(models.values())) == 1, f"the tools trained different numbers of models: {models}"
            goal = f">={GOAL[stepsize]:g}x" if stepsize in GOAL else ""
            print(f"   {stepsize:>8} {models['earlier']:>9} {best['earlier']:>8.2f}s {best['sequential']:>10.2f}s "
                  f"{best['vectorized']:>10.2f}s {best['earlier'] / best['sequential']:>11.2f}x "
                  f"{best['earlier'] / best['vectorized']:>11.2f}x {goal:>6}", flush=True)


if __name__ == "__main__":
    main()
