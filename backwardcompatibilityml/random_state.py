"""The random state a job starts from, and the caller's given back afterwards.

A job's training draws from torch's generators (shuffling, dropout,
initialisation done in ``forward``), and a dataset may draw from Python's
``random`` module or numpy's global generator (augmentation in
``__getitem__`` with a loader that has no workers). :func:`seeded_random_state`
seeds all three from the sweep's seed before h1's pass over the data and
before every job, so that every job, and a resumed sweep, sees the same
draws; :func:`kept_random_state` gives the caller its
own states back afterwards. These generators are process-wide: while a sweep
trains in a background thread, draws made elsewhere in the process come from
the same generators (see docs/engine.md, Jobs).
"""

from __future__ import annotations

import contextlib
import random
from typing import Iterator

import numpy as np
import torch

__all__ = ["kept_random_state", "seeded_random_state"]

_SEED_RANGE = 2 ** 64  # torch's seeds: a negative seed is read modulo 2**64, as torch.manual_seed does


@contextlib.contextmanager
def kept_random_state(device: torch.device) -> Iterator[None]:
    """Give the caller's random state back afterwards.

    Covers torch's CPU generator (and ``device``'s on CUDA), Python's
    ``random`` module and numpy's global generator (``np.random``).
    """
    devices = []
    if device.type == "cuda":
        devices = [device.index if device.index is not None else torch.cuda.current_device()]
    python_state, numpy_state = random.getstate(), np.random.get_state()
    try:
        with torch.random.fork_rng(devices=devices):
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)


@contextlib.contextmanager
def seeded_random_state(seed: int, device: torch.device) -> Iterator[None]:
    """Seed torch's, Python's and numpy's generators (for a job); the caller's states are kept (see above).

    Parameters
    ----------
    seed : int
        The sweep's seed, in torch's range ``[-2**63, 2**64 - 1]``, read
        modulo ``2**64`` for all three (as torch reads a negative seed).
        Python's ``random`` takes it as it is; numpy takes a key mixed from
        it by :class:`numpy.random.SeedSequence`, since both generators are
        the same Mersenne Twister seeded the same way from the same integer
        (equal streams, perfectly correlated augmentations, for seed 1).
    device : torch.device
        The device the models run on (its CUDA generator is kept too).
    """
    with kept_random_state(device):
        torch.manual_seed(seed)
        value = seed % _SEED_RANGE
        random.seed(value)
        np.random.seed(np.random.SeedSequence(value).generate_state(4))
        yield
