"""Vectorized executor against the sequential one, one thread, ratios measured in this run.

Workload (``_workloads.digits_reference_workload``): digits, h1 MLP-16, h2
MLP-64, batch 32, 5 epochs, SGD(lr=0.1).

1. Whole sweeps through ``SweepManager.start_sweep_synchronous()`` with
   ``executor="sequential"`` and ``executor="vectorized"`` at stepsize 0.25 /
   0.1 / 0.05 (10 / 22 / 42 trainings). Goal: >= 2x / 4x / 6x. The
   vectorized executor with ``fused_forward=False`` (every member through
   vmap) is shown beside it.
2. K trainings in one vectorized run against one training (sequential), for K
   up to 42, at the executor level on a prepared context, with the fused
   forward and with vmap. Goal: <= 3x. A hand-written stacked loop of the
   training steps alone ("floor": forward, NLL, backward, SGD; no
   compatibility loss, no evaluation) shows what eager PyTorch needs for K
   members on this machine.
3. Peak RSS of the process as K grows.
4. With ``--pairs N``: the same ratio as in 2 from N interleaved pairs (one
   training, then K trainings) inside one process, after a warm-up pair.
   Neighbouring runs see nearly the same machine load, so the median of the
   per-pair ratios is the steadier figure on a shared, noisy machine; the
   best-of figures of 2 come from runs minutes apart.

Every figure is measured in a fresh subprocess (so peak RSS is that run's);
each timing is the best of ``--repeats`` runs, sequential and vectorized
alternating so that both see the same machine load. Wall time and the
process's CPU time are both shown: on a shared machine the CPU time is the
steadier figure.

With ``--device cuda`` every figure is measured on the GPU (models, stacked
members and the floor's tensors there; the batches come from the CPU as a
user's would). Each process first runs a small warm-up step on the GPU so
that the CUDA context and library handles are not counted; the goals above
are for one CPU thread and are printed only for comparison.

Usage: ``python benchmarks/bench_vectorized.py [--repeats 2] [--quick] [--counts K ...] [--pairs N]
[--device cuda]``
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
EPOCHS = 5
GOALS = {0.25: 2.0, 0.1: 4.0, 0.05: 6.0}
DEVICE = os.environ.get("BCML_BENCH_DEVICE", "cpu")  # set from --device for the child processes


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _setup():
    import torch

    torch.set_num_threads(1)
    sys.path[:0] = [HERE, ROOT]
    from _workloads import digits_reference_workload

    h1, h2, train, test = digits_reference_workload()
    if DEVICE != "cpu":
        _warm_up(torch, DEVICE)
    return torch, h1.model.to(DEVICE), h2.model.to(DEVICE), train, test


def _warm_up(torch, device: str) -> None:
    """One small training step on ``device``: the CUDA context and library handles are made outside the timings."""
    layer = torch.nn.Linear(64, 10).to(device)
    x, y = torch.randn(32, 64, device=device), torch.randint(0, 10, (32,), device=device)
    torch.nn.functional.cross_entropy(torch.log_softmax(layer(x), 1), y).backward()
    torch.bmm(torch.randn(2, 3, 4, device=device), torch.randn(2, 4, 5, device=device))
    _synchronize(torch)


def _synchronize(torch) -> None:
    if DEVICE != "cpu":
        torch.cuda.synchronize()


def _executor(name: str):
    """``"vectorized-vmap"`` is the vectorized executor with its fused forward turned off."""
    if name == "vectorized-vmap":
        from backwardcompatibilityml.engine.vectorized import VectorizedExecutor

        return VectorizedExecutor(fused_forward=False)
    from backwardcompatibilityml.engine.executors import resolve_executor

    return resolve_executor(name)


def sweep_time(executor: str, stepsize: float) -> dict:
    """One whole sweep through SweepManager, synchronous."""
    torch, h1, h2, train, test = _setup()
    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from backwardcompatibilityml.sweep_management import SweepManager

    with tempfile.TemporaryDirectory() as folder:
        manager = SweepManager(folder, EPOCHS, h1, h2, train, test, 32, 32, torch.optim.SGD, {"lr": 0.1},
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=stepsize,
                               executor=_executor(executor), device=DEVICE)
        start, cpu = time.perf_counter(), time.process_time()
        manager.start_sweep_synchronous(progress_bar=False)
        wall, cpu = time.perf_counter() - start, time.process_time() - cpu
        status = manager.get_sweep_status()
    return {"wall": wall, "cpu": cpu, "state": status["state"], "executor": status.get("executor"),
            "note": status.get("executor_note"), "trainings": 2 * len(manager.lambda_c_values)}


def executor_time(executor: str, count: int) -> dict:
    """``count`` jobs of the 0.05 grid on a prepared context; wall time and peak RSS growth."""
    torch, h1, h2, train, test = _setup()
    from backwardcompatibilityml.engine.config import SweepConfig
    from backwardcompatibilityml.engine.context import prepare
    from backwardcompatibilityml.engine.jobs import plan_jobs

    config = SweepConfig.from_arguments(
        number_of_epochs=EPOCHS, h1=h1, h2=h2, training_set=train, test_set=test, batch_size_train=32,
        batch_size_test=32, OptimizerClass=torch.optim.SGD, optimizer_kwargs={"lr": 0.1}, lambda_c_stepsize=0.05,
        device=DEVICE)
    context = prepare(config)
    jobs = plan_jobs(config.lambda_c_values, config.families, config.seed)[:count]
    runner = _executor(executor)
    runner.applies(context)
    finished = []

    class Sink:
        def put(self, event):
            if type(event).__name__ == "JobFinished":
                finished.append(event.result.job)

    rss_before = _rss_mb()
    start, cpu = time.perf_counter(), time.process_time()
    runner.run(jobs, context, Sink(), lambda: False)
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    assert len(finished) == count
    return {"wall": wall, "cpu": cpu, "rss_before_mb": rss_before, "rss_peak_mb": _rss_mb()}


def floor_time(count: int) -> dict:
    """A hand-written loop over ``count`` stacked MLP-64 members: forward, NLL, backward, SGD; nothing else.

    No compatibility loss, no h1, no evaluation, no events: what plain eager
    PyTorch needs for the training steps alone (a floor for ``executor_time``).
    The products are feature-major (``weight @ x^T``), as in the fused
    forward: the faster layout for these shapes.
    """
    torch, _h1, _h2, train, _test = _setup()
    functional = torch.nn.functional
    w1 = (torch.randn(count * 64, 64, device=DEVICE) * 0.1).requires_grad_()
    b1 = torch.zeros(count * 64, 1, device=DEVICE, requires_grad=True)
    w2 = (torch.randn(count, 10, 64, device=DEVICE) * 0.1).requires_grad_()
    b2 = torch.zeros(count, 10, 1, device=DEVICE, requires_grad=True)
    optimizer = torch.optim.SGD([w1, b1, w2, b2], lr=0.1)
    start, cpu = time.perf_counter(), time.process_time()
    for _ in range(EPOCHS):
        for _ids, x, y in train:
            x, y = x.to(DEVICE, non_blocking=True), y.to(DEVICE, non_blocking=True)
            optimizer.zero_grad(set_to_none=True)
            hidden = torch.relu(torch.addmm(b1, w1, x.t())).view(count, 64, x.shape[0])
            out = functional.log_softmax(torch.baddbmm(b2, w2, hidden), 1).transpose(1, 2)
            functional.nll_loss(out.reshape(-1, 10), y.repeat(count), reduction="sum").backward()
            optimizer.step()
    _synchronize(torch)
    return {"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu, "rss_before_mb": 0,
            "rss_peak_mb": 0}


def paired_times(count: int, pairs: int) -> dict:
    """``pairs`` interleaved (one training, ``count`` trainings) runs in this process, after one warm-up pair."""
    one, many = [], []
    for index in range(pairs + 1):
        first = executor_time("sequential", 1)["wall"]
        second = executor_time("vectorized", count)["wall"]
        if index:
            one.append(first)
            many.append(second)
    return {"one": one, "many": many}


def _child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=True,
                         cwd=HERE, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return json.loads(out.stdout.strip().splitlines()[-1])


def _best(runs: list) -> dict:
    """The fastest run by wall time, with the least CPU time over the runs."""
    best = dict(min(runs, key=lambda r: r["wall"]))
    best["cpu"] = min(r["cpu"] for r in runs)
    return best


def _where(device: str) -> str:
    if device == "cpu":
        return "1 thread"
    import torch

    return f"{torch.cuda.get_device_name()}, 1 CPU thread"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="stepsize 0.25 only and K up to 10")
    parser.add_argument("--counts", type=int, nargs="+", help="only these K in part 2 (and no part 1)")
    parser.add_argument("--pairs", type=int, default=0,
                        help="also measure part 2's ratio from this many same-process pairs per K")
    parser.add_argument("--device", choices=("cpu", "cuda"), default=DEVICE,
                        help="where the models train (default: cpu, one thread)")
    parser.add_argument("--child", nargs="+")
    args = parser.parse_args()
    os.environ["BCML_BENCH_DEVICE"] = args.device
    if args.child:
        kind, executor, value = args.child
        if kind == "sweep":
            result = sweep_time(executor, float(value))
        elif kind == "floor":
            result = floor_time(int(value))
        elif kind == "pairs":
            result = paired_times(int(value), int(executor))
        else:
            result = executor_time(executor, int(value))
        print(json.dumps(result))
        return

    stepsizes = () if args.counts else (0.25,) if args.quick else (0.25, 0.1, 0.05)
    if stepsizes:
        print(f"1. whole sweeps, sequential vs vectorized ({_where(args.device)}, {EPOCHS} epochs, best of "
              f"{args.repeats}); 'vmap' is the vectorized executor with fused_forward=False")
        print(f"   {'stepsize':>8} {'trainings':>9} {'sequential':>11} {'vectorized':>11} {'speed-up':>9} {'goal':>6}"
              f"   {'vmap':>7} {'speed-up':>9}   {'CPU: seq':>9} {'vec':>6} {'speed-up':>9}")
    for stepsize in stepsizes:
        runs = {"sequential": [], "vectorized": [], "vectorized-vmap": []}
        for _ in range(args.repeats):
            for executor in runs:
                runs[executor].append(_child("sweep", executor, str(stepsize)))
        seq, vec, vmap = (_best(runs[name]) for name in runs)
        assert seq["state"] == vec["state"] == vmap["state"] == "completed", (seq, vec, vmap)
        assert vec["note"].endswith("(fused linear layers)") and vmap["note"].endswith("(vmap)"), (vec, vmap)
        print(f"   {stepsize:>8} {seq['trainings']:>9} {seq['wall']:>10.2f}s {vec['wall']:>10.2f}s "
              f"{seq['wall'] / vec['wall']:>8.2f}x {'>=' + str(GOALS[stepsize]) + 'x':>6}   {vmap['wall']:>6.2f}s "
              f"{seq['wall'] / vmap['wall']:>8.2f}x   {seq['cpu']:>8.2f}s {vec['cpu']:>5.2f}s "
              f"{seq['cpu'] / vec['cpu']:>8.2f}x", flush=True)

    counts = args.counts or ((1, 2, 6, 10) if args.quick else (1, 2, 6, 10, 22, 42))
    print(f"\n2./3. K trainings in one vectorized run vs one sequential training ({_where(args.device)}, executor "
          f"only, best of {args.repeats}, the four runs of a row interleaved)")
    print("   'floor' is a hand-written stacked loop of the training steps alone (forward, NLL, backward, SGD)")
    print(f"   {'K':>3} {'one':>6} {'vectorized':>11} {'vs one':>7} {'goal':>6}   {'vmap':>7} {'vs one':>7}   "
          f"{'floor':>7} {'vs one':>7} {'vec/floor':>9}   {'CPU':>6} {'vs one':>7}   {'peak RSS':>9} {'growth':>7}")
    for count in counts:
        runs = {"one": [], "vectorized": [], "vmap": [], "floor": []}
        for _ in range(args.repeats):
            runs["one"].append(_child("executor", "sequential", "1"))
            runs["vectorized"].append(_child("executor", "vectorized", str(count)))
            runs["vmap"].append(_child("executor", "vectorized-vmap", str(count)))
            runs["floor"].append(_child("floor", "-", str(count)))
        one, vec, vmap, floor = (_best(runs[name]) for name in runs)
        print(f"   {count:>3} {one['wall']:>5.2f}s {vec['wall']:>10.2f}s {vec['wall'] / one['wall']:>6.2f}x "
              f"{'<=3x':>6}   "
              f"{vmap['wall']:>6.2f}s {vmap['wall'] / one['wall']:>6.2f}x   "
              f"{floor['wall']:>6.2f}s {floor['wall'] / one['wall']:>6.2f}x {vec['wall'] / floor['wall']:>8.2f}x   "
              f"{vec['cpu']:>5.2f}s {vec['cpu'] / one['cpu']:>6.2f}x   {vec['rss_peak_mb']:>7.0f}MB "
              f"{vec['rss_peak_mb'] - vec['rss_before_mb']:>5.0f}MB", flush=True)

    if args.pairs:
        print(f"\n4. the same ratio from {args.pairs} interleaved pairs in one process (one training, then K)")
        print(f"   {'K':>3} {'median':>7} {'best':>6} {'worst':>6} {'goal':>6}   {'one: median':>11} {'K: median':>9}")
        for count in counts:
            found = _child("pairs", str(args.pairs), str(count))
            ratios = sorted(many / one for one, many in zip(found["one"], found["many"]))
            print(f"   {count:>3} {statistics.median(ratios):>6.2f}x {ratios[0]:>5.2f}x {ratios[-1]:>5.2f}x "
                  f"{'<=3x':>6}   {statistics.median(found['one']):>10.3f}s "
                  f"{statistics.median(found['many']):>8.3f}s", flush=True)


if __name__ == "__main__":
    main()