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
transposed view. Elsewhere (a GPU, many classes, few rows, an unmeasured
instruction set) they call PyTorch's function as it is.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

__all__ = ["log_softmax", "softmax", "class_major", "class_major_rows", "MIN_ROWS"]

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
    classes fill less than one SIMD register, the dimension before them
    fills at least one (the kernel then vectorises along it) and there are
    at least :data:`MIN_ROWS` rows (positions along every other dimension).
    """
    if x.dim() < 2 or dim not in (-1, x.dim() - 1):
        return False
    return _faster(x.device, x.shape[-1], x.shape[-2], x.numel() // max(1, x.shape[-1]), x.element_size())


def class_major_rows(rows: int, classes: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether :func:`log_softmax` computes ``rows`` rows of ``classes`` class-major (a 2-D ``(rows, classes)``)."""
    return _faster(device, classes, rows, rows, dtype.itemsize)


def _faster(device: torch.device, classes: int, before: int, rows: int, element_size: int) -> bool:
    """The rule of :func:`class_major`; ``before`` is the size of the dimension before the classes."""
    register = _register_bytes()
    return (device.type == "cpu" and 0 < classes * element_size < register <= before * element_size
            and rows >= MIN_ROWS)


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
        Of ``x``'s shape; a transposed (non-contiguous) view when computed class-major.
    """
    if class_major(x, dim):
        return F.log_softmax(x.transpose(-1, -2), dim=-2).transpose(-1, -2)
    return F.log_softmax(x, dim=dim)


def softmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """``F.softmax(x, dim)``, computed class-major where :func:`class_major` says so (see :func:`log_softmax`)."""
    if class_major(x, dim):
        return F.softmax(x.transpose(-1, -2), dim=-2).transpose(-1, -2)
    return F.softmax(x, dim=dim)
