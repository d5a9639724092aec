"""The random state a job starts from: torch's, Python's and numpy's generators, and the caller's kept."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from backwardcompatibilityml.random_state import kept_random_state, seeded_random_state

CPU = torch.device("cpu")


def draws(seed):
    with seeded_random_state(seed, CPU):
        return [random.random() for _ in range(4)], np.random.rand(4).tolist(), torch.rand(4).tolist()


@pytest.mark.parametrize("seed", [0, 1, 2 ** 32 + 7, 2 ** 64 - 1, -2 ** 63])
def test_python_and_numpy_draw_different_streams(seed):
    """Both are a Mersenne Twister seeded alike from one integer: at seed 1 their streams were equal."""
    python, numpy, _torch = draws(seed)
    assert python != numpy
    assert draws(seed) == (python, numpy, _torch), "the same seed, the same draws"


def test_a_negative_seed_is_read_modulo_two_to_the_64_by_all_three():
    assert draws(-1) == draws(2 ** 64 - 1)
    assert draws(-5)[0] != draws(5)[0], "random.seed(-5) alone would equal random.seed(5)"


def test_the_callers_states_come_back_after_an_error():
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    expected = torch.rand(2), random.random(), np.random.rand()
    torch.manual_seed(3)
    random.seed(3)
    np.random.seed(3)
    with pytest.raises(ZeroDivisionError):
        with kept_random_state(CPU):
            torch.rand(5), random.random(), np.random.rand(5)
            with seeded_random_state(9, CPU):
                1 / 0
    got = torch.rand(2), random.random(), np.random.rand()
    assert torch.equal(got[0], expected[0]) and got[1:] == expected[1:]
