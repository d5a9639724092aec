"""Softmax and log-softmax over the class dimension, in the faster of the two memory layouts.

PyTorch's CPU kernel for a softmax over the *last* dimension vectorises along
that dimension. With fewer classes than one SIMD register holds (16 float32
values with AVX-512, 8 with AVX2) it runs a slow partial-register path for
every row: for 1344 rows of 10 classes (a K = 42 stack of batches of 32) the
forward took 244 us and forward with backward 469 us on one AVX-512 thread
(PyTorch 2.13, ``benchmarks/bench_class_softmax.py``). Over a *leading*
dimension the kernel vectorises along the rows instead; the same values
then took 35 us and 199 us, copies included.

:func:`log_softmax` and :func:`softmax` take the class dimension last, as
``F.log_softmax(x, dim=-1)`` does, and return the same values (to rounding);
on a CPU, with fewer classes than a register holds and at least
:data:`MIN_ROWS` rows, they compute them class-major and return a
permuted view. Elsewhere (a GPU, many classes, few rows, an unmeasured
instruction set) they call PyTorch's function as it is.

Class-major means with the classes leading and every row behind them: one
copy of ``x`` as ``(C, rows)``. A tensor already held class-major within
each leading index (a ``(K, N, C)`` transposed view of ``(K, C, N)`` memory,
as the vectorized executor's fused layers write it) is computed in place
where ``N`` fills a register: no copy. The backward pass is fastest when
the incoming gradient has the output's layout (see :func:`laid_out_as`).
"""

from __future__ import annotations

import functools
from typing import Tuple

import torch
import torch.nn.functional as F

__all__ = ["log_softmax", "softmax", "class_major", "class_major_rows", "laid_out_as", "MIN_ROWS"]

#: Fewest rows for which the class-major layout is used: at 256 rows of 7 to 15 classes it was already
#: 1.3x to 2x faster (forward and backward, one thread), at 32 to 128 rows about as fast or slower.
MIN_ROWS = 256

# Bytes of one SIMD register of the kernels PyTorch dispatches to, by ``torch.backends.cpu.get_cpu_capability()``.
_REGISTER_BYTES = {"AVX512": 64, "AVX2": 32}


@functools.lru_cache(maxsize=None)
def _register_bytes() -> int:
    return _REGISTER_BYTES.get(torch.backends.cpu.get_cpu_capability(), 0)


def class_major(x: torch.Tensor, dim: int) -> bool:
    """Whether a softmax of ``x`` over ``dim`` is faster computed with the class dimension leading.

    True on a CPU when ``dim`` is the last of at least two dimensions, the
    classes fill less than one SIMD register and there are at least
    :data:`MIN_ROWS` rows (positions along every other dimension).
    """
    if x.dim() < 2 or dim not in (-1, x.dim() - 1):
        return False
    return _faster(x.device, x.shape[-1], x.numel() // max(1, x.shape[-1]), x.element_size())


def class_major_rows(rows: int, classes: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :func:`log_softmax` computes ``rows`` rows of ``classes`` class-major (a 2-D ``(rows, classes)``)."""
    return _faster(device, classes, rows, dtype.itemsize)


def _faster(device: torch.device, classes: int, rows: int, element_size: int) -> bool:
    """The rule of :func:`class_major`."""
    return device.type == "cpu" and 0 < classes * element_size < _register_bytes() and rows >= MIN_ROWS


def _classes_leading(x: torch.Tensor) -> Tuple[torch.Tensor, int]:
    """``x`` ``(..., C)`` as a view with the classes before the rows, and the classes' dimension in it.

    The kernel vectorises along the dimensions behind the classes: where
    ``x`` is already class-major within each leading index and the
    dimension before the classes fills a register, the transposed view is
    used as it is (no copy); otherwise the classes are moved to the front,
    so that all rows lie behind them (the kernel copies them once).
    """
    swapped = x.transpose(-1, -2)
    if swapped.is_contiguous() and x.shape[-2] * x.element_size() >= _register_bytes():
        return swapped, -2
    return x.movedim(-1, 0), 0


def laid_out_as(tensor: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``tensor`` with the memory layout (strides) of ``like``, copied only where that changes the layout.

    The gradient of a class-major softmax's output reaches its backward in
    the layout of what multiplied it (a loss's weights); laid out as the
    output, the backward reads it without a copy.

    Parameters
    ----------
    tensor : Tensor
        The values; their dtype and device are kept.
    like : Tensor
        Of the same shape: the layout to take.

    Returns
    -------
    Tensor
        ``tensor`` itself when its strides are ``like``'s, or when ``like``
        has no dense layout to copy towards (an expanded view); else a copy
        with ``like``'s strides.

    Raises
    ------
    ValueError
        If the shapes differ.
    """
    if tensor.shape != like.shape:
        raise ValueError(f"tensor of shape {tuple(tensor.shape)} cannot take the layout of shape {tuple(like.shape)}")
    if tensor.stride() == like.stride():
        return tensor
    laid_out = torch.empty_like(like, dtype=tensor.dtype, device=tensor.device)  # like's strides where it is dense
    return tensor if laid_out.stride() == tensor.stride() else laid_out.copy_(tensor)


def log_softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``F.log_softmax(x, dim)``, computed class-major where :func:`class_major` says so.

    Parameters
    ----------
    x : Tensor
        Scores, for example logits of shape ``(N, C)`` or ``(K, N, C)``.
    dim : int
        The class dimension.

    Returns
    -------
    Tensor
        Of ``x``'s shape; a permuted (non-contiguous) view when computed class-major.
    """
    if class_major(x, dim):
        leading, at = _classes_leading(x)
        return F.log_softmax(leading, dim=at).movedim(at, -1)
    return F.log_softmax(x, dim=dim)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``F.softmax(x, dim)``, computed class-major where :func:`class_major` says so (see :func:`log_softmax`)."""
    if class_major(x, dim):
        leading, at = _classes_leading(x)
        return F.softmax(leading, dim=at).movedim(at, -1)
    return F.softmax(x, dim=dim)
