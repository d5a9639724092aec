"""Reference sweep through SweepManager.start_sweep_synchronous().

Digits, h1 MLP(16), h2 MLP(64), batch 32, 5 epochs, stepsize 0.25 (10 trainings).
Prints wall time, forward calls of h1 and h2, and peak memory. Peak memory is
measured in a fresh subprocess per stepsize (0.25 and 0.1) to show that it
does not grow with the number of lambda_c values.

The sequential executor runs here, so that the forward calls count one per
model per batch; ``bench_vectorized.py`` compares it with the vectorized one.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EPOCHS = 5


def run_one(stepsize: float) -> dict:
    import torch

    from _workloads import CALLS, digits_reference_workload
    from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
    from backwardcompatibilityml.sweep_management import SweepManager

    torch.set_num_threads(1)
    h1, h2, train, test = digits_reference_workload()
    CALLS.clear()
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with tempfile.TemporaryDirectory() as folder:
        manager = SweepManager(folder, EPOCHS, h1, h2, train, test, 32, 32, torch.optim.SGD, {"lr": 0.1},
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=stepsize,
                               executor="sequential")
        start = time.perf_counter()
        manager.start_sweep_synchronous()
        wall = time.perf_counter() - start
        state = manager.get_sweep_status()["state"]
    trainings = 2 * len(manager.lambda_c_values)
    return {
        "stepsize": stepsize, "state": state, "trainings": trainings, "wall": wall,
        "h1": CALLS["h1"], "h2": CALLS["h2"],
        "h1_target": 2 * (len(train) + len(test)),
        "h2_expected": trainings * (EPOCHS * len(train) + len(train) + len(test)),
        "rss_before_mb": rss_before / 1024, "rss_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--one":
        print(json.dumps(run_one(float(sys.argv[2]))))
        return
    for stepsize in (0.25, 0.1):
        out = subprocess.run([sys.executable, __file__, "--one", str(stepsize)], capture_output=True, text=True,
                             check=True, cwd=HERE)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"sweep stepsize {r['stepsize']}: {r['trainings']} trainings x {EPOCHS} epochs -> {r['state']}")
        print(f"  wall time          {r['wall']:8.2f} s")
        print(f"  h1 forward calls   {r['h1']:8d}   (target <= {r['h1_target']})")
        print(f"  h2 forward calls   {r['h2']:8d}   (steps + evaluation batches = {r['h2_expected']})")
        print(f"  peak RSS           {r['rss_peak_mb']:8.1f} MB  (before the sweep {r['rss_before_mb']:.1f} MB, "
              f"growth {r['rss_peak_mb'] - r['rss_before_mb']:.1f} MB)")


if __name__ == "__main__":
    main()
