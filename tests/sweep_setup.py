"""A small, deterministic sweep configuration shared by the sweep tests and their subprocesses."""

from __future__ import annotations

import numpy as np
import torch
from sklearn.datasets import load_digits

from backwardcompatibilityml.loss import BCCrossEntropyLoss, StrictImitationCrossEntropyLoss
from backwardcompatibilityml.sweep_management import SweepManager
from conftest import MLP, make_batches, train_plain


def digits_sets(n_train=240, n_test=80, batch=24):
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], data.target[order]
    train = make_batches(x[:n_train], y[:n_train], batch)
    test = make_batches(x[n_train:n_train + n_test], y[n_train:n_train + n_test], 40, first_id=n_train)
    return train, test


def build_manager(folder, epochs=2, stepsize=0.25, h2=None, **kwargs):
    """The shared small sweep; sequential unless ``executor=`` says otherwise (these tests watch jobs one by one)."""
    kwargs.setdefault("executor", "sequential")
    torch.manual_seed(0)
    train, test = digits_sets()
    h1 = train_plain(MLP(64, 6, 10), train, epochs=2)
    h2 = h2 if h2 is not None else MLP(64, 24, 10)
    return SweepManager(
        folder, epochs, h1, h2, train, test, 24, 40,
        torch.optim.SGD, {"lr": 0.05},
        BCCrossEntropyLoss, StrictImitationCrossEntropyLoss,
        lambda_c_stepsize=stepsize, **kwargs,
    )


if __name__ == "__main__":  # used by the crash test: run a long sweep until killed
    import sys

    manager = build_manager(sys.argv[1], epochs=int(sys.argv[2]), stepsize=0.1)
    manager.start_sweep_synchronous()
