"""Evaluation at scale: 1,000 training and 100,000 test instances.

20 features, 10 classes, linear h1 and h2, batch 1,000, stepsize 1.0, 1 epoch
(4 trainings, 8 evaluations). Prints the sweep's wall time, the forward calls
and the size of the largest evaluation file. (An earlier tool took 29 s for
this sweep and wrote 11.8 MB per datapoint.)
"""

from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch
import torch.nn as nn

from _workloads import CALLS, Counted, batches
from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.sweep_management import SweepManager


def main() -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(20, 10))
    x = rng.normal(size=(101_000, 20)).astype(np.float32)
    y = (x @ weights + rng.normal(scale=2.0, size=(101_000, 10))).argmax(1)
    train, test = batches(x[:1000], y[:1000], 1000), batches(x[1000:], y[1000:], 1000, first_id=1000)
    torch.manual_seed(0)
    h1, h2 = Counted("h1", nn.Linear(20, 10)), Counted("h2", nn.Linear(20, 10))
    with torch.no_grad():
        h1.model.weight.copy_(torch.tensor(weights.T, dtype=torch.float32) + 0.8 * torch.randn(10, 20))
    with tempfile.TemporaryDirectory() as folder:
        manager = SweepManager(folder, 1, h1, h2, train, test, 1000, 1000, torch.optim.SGD, {"lr": 0.1},
                               BCCrossEntropyLoss, StrictImitationCrossEntropyLoss, lambda_c_stepsize=1.0)
        start = time.perf_counter()
        manager.start_sweep_synchronous()
        wall = time.perf_counter() - start
        sizes = {n: os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if n.endswith("-evaluation-data.json")}
        largest = max(sizes, key=sizes.get)
        test_point = manager.get_evaluation(1)
    print(f"evaluation at scale: 1,000 train / 100,000 test instances, {manager.get_sweep_status()['state']}")
    print(f"  sweep wall time            {wall:8.2f} s   (earlier tool: 29 s)")
    print(f"  h1 / h2 forward calls      {CALLS['h1']} / {CALLS['h2']}")
    print(f"  largest evaluation file    {sizes[largest] / 1e6:8.2f} MB ({largest}; earlier tool: 11.8 MB)")
    print(f"  test-set errors: h1 {len(test_point['models_error_overlap'][0])}, "
          f"h2 {len(test_point['models_error_overlap'][1])}")


if __name__ == "__main__":
    main()
