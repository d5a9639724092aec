"""Batches, and the reference model's outputs computed once per dataset.

A dataset is any re-iterable of batches ``(instance_ids, inputs, targets)``,
for example a list or a :class:`torch.utils.data.DataLoader`. Batches of two
elements ``(inputs, targets)`` are accepted too; their instances are then
numbered by position (0, 1, 2, ... in iteration order), which is only stable
for a dataset that yields the same order every time.
"""

from __future__ import annotations

from typing import Any, Iterable, Iterator, Tuple

import numpy as np
import torch

from .device import to_device
from .outputs import validate_output

__all__ = ["iterate_batches", "count_batches", "ReferenceOutputs"]

Batch = Tuple[torch.Tensor, Any, torch.Tensor]


def _as_id_tensor(ids: Any) -> torch.Tensor:
    ids = torch.as_tensor(ids)
    if ids.dim() != 1 or ids.dtype.is_floating_point or ids.dtype == torch.bool:
        raise TypeError(
            f"instance_ids of a batch must be a 1-D sequence of integers; got dtype {ids.dtype} "
            f"and shape {tuple(ids.shape)}"
        )
    return ids.long().cpu()


def iterate_batches(dataset: Iterable, device: torch.device | None = None) -> Iterator[Batch]:
    """Yield ``(instance_ids, inputs, targets)`` for every batch of ``dataset``.

    ``instance_ids`` stays on the CPU as an ``int64`` tensor; inputs and targets
    are moved to ``device`` when one is given.

    Raises
    ------
    TypeError
        If ``dataset`` is not iterable or a batch is not a pair or a triple.
    ValueError
        If the ids, inputs and targets of a batch disagree on the batch size.
    """
    try:
        iterator = iter(dataset)
    except TypeError:
        raise TypeError(
            f"a dataset must be an iterable of (instance_ids, inputs, targets) batches, "
            f"got {type(dataset).__name__}"
        ) from None
    position = 0
    for batch in iterator:
        if not isinstance(batch, (tuple, list)) or len(batch) not in (2, 3):
            raise TypeError(
                "each batch must be a tuple (instance_ids, inputs, targets) or (inputs, targets); "
                f"got {type(batch).__name__}"
                + (f" of length {len(batch)}" if isinstance(batch, (tuple, list)) else "")
            )
        if len(batch) == 3:
            ids, inputs, targets = batch
            ids = _as_id_tensor(ids)
        else:
            inputs, targets = batch
            ids = None
        targets = torch.as_tensor(targets)
        size = targets.shape[0] if targets.dim() > 0 else 0
        if ids is None:
            ids = torch.arange(position, position + size, dtype=torch.long)
        position += size
        input_size = inputs.shape[0] if isinstance(inputs, torch.Tensor) else size
        if not (ids.shape[0] == size == input_size):
            raise ValueError(
                f"batch sizes disagree: {ids.shape[0]} instance ids, {input_size} inputs, {size} targets"
            )
        if device is not None:
            inputs, targets = to_device(inputs, device), to_device(targets, device)
        yield ids, inputs, targets


def count_batches(dataset: Iterable) -> int:
    """Number of batches in ``dataset`` (``len`` when it has one, else one pass)."""
    try:
        return len(dataset)  # type: ignore[arg-type]
    except TypeError:
        return sum(1 for _ in dataset)


class ReferenceOutputs:
    """Outputs of a fixed model (h1), computed once per instance and reused.

    The outputs are stored by global instance id, so a shuffling
    :class:`~torch.utils.data.DataLoader` is served correctly: every later
    batch, in whatever order, is answered from the cache. A batch that holds an
    id not yet seen (``drop_last`` with shuffling, say) runs the model once on
    that batch and caches the new rows. With random augmentation the cached
    output is the one of the first view of an instance: the support of the
    compatibility losses (which instances h1 gets right) is then a property of
    the instance, not of each augmented view.

    Parameters
    ----------
    model : torch.nn.Module or callable
        The reference model. It is run under ``torch.no_grad()`` in eval mode,
        and its previous train/eval mode is restored afterwards.
    device : torch.device
        Device of the model's inputs.
    name : str
        Name of the model for error messages.
    """

    def __init__(self, model: Any, device: torch.device, name: str = "h1") -> None:
        self.model = model
        self.device = device
        self.name = name
        self._chunks: list[Any] = []
        self._chunk_ids: list[torch.Tensor] = []
        self._values: Any = None
        self._sorted_ids = np.empty(0, dtype=np.int64)
        self._order = np.empty(0, dtype=np.int64)

    def __len__(self) -> int:
        return int(self._sorted_ids.shape[0])

    def run(self, inputs: Any) -> Any:
        """Run the model once on ``inputs`` without gradients, in eval mode."""
        was_training = getattr(self.model, "training", False)
        if hasattr(self.model, "eval"):
            self.model.eval()
        try:
            with torch.no_grad():
                return _detach(validate_output(self.model(inputs), self.name))
        finally:
            if was_training:
                self.model.train()

    def fill(self, dataset: Iterable) -> int:
        """Compute the outputs for every instance of ``dataset`` not cached yet.

        Returns the number of batches seen.
        """
        batches = 0
        for ids, inputs, _ in iterate_batches(dataset, self.device):
            self.for_batch(ids, inputs)
            batches += 1
        return batches

    def for_batch(self, ids: torch.Tensor, inputs: Any) -> Any:
        """The model's outputs for the instances ``ids`` of a batch whose inputs are ``inputs``.

        Served from the cache when every id is known; otherwise the model runs
        once on ``inputs`` and the batch is cached.
        """
        positions = self._lookup(ids)
        if positions is None:
            output = self.run(inputs)
            self._add(ids, output)
            return output
        return _index(self._values, torch.as_tensor(positions, device=_device_of(self._values)))

    def _lookup(self, ids: torch.Tensor) -> np.ndarray | None:
        if self._sorted_ids.shape[0] == 0:
            return None
        wanted = ids.numpy()
        pos = np.searchsorted(self._sorted_ids, wanted)
        pos = np.minimum(pos, self._sorted_ids.shape[0] - 1)
        if not np.array_equal(self._sorted_ids[pos], wanted):
            return None
        return self._order[pos]

    def _add(self, ids: torch.Tensor, output: Any) -> None:
        known = self._lookup_mask(ids)
        if known.any():
            keep = torch.as_tensor(~known)
            ids = ids[keep]
            output = _index(output, keep.to(_device_of(output)))
        self._chunks.append(output)
        self._chunk_ids.append(ids)
        self._values = _concat(self._chunks)
        self._chunks = [self._values]
        all_ids = torch.cat(self._chunk_ids).numpy()
        self._chunk_ids = [torch.from_numpy(all_ids)]
        self._order = np.argsort(all_ids, kind="stable")
        self._sorted_ids = all_ids[self._order]

    def _lookup_mask(self, ids: torch.Tensor) -> np.ndarray:
        if self._sorted_ids.shape[0] == 0:
            return np.zeros(ids.shape[0], dtype=bool)
        wanted = ids.numpy()
        pos = np.minimum(np.searchsorted(self._sorted_ids, wanted), self._sorted_ids.shape[0] - 1)
        return self._sorted_ids[pos] == wanted


def _detach(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return tuple(_detach(part) for part in output)
    return output


def _index(output: Any, index: torch.Tensor) -> Any:
    if isinstance(output, torch.Tensor):
        return output[index]
    return tuple(part[index] for part in output)


def _concat(chunks: list[Any]) -> Any:
    if isinstance(chunks[0], torch.Tensor):
        return torch.cat(chunks)
    return tuple(torch.cat([chunk[i] for chunk in chunks]) for i in range(len(chunks[0])))


def _device_of(output: Any) -> torch.device:
    return output.device if isinstance(output, torch.Tensor) else output[0].device
