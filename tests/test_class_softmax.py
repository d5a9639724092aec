"""Softmax over a few classes in the faster layout: the same values and gradients, and when it is used."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

from backwardcompatibilityml import class_softmax
from backwardcompatibilityml.engine.stacking import _flat_rows
from backwardcompatibilityml.outputs import log_probabilities


class KernelInputs(TorchDispatchMode):
    """The tensors handed to ATen's softmax kernels inside the ``with`` block."""

    def __init__(self):
        super().__init__()
        self.inputs = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func in (torch.ops.aten._log_softmax.default, torch.ops.aten._softmax.default):
            self.inputs.append(args[0])
        return func(*args, **(kwargs or {}))


@pytest.fixture
def avx512(monkeypatch):
    """As on an AVX-512 CPU (64-byte registers), whatever this machine has."""
    monkeypatch.setattr(class_softmax, "_register_bytes", lambda: 64)


PAIRS = [(class_softmax.log_softmax, F.log_softmax), (class_softmax.softmax, F.softmax)]


@pytest.mark.parametrize("ours, torchs", PAIRS)
@pytest.mark.parametrize("shape, layout", [
    ((1344, 10), "rows"), ((300, 3), "rows"), ((256, 15), "rows"), ((42, 32, 10), "rows"), ((336, 4, 10), "rows"),
    ((42, 32, 10), "feature-major"), ((1344, 10), "feature-major"), ((42, 8, 10), "feature-major"),
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
    (torch.randn(1344), 0, "one dimension"),
    (torch.randn(1344, 10, device="meta"), 1, "not on the CPU"),
])
def test_torchs_layout_is_kept_where_it_is_as_fast(avx512, tensor, dim, why):
    assert not class_softmax.class_major(tensor, dim), why
    if tensor.device.type == "cpu":
        got = class_softmax.log_softmax(tensor, dim=dim)
        assert torch.equal(got, F.log_softmax(tensor, dim=dim)) and got.stride() == F.log_softmax(
            tensor, dim=dim).stride()


@pytest.mark.parametrize("shape, layout, expected_stride", [
    # Class-major within each member and 32 rows fill a register: computed in place, in the (K, C, N) memory.
    ((42, 32, 10), "feature-major", (320, 1, 32)),
    # 8 rows fill half a register: the classes go first, every row behind them (one copy, (C, K, N)).
    ((42, 8, 10), "feature-major", (8, 1, 336)),
    ((42, 32, 10), "rows", (32, 1, 1344)),
    ((1344, 10), "rows", (1, 1344)),
])
def test_the_class_major_layout_puts_every_row_behind_the_classes(avx512, shape, layout, expected_stride):
    x = torch.randn(*shape)
    if layout == "feature-major":
        x = x.transpose(-1, -2).contiguous().transpose(-1, -2)
    for function in (class_softmax.log_softmax, class_softmax.softmax):
        with KernelInputs() as kernel:
            got = function(x, dim=-1)
        assert got.stride() == expected_stride
        (given,) = kernel.inputs
        # Where x is class-major per member, the kernel reads x's own memory as it is (contiguous: no
        # copy); elsewhere it is handed a permuted view with the classes first (the kernel copies it).
        in_place = (layout, shape[1]) == ("feature-major", 32)
        assert given.is_contiguous() == in_place and given.data_ptr() == x.data_ptr()
        assert given.shape[0 if not in_place else 1] == shape[-1]  # the classes' dimension it reduces


def test_laid_out_as_copies_only_when_the_strides_differ():
    like = torch.randn(4, 10, 32).transpose(1, 2)  # (K, N, C) over (K, C, N) memory
    rows = torch.randn(4, 32, 10)
    got = class_softmax.laid_out_as(rows, like)
    assert got.stride() == like.stride() and torch.equal(got, rows) and got.data_ptr() != rows.data_ptr()
    assert class_softmax.laid_out_as(got, like) is got
    double = class_softmax.laid_out_as(rows.double(), like)
    assert double.dtype == torch.float64 and double.stride() == like.stride()  # the tensor's dtype is kept
    expanded = torch.randn(4, 1, 10).expand(4, 32, 10)  # not dense: nothing to copy towards
    assert class_softmax.laid_out_as(rows, expanded) is rows
    with pytest.raises(ValueError, match=r"shape \(4, 32, 10\) cannot take the layout of shape \(4, 10, 32\)"):
        class_softmax.laid_out_as(rows, rows.transpose(1, 2))


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
