"""Workloads shared by the benchmark scripts."""

from __future__ import annotations

import collections

import numpy as np
import torch
import torch.nn as nn
from sklearn.datasets import load_digits

CALLS: "collections.Counter[str]" = collections.Counter()


class Counted(nn.Module):
    """Counts forward calls under a name; copies made with deepcopy count under the same name."""

    def __init__(self, name: str, model: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.model = model

    def forward(self, x):
        CALLS[self.name] += 1
        return self.model(x)


def mlp(n_in: int, n_hidden: int, n_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(n_in, n_hidden), nn.ReLU(), nn.Linear(n_hidden, n_out))


def batches(x, y, batch_size, first_id=0):
    xt, yt = torch.tensor(x, dtype=torch.float32), torch.tensor(y, dtype=torch.long)
    ids = torch.arange(first_id, first_id + len(y))
    return [(ids[i:i + batch_size], xt[i:i + batch_size], yt[i:i + batch_size]) for i in range(0, len(y), batch_size)]


def digits_reference_workload(batch_size: int = 32):
    """Digits (1437 train / 360 test), h1 = MLP with 16 hidden units trained 2 epochs, h2 = MLP with 64."""
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    order = np.random.default_rng(0).permutation(len(x))
    x, y = x[order], data.target[order]
    cut = int(0.8 * len(x))
    train, test = batches(x[:cut], y[:cut], batch_size), batches(x[cut:], y[cut:], batch_size, first_id=cut)
    torch.manual_seed(0)
    h1 = mlp(64, 16, 10)
    optimizer = torch.optim.Adam(h1.parameters(), lr=0.01)
    for _ in range(2):
        for _, xb, yb in train:
            optimizer.zero_grad()
            nn.functional.cross_entropy(h1(xb), yb).backward()
            optimizer.step()
    h1.eval()
    return Counted("h1", h1), Counted("h2", mlp(64, 64, 10)), train, test


class TripleOutputs(nn.Module):
    """Wraps a logits model to return ``(logits, softmax, log_softmax)``, the earlier tool's convention."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        logits = self.model(x)
        return logits, torch.softmax(logits, dim=-1), torch.log_softmax(logits, dim=-1)


def ids_as_lists(batches):
    """The batches with their ids as Python lists (the earlier tool looks ids up with ``list.index``)."""
    return [(ids.tolist(), x, y) for ids, x, y in batches]
