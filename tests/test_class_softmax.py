"""Softmax over a few classes in the faster layout: the same values and gradients, and when it is used."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from backwardcompatibilityml import class_softmax
from backwardcompatibilityml.engine.stacking import _flat_rows
from backwardcompatibilityml.outputs import log_probabilities


@pytest.fixture
def avx512(monkeypatch):
    """As on an AVX-512 CPU (64-byte registers), whatever this machine has."""
    monkeypatch.setattr(class_softmax, "_register_bytes", lambda: 64)


PAIRS = [(class_softmax.log_softmax, F.log_softmax), (class_softmax.softmax, F.softmax)]


@pytest.mark.parametrize("ours, torchs", PAIRS)
@pytest.mark.parametrize("shape, layout", [
    ((1344, 10), "rows"), ((300, 3), "rows"), ((256, 15), "rows"), ((42, 32, 10), "rows"),
    ((42, 32, 10), "feature-major"), ((1344, 10), "feature-major"),
])
def test_class_major_values_and_gradients_equal_torchs(avx512, ours, torchs, shape, layout):
    torch.manual_seed(0)
    x = torch.randn(*shape) * 4
    if layout == "feature-major":  # a transposed view of (..., C, N) memory, as the fused layers give
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    assert class_softmax.class_major(x, -1) and class_softmax.class_major(x, x.dim() - 1)
    weights = torch.randn(*shape)
    mine, theirs = x.clone().requires_grad_(), x.clone().requires_grad_()
    got, want = ours(mine, dim=-1), torchs(theirs, dim=-1)
    assert got.shape == want.shape and not got.is_contiguous()  # computed class-major: a transposed view
    torch.testing.assert_close(got, want, rtol=0, atol=2e-6)
    (got * weights).sum().backward()
    (want * weights).sum().backward()
    torch.testing.assert_close(mine.grad, theirs.grad, rtol=0, atol=2e-6)


@pytest.mark.parametrize("tensor, dim, why", [
    (torch.randn(255, 10), 1, "fewer than MIN_ROWS rows"),
    (torch.randn(1344, 16), 1, "16 float32 classes fill a 64-byte register"),
    (torch.randn(1344, 10, dtype=torch.float64), 1, "10 float64 classes fill it"),
    (torch.randn(1344, 10), 0, "not the last dimension"),
    (torch.randn(42, 10, 32), 1, "not the last dimension (3-D)"),
    (torch.randn(336, 4, 10), 2, "4 rows before the classes fill no register"),
    (torch.randn(1344), 0, "one dimension"),
    (torch.randn(1344, 10, device="meta"), 1, "not on the CPU"),
])
def test_torchs_layout_is_kept_where_it_is_as_fast(avx512, tensor, dim, why):
    assert not class_softmax.class_major(tensor, dim), why
    if tensor.device.type == "cpu":
        got = class_softmax.log_softmax(tensor, dim=dim)
        assert torch.equal(got, F.log_softmax(tensor, dim=dim)) and got.stride() == F.log_softmax(
            tensor, dim=dim).stride()


def test_an_unmeasured_instruction_set_keeps_torchs_layout(monkeypatch):
    monkeypatch.setattr(class_softmax, "_register_bytes", lambda: 0)
    assert not class_softmax.class_major(torch.randn(1344, 10), 1)


def test_the_register_size_follows_torchs_cpu_capability(monkeypatch):
    class_softmax._register_bytes.cache_clear()
    try:
        for capability, size in (("AVX512", 64), ("AVX2", 32), ("DEFAULT", 0)):
            monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda c=capability: c)
            class_softmax._register_bytes.cache_clear()
            assert class_softmax._register_bytes() == size
    finally:
        monkeypatch.undo()
        class_softmax._register_bytes.cache_clear()


def test_log_probabilities_of_many_rows_are_computed_class_major(avx512):
    logits = torch.randn(512, 10)
    got = log_probabilities(logits, "h2")
    assert got.stride() == (1, 512)
    torch.testing.assert_close(got, F.log_softmax(logits, dim=1), rtol=0, atol=2e-6)


def test_flat_rows_of_a_feature_major_stack_are_class_major_where_the_softmax_is(avx512):
    memory = torch.randn(12, 10, 32)  # (K, C, N), as a fused linear layer writes it: 384 rows
    stacked = memory.transpose(1, 2)  # (K, N, C)
    flat = _flat_rows(stacked)
    assert flat.shape == (12 * 32, 10) and flat.stride() == (1, 12 * 32)  # no second copy for the softmax
    assert torch.equal(flat, stacked.reshape(12 * 32, 10))
    for other in (torch.randn(6, 10, 32),  # 192 rows: the last-dimension kernel, rows end to end
                  torch.randn(12, 16, 32),  # 16 classes fill a register
                  torch.empty(12, 10, 32, device="meta")):  # not a CPU
        assert _flat_rows(other.transpose(1, 2)).stride() == (other.shape[1], 1)
    row_major = torch.randn(12, 32, 10)
    assert _flat_rows(row_major).data_ptr() == row_major.data_ptr()  # a view, as reshape gives
    column = torch.randn(12, 1, 32).transpose(1, 2)  # binary probabilities (K, N, 1)
    assert _flat_rows(column).shape == (12 * 32, 1) and torch.equal(_flat_rows(column), column.reshape(-1, 1))
