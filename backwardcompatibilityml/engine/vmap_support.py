"""When K jobs can train as one stacked model, and how many fit in memory at once.

Each ``*_reason`` function returns None when stacking applies, else a
sentence saying why not; :class:`~.vectorized.VectorizedExecutor` then falls
back to one training at a time and reports the sentence.
"""

from __future__ import annotations

import copy
import math
import os
import traceback
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import torch

from ..data import iterate_batches
from ..evaluation import labels_and_confidences
from ..outputs import binary_probabilities, log_probabilities
from ..random_state import kept_random_state
from .families import LossFamily
from .fused_forward import fused_forward, fused_matches_vmap
from .stacking import StackedModel

__all__ = [
    "ELEMENTWISE_OPTIMIZERS", "optimizer_reason", "loss_reason", "model_reason", "first_batch", "trace_reason",
    "fused_applies",
    "member_bytes", "default_memory_budget", "chunk_sizes", "family_losses",
]

# Optimizers whose update of a tensor is element-wise (per-element state, per-step
# scalars only): one of them over K stacked members is exactly K separate ones.
ELEMENTWISE_OPTIMIZERS: Tuple[type, ...] = (
    torch.optim.SGD, torch.optim.Adam, torch.optim.AdamW, torch.optim.RMSprop, torch.optim.Adagrad,
    torch.optim.Adadelta, torch.optim.Adamax, torch.optim.NAdam, torch.optim.RAdam, torch.optim.Rprop,
    torch.optim.ASGD,
)

# Tensors of optimizer state per parameter tensor (an upper bound where options add some).
_STATE_TENSORS = {
    torch.optim.SGD: 1, torch.optim.Adam: 3, torch.optim.AdamW: 3, torch.optim.RMSprop: 3,
    torch.optim.Adagrad: 1, torch.optim.Adadelta: 2, torch.optim.Adamax: 2, torch.optim.NAdam: 2,
    torch.optim.RAdam: 2, torch.optim.Rprop: 2, torch.optim.ASGD: 1,
}


def optimizer_reason(optimizer_class: type) -> Optional[str]:
    """None for an optimizer in :data:`ELEMENTWISE_OPTIMIZERS` (the class itself, not a subclass)."""
    if optimizer_class in ELEMENTWISE_OPTIMIZERS:
        return None
    return (
        f"the optimizer {getattr(optimizer_class, '__name__', optimizer_class)!s} is not known to update "
        "element by element (stacking is exact only for SGD, Adam, AdamW, RMSprop, Adagrad, Adadelta, "
        "Adamax, NAdam, RAdam, Rprop and ASGD)"
    )


def family_losses(families: Sequence[LossFamily], h1: Any, h2: Any) -> Dict[str, Any]:
    """One loss object per family (``lambda_c`` 0), to read its functional arguments and target rules."""
    return {family.name: family.loss_class(h1, h2, 0.0, **dict(family.loss_kwargs)) for family in families}


def loss_reason(families: Sequence[LossFamily], h1: Any, h2: Any) -> Optional[str]:
    """None when every family's loss is built on the functional core with a reduced loss."""
    for family in families:
        is_functional = getattr(family.loss_class, "is_functional", None)
        if not callable(is_functional) or not is_functional():
            return (
                f"the loss {family.loss_class.__name__} of the family {family.name!r} is not built on "
                "backwardcompatibilityml.loss.functional"
            )
    try:
        losses = family_losses(families, h1, h2)
    except Exception as error:  # the sequential path reports the same error with its own words
        return f"the loss of a family cannot be built ({type(error).__name__}: {error})"
    binaries = {loss.binary for loss in losses.values()}
    if len(binaries) > 1:
        return "the families mix binary and multi-class losses"
    for name, loss in losses.items():
        if loss.reduction == "none":
            return f"the loss of the family {name!r} has reduction='none' (training needs a scalar loss)"
    return None


def model_reason(h2: torch.nn.Module) -> Optional[str]:
    """None when h2 is a module with trainable parameters and no backward hooks (vmap does not run those)."""
    if not isinstance(h2, torch.nn.Module):
        return f"h2 is a {type(h2).__name__}, not a torch.nn.Module"
    if not any(p.requires_grad for p in h2.parameters()):
        return "h2 has no trainable parameters"
    from torch.nn.modules import module as module_hooks

    if getattr(module_hooks, "_global_backward_hooks", None) or getattr(
            module_hooks, "_global_backward_pre_hooks", None):
        return "backward hooks are registered for every module (torch.func.vmap does not run them)"
    for name, sub in h2.named_modules():
        if getattr(sub, "_backward_hooks", None) or getattr(sub, "_backward_pre_hooks", None):
            return f"h2{'.' + name if name else ''} has a backward hook (torch.func.vmap does not run it)"
    return None


def first_batch(dataset: Any, device: torch.device) -> Optional[Tuple[Any, Any, Any]]:
    """The first ``(ids, inputs, targets)`` batch of ``dataset`` on ``device`` (one pass started), or None if empty."""
    for batch in iterate_batches(dataset, device):
        return batch
    return None


def trace_reason(h2: torch.nn.Module, batch: Optional[Tuple[Any, Any, Any]], device: torch.device, binary: bool,
                 discriminant_pivot: float) -> Tuple[Optional[str], int]:
    """Try two stacked members on the first training batch: forward, backward and evaluation.

    ``batch`` is that batch (:func:`first_batch`; None for an empty training
    set). Runs with the random state forked (nothing of the caller's state
    moves) and never touches ``h2``.

    Returns
    -------
    reason : str or None
        Why vmap cannot run h2, or None.
    activation_bytes : int
        Bytes of the layer outputs of one member on that batch (a memory estimate).
    """
    with kept_random_state(device):
        if batch is None:
            return None, 0
        _, inputs, _ = batch
        try:
            stacked = StackedModel(h2, 2, device)
            adapt = binary_probabilities if binary else log_probabilities
            stacked.train(True)
            out = stacked.stacked_forward(lambda output: adapt(output, "h2"))(stacked.params, stacked.buffers, inputs)
            out.sum().backward()
            stacked.train(False)
            with torch.no_grad():
                stacked.stacked_forward(lambda output: labels_and_confidences(output, discriminant_pivot, "h2"))(
                    stacked.params, stacked.buffers, inputs)
        except Exception as error:
            last = traceback.extract_tb(error.__traceback__)[-1:]
            where = f" at {last[0].name}()" if last else ""
            return f"torch.func.vmap cannot run h2 ({type(error).__name__}{where}: {_first_line(error)})", 0
        activation = _activation_bytes(stacked.module, inputs)
        del out
        try:
            reason = _replaced_buffer(h2, inputs, device) or _gradient_mismatch(stacked, h2, inputs, device, adapt)
        except Exception as error:  # a copy that does not fit, say: train one model at a time
            reason = f"h2 could not be checked under torch.func.vmap ({type(error).__name__}: {_first_line(error)})"
        return (reason, 0) if reason is not None else (None, activation)


def _replaced_buffer(h2: torch.nn.Module, inputs: Any, device: torch.device) -> Optional[str]:
    """Why vmap would lose a buffer that h2's ``forward`` replaces (``self.mean = ...``), or None.

    ``functional_call`` swaps the stacked buffers in for the forward and puts
    them back after it: updates made in place (BatchNorm's) reach them, a new
    tensor assigned to the attribute does not.
    """
    model = copy.deepcopy(h2).to(device).train(True)
    before = {name: (sub, key, tensor) for name, sub in model.named_modules()
              for key, tensor in sub._buffers.items() if tensor is not None}
    try:
        with torch.no_grad():
            model(inputs)
    except Exception:
        return None  # the stacked forward ran: the sequential path reports its own errors
    for name, (sub, key, tensor) in before.items():
        if sub._buffers.get(key) is not tensor:
            where = f"{name}.{key}" if name else key
            return f"h2 replaces its buffer {where!r} in forward (torch.func.vmap keeps only in-place updates)"
    return None


def _gradient_mismatch(stacked: StackedModel, h2: torch.nn.Module, inputs: Any, device: torch.device,
                       adapt: Any) -> Optional[str]:
    """Why a member of ``stacked`` (two copies of h2) gets other gradients than h2 on a batch, or None.

    Compared in eval mode (no dropout draws). Under vmap intermediate
    tensors do not report ``requires_grad``: a forward that branches on it,
    or registers a tensor hook only then, computes other gradients than the
    model alone.
    """
    model = copy.deepcopy(h2).to(device).eval()
    with torch.no_grad():  # the train-mode trace moved the members' running statistics: the same here
        for name, buffer in model.named_buffers():
            buffer.copy_(stacked.buffers[name][0])
    for parameter in stacked.params.values():
        parameter.grad = None  # the train-mode trace's gradients
    stacked.train(False)
    try:
        adapt(model(inputs), "h2").sum().backward()
        out = stacked.stacked_forward(lambda output: adapt(output, "h2"))(stacked.params, stacked.buffers, inputs)
        out.sum().backward()
    except Exception:
        return None  # train mode ran above; errors of eval mode are the sequential path's to report
    for name, parameter in model.named_parameters():
        zero = torch.zeros_like(parameter)
        mine = parameter.grad if parameter.grad is not None else zero
        found = stacked.params[name].grad
        found = found[0] if found is not None else zero
        if float((found - mine).abs().max()) > 1e-4 * float(mine.abs().max()) + 1e-6:
            return (f"the gradient of h2's {name!r} differs under torch.func.vmap (a forward that depends on "
                    "requires_grad or registers tensor hooks)")
    return None


def fused_applies(h2: torch.nn.Module, batch: Optional[Tuple[Any, Any, Any]], device: torch.device) -> bool:
    """Whether the vmap-free :class:`~.fused_forward.FusedForward` knows h2 and matches vmap on the first batch.

    ``batch`` is the first training batch, as for :func:`trace_reason`. Call
    it after :func:`trace_reason` has accepted h2. Runs with the random state
    forked and never touches ``h2``.
    """
    with kept_random_state(device):
        if batch is None:
            return False
        stacked = StackedModel(h2, 2, device)
        fused = fused_forward(stacked.module)
        return fused is not None and fused_matches_vmap(stacked, fused, batch[1])


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:200] if text else ""


def _activation_bytes(module: torch.nn.Module, inputs: Any) -> int:
    """Bytes of every leaf module's output in one forward of one member."""
    total = [0]

    def count(_module: Any, _inputs: Any, output: Any) -> None:
        for tensor in output if isinstance(output, (tuple, list)) else (output,):
            if isinstance(tensor, torch.Tensor):
                total[0] += tensor.numel() * tensor.element_size()

    leaves = [m for m in module.modules() if not any(True for _ in m.children())]
    handles = [m.register_forward_hook(count) for m in leaves]
    try:
        with torch.no_grad():
            module.train(True)
            module(inputs)
    except Exception:
        return 0
    finally:
        for handle in handles:
            handle.remove()
        module.train(False)
    return total[0]


def member_bytes(h2: torch.nn.Module, optimizer_class: type, optimizer_kwargs: Mapping[str, Any],
                 activation_bytes: int) -> int:
    """Estimated bytes one stacked member needs: parameters, gradients, optimizer state, buffers, activations."""
    parameter_bytes = sum(p.numel() * p.element_size() for p in h2.parameters())
    buffer_bytes = sum(b.numel() * b.element_size() for b in h2.buffers())
    state = _STATE_TENSORS.get(optimizer_class, 3)
    if optimizer_class is torch.optim.SGD and not optimizer_kwargs.get("momentum"):
        state = 0
    # parameters + gradients + state; activations kept for backward plus their gradients
    return parameter_bytes * (2 + state) + buffer_bytes + 3 * activation_bytes


def default_memory_budget(device: torch.device) -> int:
    """Half of the free memory of ``device`` (GPU) or of the machine (CPU); 2 GiB when unknown."""
    if device.type == "cuda":
        try:
            free, _total = torch.cuda.mem_get_info(device)
            return int(free * 0.5)
        except Exception:  # pragma: no cover - no GPU here
            return 2 << 30
    try:
        return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") * 0.5)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return 2 << 30


def chunk_sizes(count: int, largest: int) -> List[int]:
    """Split ``count`` jobs into as few chunks of at most ``largest`` as possible, of near-equal sizes."""
    if count <= 0:
        return []
    largest = max(1, largest)
    chunks = math.ceil(count / largest)
    base, extra = divmod(count, chunks)
    return [base + (1 if i < extra else 0) for i in range(chunks)]
