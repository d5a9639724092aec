"""Reference workload through the engine: 10 trainings (5 lambda_c x 2 families) of 5 epochs.

Prints wall time and the forward calls of h1 and h2 against their targets:
h1 <= 2 x (train batches + test batches) for the whole workload, h2 within 2 %
of (training steps + evaluation batches).
"""

from __future__ import annotations

import copy
import time

import torch

from _workloads import CALLS, digits_reference_workload
from backwardcompatibilityml.data import ReferenceOutputs
from backwardcompatibilityml.evaluation import evaluate_models
from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.training import train_compatible_model

EPOCHS = 5


def main() -> None:
    torch.set_num_threads(1)
    h1, h2, train, test = digits_reference_workload()
    CALLS.clear()
    cpu = torch.device("cpu")
    references = ReferenceOutputs(h1, cpu), ReferenceOutputs(h1, cpu)
    start = time.perf_counter()
    trainings = 0
    for lambda_c in (0.0, 0.25, 0.5, 0.75, 1.0):
        for loss_class in (BCCrossEntropyLoss, StrictImitationCrossEntropyLoss):
            model = copy.deepcopy(h2)
            train_compatible_model(h1, model, train, loss_class=loss_class, lambda_c=lambda_c,
                                   optimizer_class=torch.optim.SGD, optimizer_kwargs={"lr": 0.1},
                                   number_of_epochs=EPOCHS, reference_outputs=references[0])
            evaluate_models(model, train, references[0])
            evaluate_models(model, test, references[1])
            trainings += 1
    wall = time.perf_counter() - start
    steps = trainings * EPOCHS * len(train)
    eval_batches = trainings * (len(train) + len(test))
    h1_target = 2 * (len(train) + len(test))
    print(f"engine reference workload: {trainings} trainings x {EPOCHS} epochs, batch 32, "
          f"{len(train)} train / {len(test)} test batches")
    print(f"wall time            {wall:8.2f} s")
    print(f"h1 forward calls     {CALLS['h1']:8d}   (target <= {h1_target})")
    print(f"h2 forward calls     {CALLS['h2']:8d}   (steps + evaluation batches = {steps + eval_batches})")
    ok = CALLS["h1"] <= h1_target and abs(CALLS["h2"] - (steps + eval_batches)) <= 0.02 * (steps + eval_batches)
    print("targets met" if ok else "TARGETS MISSED")


if __name__ == "__main__":
    main()
