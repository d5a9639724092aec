"""Log-softmax over the class dimension: PyTorch's last-dimension kernel against the class-major layout.

For each shape, one thread, best of ``--repeats`` timings of ``--calls`` calls
each: the forward alone and forward with backward (a weighted sum as the
loss), with ``F.log_softmax(x, dim=-1)`` and with the class-major form
``F.log_softmax(x.movedim(-1, 0), dim=0).movedim(0, -1)`` (every row behind
the classes; the copy included). The ratio is last-dimension time over class-major time (above 1:
class-major is faster); the last column says which one
``backwardcompatibilityml.class_softmax.log_softmax`` takes on this machine.

Usage: ``python benchmarks/bench_class_softmax.py [--repeats 5] [--calls 200]``
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from backwardcompatibilityml import class_softmax  # noqa: E402

SHAPES = [(32, 10), (128, 10), (320, 10), (1344, 10), (42, 32, 10), (1344, 2), (1344, 16), (1344, 100)]


def last_dim(x: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(x, dim=-1)


def class_major(x: torch.Tensor) -> torch.Tensor:
    return F.log_softmax(x.movedim(-1, 0), dim=0).movedim(0, -1)


def best_time(function, repeats: int, calls: int) -> float:
    """Best of ``repeats`` mean times of ``calls`` calls, in microseconds."""
    for _ in range(10):
        function()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            function()
        best = min(best, (time.perf_counter() - start) / calls * 1e6)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--calls", type=int, default=200)
    args = parser.parse_args()
    torch.set_num_threads(1)
    print(f"1 thread, CPU capability {torch.backends.cpu.get_cpu_capability()}, best of {args.repeats} x "
          f"{args.calls} calls; times in us")
    print(f"   {'shape':>14} {'forward: last':>14} {'class-major':>12} {'ratio':>6}   {'fwd+bwd: last':>14} "
          f"{'class-major':>12} {'ratio':>6}   {'used':>11}")
    for shape in SHAPES:
        torch.manual_seed(0)
        x, weights = torch.randn(*shape), torch.randn(*shape)
        times = []
        for function in (last_dim, class_major):
            leaf = x.clone().requires_grad_()

            def forward_backward(function=function, leaf=leaf):
                (function(leaf) * weights).sum().backward()

            with torch.no_grad():
                forward = best_time(lambda function=function: function(x), args.repeats, args.calls)
            times.append((forward, best_time(forward_backward, args.repeats, args.calls)))
        (f_last, b_last), (f_major, b_major) = times
        used = "class-major" if class_softmax.class_major(x, -1) else "last-dim"
        print(f"   {str(shape):>14} {f_last:>14.1f} {f_major:>12.1f} {f_last / f_major:>5.2f}x   {b_last:>14.1f} "
              f"{b_major:>12.1f} {b_last / b_major:>5.2f}x   {used:>11}", flush=True)
    fused_layout(args.repeats, args.calls)


def fused_layout(repeats: int, calls: int) -> None:
    """The vectorized executor's case: logits ``(K, N, C)`` over ``(K, C, N)`` memory, as its fused layers write them.

    ``class_softmax.log_softmax`` reads that memory in place; its backward is
    timed with the loss's weights laid out as rows (contiguous ``(K, N, C)``)
    and as the output (``class_softmax.laid_out_as``, what the stacked loss
    keeps). Forward and backward of a weighted sum, as in 'fwd+bwd' above.
    """
    print("\n   fused layers' layout, (K, N, C) over (K, C, N) memory: forward and backward of class_softmax.log_softmax")
    print(f"   {'shape':>14} {'weights as rows':>16} {'as the output':>14} {'ratio':>6}")
    for shape in [(42, 32, 10), (42, 8, 10), (10, 32, 10)]:
        torch.manual_seed(0)
        leaf = torch.randn(shape[0], shape[2], shape[1]).requires_grad_()  # (K, C, N)
        rows = torch.randn(*shape)
        with torch.no_grad():
            as_output = class_softmax.laid_out_as(rows, class_softmax.log_softmax(leaf.transpose(1, 2), dim=-1))
        timings = []
        for weights in (rows, as_output):
            def forward_backward(weights=weights):
                (class_softmax.log_softmax(leaf.transpose(1, 2), dim=-1) * weights).sum().backward()

            timings.append(best_time(forward_backward, repeats, calls))
        print(f"   {str(shape):>14} {timings[0]:>16.1f} {timings[1]:>14.1f} {timings[0] / timings[1]:>5.2f}x", flush=True)


if __name__ == "__main__":
    main()
