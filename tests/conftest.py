"""Shared fixtures: tiny real datasets from scikit-learn and tiny models."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn
from sklearn.datasets import load_breast_cancer, load_digits


class MLP(nn.Module):
    """A small multi-layer perceptron returning logits (or the triple when asked)."""

    def __init__(self, n_in: int, n_hidden: int, n_out: int, triple: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))
        self.triple = triple

    def forward(self, x):
        logits = self.net(x)
        if self.triple:
            return logits, torch.softmax(logits, dim=1), torch.log_softmax(logits, dim=1)
        return logits


class BinaryMLP(nn.Module):
    """A small binary classifier returning probabilities of shape (N,) or (N, 1)."""

    def __init__(self, n_in: int, n_hidden: int, column: bool = False) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, 1))
        self.column = column

    def forward(self, x):
        p = torch.sigmoid(self.net(x))
        return p if self.column else p[:, 0]


class CountingModel(nn.Module):
    """Wraps a model and counts its forward calls."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.model(x)


def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, first_id: int = 0, y_dtype=torch.long):
    """Split arrays into a list of (instance_ids, inputs, targets) batches."""
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=y_dtype)
    ids = torch.arange(first_id, first_id + len(y))
    return [(ids[i:i + batch_size], xt[i:i + batch_size], yt[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def train_plain(model: nn.Module, batches, epochs: int = 5, lr: float = 0.01, binary: bool = False):
    """Train a model with its plain loss (to make a reasonable h1)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for _, x, y in batches:
            optimizer.zero_grad()
            out = model(x)
            if binary:
                loss = nn.functional.binary_cross_entropy(out.reshape(-1), y.float())
            else:
                loss = nn.functional.cross_entropy(out if isinstance(out, torch.Tensor) else out[0], y)
            loss.backward()
            optimizer.step()
    model.eval()
    return model


@pytest.fixture(scope="session")
def digits_data():
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    rng = np.random.default_rng(0)
    order = rng.permutation(len(x))
    return x[order], data.target[order]


@pytest.fixture
def digits_small(digits_data):
    """(h1, h2, training_set, test_set) on 300 + 100 digits; h1 trained a little, h2 fresh."""
    x, y = digits_data
    torch.manual_seed(0)
    train = make_batches(x[:300], y[:300], 32)
    test = make_batches(x[300:400], y[300:400], 50, first_id=300)
    h1 = train_plain(MLP(64, 8, 10), train, epochs=3)
    h2 = MLP(64, 32, 10)
    return h1, h2, train, test


@pytest.fixture(scope="session")
def cancer_data():
    data = load_breast_cancer()
    x = data.data
    x = ((x - x.mean(0)) / x.std(0)).astype(np.float32)
    return x, data.target


@pytest.fixture(scope="session")
def crash_harness():
    """Forks sweeps that stall inside a chosen write and SIGKILLs them there (see tests/crash_child.py)."""
    from crash_child import CrashHarness

    with CrashHarness() as harness:
        yield harness
