"""K copies of h2 as one stacked model: stacked parameters, a stacked forward, per-member states.

:class:`StackedModel` holds every parameter and buffer of h2 with a leading
dimension ``K`` (one slice per member, all starting from the template's
values) and runs all members on one batch with
``torch.func.vmap(torch.func.functional_call(...))``. Gradients flow by
ordinary autograd into the stacked parameters, so one optimizer over them
trains the K members at once; for an element-wise optimizer that is exactly
K separate trainings.

Buffers are stacked too, so a BatchNorm layer keeps per-member running
statistics. Random layers (dropout) draw independently for every member
(``randomness="different"``).

With ``fused=True`` a model made of linear layers and element-wise steps runs
through :class:`~.fused_forward.FusedForward` instead (one matrix product for
all members where they share the input), and no vmap at all. The vectorized
executor asks for it only after :func:`~.fused_forward.fused_matches_vmap`
has accepted the model.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
from torch.func import functional_call, vmap

from ..class_softmax import class_major_rows
from .fused_forward import FusedForward, fused_forward, map_structure

__all__ = ["StackedModel", "RANDOMNESS"]

RANDOMNESS = "different"


class StackedModel:
    """``K`` members of one architecture, trained and run together.

    Parameters
    ----------
    template : torch.nn.Module
        The model every member starts from (never modified).
    size : int
        Number of members ``K``.
    device : torch.device
        Where the stacked tensors live.
    fused : bool, default False
        Run the forward through :func:`~.fused_forward.fused_forward` where
        it knows the model (see :attr:`fused`); vmap otherwise.
    """

    def __init__(self, template: torch.nn.Module, size: int, device: torch.device, fused: bool = False) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self.size = size
        self.device = device
        # A private copy runs the forward: functional_call swaps tensors in and out of
        # the module it is given, and the template is shared with other readers.
        self.module = copy.deepcopy(template).to(device)
        self._template = template  # never run here: member_module copies it, not the module vmap ran
        self.params: Dict[str, torch.Tensor] = {
            name: _stack(p, size, device).requires_grad_(p.requires_grad)
            for name, p in self.module.named_parameters()
        }
        self.buffers: Dict[str, torch.Tensor] = {
            name: _stack(b, size, device) for name, b in self.module.named_buffers()
        }
        self._aliases = _state_aliases(self.module)
        #: The vmap-free forward in use, or None (vmap of ``functional_call``).
        self.fused: Optional[FusedForward] = fused_forward(self.module) if fused else None

    # -- running ------------------------------------------------------------------------
    def stacked_forward(self, head: Callable[[Any], Any],
                        stacked_head: Optional[Callable[[Any], Any]] = None) -> Callable[..., Any]:
        """A function ``(params, buffers, inputs) -> head(member output)`` stacked over the members.

        ``head`` turns a model output into tensors **row by row**: row ``i``
        of every tensor it returns depends only on row ``i`` of the output
        (log-probabilities, labels, confidences). It sees the shapes of a
        single member: under vmap it runs per member; with the fused forward
        the K members' rows are laid end to end as one batch of ``K * N``
        rows and the results are split back, which saves vmap's cost per call.
        Every tensor returned has a leading dimension K.

        ``stacked_head``, when given, does what ``head`` does for all members
        at once: it takes the outputs with their leading dimension K and
        returns ``(K, N, ...)`` tensors. The fused forward then hands it the
        members' outputs as they are, in the fused layers' feature-major
        layout, instead of copying their rows end to end (vmap still runs
        ``head``).
        """
        module = self.module
        fused = self.fused
        if fused is not None:
            if stacked_head is not None:
                return lambda params, buffers, inputs: stacked_head(fused(params, inputs))
            return lambda params, buffers, inputs: _rows_by_member(head, fused(params, inputs))

        def member(params: Dict[str, torch.Tensor], buffers: Dict[str, torch.Tensor], inputs: Any) -> Any:
            return head(functional_call(module, (params, buffers), (inputs,)))

        return vmap(member, in_dims=(0, 0, None), randomness=RANDOMNESS)

    def train(self, mode: bool = True) -> "StackedModel":
        """Put the forward module in training (or eval) mode, for dropout and BatchNorm."""
        self.module.train(mode)
        return self

    def parameters(self) -> List[torch.Tensor]:
        """The stacked parameters, for the optimizer (in ``named_parameters`` order)."""
        return list(self.params.values())

    # -- reading members out ------------------------------------------------------------
    def member_state(self, index: int) -> Dict[str, Any]:
        """A CPU copy of member ``index``'s ``state_dict`` (the template's keys, in its order).

        A module's extra state (``get_extra_state``), shared by the members,
        is copied from the forward module.
        """
        state: Dict[str, Any] = {}
        for key, value in self.module.state_dict().items():
            alias = self._aliases.get(key)
            if alias is None:
                state[key] = copy.deepcopy(value)
                continue
            kind, name = alias
            source = self.params[name] if kind == "param" else self.buffers[name]
            state[key] = source[index].detach().to("cpu", copy=True)
        return state

    def member_module(self, index: int) -> torch.nn.Module:
        """A stand-alone copy of member ``index`` on the device, in eval mode (for metrics that run a model)."""
        # Not a copy of self.module: a forward under vmap may leave batched tensors on it (self.x = h).
        model = copy.deepcopy(self._template).to(self.device)
        with torch.no_grad():
            for name, tensor in model.named_parameters():
                tensor.copy_(self.params[name][index])
            for name, tensor in model.named_buffers():
                tensor.copy_(self.buffers[name][index])
        return model.eval()


def _rows_by_member(head: Callable[[Any], Any], outputs: Any) -> Any:
    """``head`` applied to the members' outputs ``(K, N, ...)`` as one batch of ``K * N`` rows, split back."""
    first = outputs if isinstance(outputs, torch.Tensor) else outputs[0]
    size, rows = first.shape[0], first.shape[1]
    flat = map_structure(outputs, _flat_rows)
    return map_structure(head(flat), lambda t: t.reshape(size, rows, *t.shape[1:]))


def _flat_rows(tensor: torch.Tensor) -> torch.Tensor:
    """``(K, N, C)`` as ``(K * N, C)`` rows; a feature-major tensor (the fused forward's) stays feature-major.

    A fused linear layer's output is a transposed view of ``(K, C, N)``
    memory: its rows cannot be laid end to end without a copy. Where
    :func:`~backwardcompatibilityml.class_softmax.log_softmax` would compute
    these rows class-major (a CPU, few classes, many rows) they are copied
    as ``(C, K * N)`` and returned transposed, so that the softmax needs no
    second copy; elsewhere (a GPU, many classes) they are laid end to end.
    """
    size, rows = tensor.shape[0], tensor.shape[1]
    if (tensor.dim() == 3 and tensor.stride(1) == 1 and rows > 1
            and class_major_rows(size * rows, tensor.shape[2], tensor.dtype, tensor.device)):
        return tensor.permute(2, 0, 1).reshape(tensor.shape[2], size * rows).t()
    return tensor.reshape(size * rows, *tensor.shape[2:])


def _stack(tensor: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    value = tensor.detach().to(device)
    return value.unsqueeze(0).repeat((size,) + (1,) * value.dim()).contiguous()


def _state_aliases(module: torch.nn.Module) -> Dict[str, Tuple[str, str]]:
    """For every ``state_dict`` key, whether it is a parameter or a buffer and its canonical name.

    Tied parameters appear once in ``named_parameters()`` but under every name
    in ``state_dict()``; the aliases map each name to the stacked tensor.
    """
    canonical: Dict[int, Tuple[str, str]] = {}
    for name, p in module.named_parameters():
        canonical.setdefault(id(p), ("param", name))
    for name, b in module.named_buffers():
        canonical.setdefault(id(b), ("buffer", name))
    found: Dict[str, Tuple[str, str]] = {}
    for name, p in module.named_parameters(remove_duplicate=False):
        found[name] = canonical[id(p)]
    for name, b in module.named_buffers(remove_duplicate=False):
        found[name] = canonical[id(b)]
    return {key: found[key] for key in module.state_dict().keys() if key in found}
