"""Softmax and log-softmax over the class dimension, in the faster of the two memory layouts.

PyTorch's CPU kernel for a softmax over the *last* dimension vectorises along
that dimension. With fewer classes than one SIMD register holds (16 float32
values with AVX-512, 8 with AVX2) it runs a slow partial-register path for
every row: for 1344 rows of 10 classes (a K = 42 stack of batches of 32) the
forward takes about 220 us and forward with backward about 370 us on one
AVX-512 thread (PyTorch 2.13). Over a *leading* dimension the kernel
vectorises along the rows instead; the same values then take about 35 us and
135 us, copies included.

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

__all__ = ["log_softmax", "softmax", "class_major", "MIN_ROWS"]

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
    if x.device.type != "cpu" or x.dim() < 2 or dim not in (-1, x.dim() - 1):
        return False
    register, size = _register_bytes(), x.element_size()
    classes = x.shape[-1]
    return (0 < classes * size < register <= x.shape[-2] * size
            and x.numel() >= MIN_ROWS * classes)


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
