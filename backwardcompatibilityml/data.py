"""Batches, and the reference model's outputs computed once per dataset.

A dataset is any re-iterable of batches ``(instance_ids, inputs, targets)``,
for example a list or a :class:`torch.utils.data.DataLoader`. Batches of two
elements ``(inputs, targets)`` are accepted too; their instances are then
numbered by position (0, 1, 2, ... in iteration order), which is only stable
for a dataset that yields the same order every time: a shuffling DataLoader
of such pairs is refused with a ``ValueError``.

A sweep reads a :class:`~torch.utils.data.DataLoader` through two views
(:func:`training_view`, :func:`evaluation_view`): it trains on the loader as
given, but draws its shuffling from torch's global generator (which each job
seeds) rather than from a ``generator=`` of its own, so that every job sees
the same batch order; and it computes h1's reference and evaluates on every
instance once, in order, even when the loader drops its last batch or
samples with replacement.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, Dict, Iterable, Iterator, List, Optional, Tuple

import torch
from torch.utils.data import (
    BatchSampler, DataLoader, IterableDataset, RandomSampler, Sampler, SequentialSampler, SubsetRandomSampler,
    WeightedRandomSampler,
)

from .device import to_device
from .outputs import inference, validate_output

__all__ = [
    "iterate_batches", "count_batches", "has_fixed_order", "ReferenceOutputs", "training_view", "evaluation_view",
    "preserved_generators",
]

Batch = Tuple[torch.Tensor, Any, torch.Tensor]


def _as_id_tensor(ids: Any) -> torch.Tensor:
    try:
        ids = torch.as_tensor(ids)
    except (TypeError, ValueError, RuntimeError):
        first = next(iter(ids), None) if isinstance(ids, Iterable) else ids
        raise TypeError(
            f"instance_ids of a batch must be a 1-D sequence of integers; got {type(ids).__name__} "
            f"holding {type(first).__name__} values such as {first!r}"
        ) from None
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
            if position == 0 and not has_fixed_order(dataset):
                raise ValueError(
                    "batches of (inputs, targets) are numbered by their position, which needs a fixed order, but "
                    "this DataLoader may change its order between passes (it shuffles, or has its own "
                    "batch_sampler); give batches (instance_ids, inputs, targets) instead, e.g. a "
                    "TensorDataset(torch.arange(n), x, y)"
                )
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


def has_fixed_order(dataset: Iterable) -> bool:
    """False for a DataLoader that may change its order between passes; True otherwise.

    A DataLoader keeps its order when it batches a sequential sampler with
    the standard :class:`~torch.utils.data.BatchSampler`; one given its own
    ``batch_sampler=`` (which may shuffle the batches, or within them) does not
    count as fixed.
    """
    if isinstance(dataset, DataLoader):
        batch_sampler = dataset.batch_sampler
        if batch_sampler is not None and type(batch_sampler) is not BatchSampler:
            return False
        sampler = batch_sampler.sampler if batch_sampler is not None else dataset.sampler
        return isinstance(sampler, SequentialSampler)
    return True


_RANDOM_SAMPLERS = (RandomSampler, WeightedRandomSampler, SubsetRandomSampler)


def _rebuildable(dataset: Any) -> bool:
    """Whether ``dataset`` is a plain DataLoader over a map-style dataset with a sampler this module knows."""
    return (
        type(dataset) is DataLoader
        and not isinstance(dataset.dataset, IterableDataset)
        and dataset.batch_size is not None
        and type(dataset.batch_sampler) is BatchSampler
        and type(dataset.sampler) in (SequentialSampler,) + _RANDOM_SAMPLERS
    )


def _rebuild(
    loader: DataLoader, sampler: Any, drop_last: bool, generator: Optional[torch.Generator] = None
) -> DataLoader:
    """A DataLoader like ``loader`` (its dataset, batch size, collate_fn, workers) with ``sampler``, ``generator``."""
    options: Dict[str, Any] = dict(
        batch_size=loader.batch_size, sampler=sampler, num_workers=loader.num_workers,
        collate_fn=loader.collate_fn, pin_memory=loader.pin_memory, drop_last=drop_last, timeout=loader.timeout,
        worker_init_fn=loader.worker_init_fn, multiprocessing_context=loader.multiprocessing_context,
        persistent_workers=loader.persistent_workers, generator=generator,
    )
    if loader.num_workers > 0:
        options["prefetch_factor"] = loader.prefetch_factor
    accepted = inspect.signature(DataLoader.__init__).parameters
    for name in ("pin_memory_device", "in_order"):
        if name in accepted and hasattr(loader, name):
            options[name] = getattr(loader, name)
    return DataLoader(loader.dataset, **options)


def _without_generator(sampler: Sampler) -> Sampler:
    """The same sampling as ``sampler``, drawn from torch's global generator."""
    if isinstance(sampler, RandomSampler):
        return RandomSampler(sampler.data_source, replacement=sampler.replacement, num_samples=sampler._num_samples)
    if isinstance(sampler, WeightedRandomSampler):
        return WeightedRandomSampler(sampler.weights, sampler.num_samples, replacement=sampler.replacement)
    if isinstance(sampler, SubsetRandomSampler):
        return SubsetRandomSampler(sampler.indices)
    return sampler


def _in_order(sampler: Sampler, dataset: Any) -> Any:
    """Every index ``sampler`` can draw, once and in order (a SequentialSampler over the whole dataset if all)."""
    if isinstance(sampler, SubsetRandomSampler):
        return [int(index) for index in sampler.indices]
    if isinstance(sampler, WeightedRandomSampler):
        drawn = torch.nonzero(sampler.weights > 0).flatten().tolist()
        if len(drawn) != len(dataset):
            return drawn
    if isinstance(sampler, RandomSampler):
        return SequentialSampler(sampler.data_source)
    return SequentialSampler(dataset)


def training_view(dataset: Iterable) -> Iterable:
    """``dataset`` as a sweep trains on it: a DataLoader's own ``generator`` is left out.

    A sweep seeds torch's global generator at the start of every job so that
    each job sees the same batch order. A DataLoader built with
    ``generator=`` (or a random sampler with one) would ignore that seed and
    give each job another order; the view draws the same kind of shuffling
    from the global generator instead, and leaves the user's generator
    untouched. Other datasets are returned as they are.
    """
    if not _rebuildable(dataset):
        return dataset
    if dataset.generator is None and getattr(dataset.sampler, "generator", None) is None:
        return dataset
    return _rebuild(dataset, _without_generator(dataset.sampler), dataset.drop_last)


def evaluation_view(dataset: Iterable) -> Iterable:
    """``dataset`` as a sweep evaluates it: every instance once, in order.

    A DataLoader that shuffles, samples (with replacement, by weight, a
    random subset) or drops its last batch yields other instances on each
    pass, or some twice; h1's reference and every evaluation need each
    instance exactly once. The view is the same loader (dataset, batch size,
    collate_fn, workers) over every instance the sampler can draw, in order,
    without ``drop_last``, with a generator of its own (for the workers'
    seeds), so that its passes draw nothing from torch's global generator.
    Other datasets are returned as they are.
    """
    if not _rebuildable(dataset):
        return dataset
    if type(dataset.sampler) is SequentialSampler and not dataset.drop_last:
        return dataset
    return _rebuild(dataset, _in_order(dataset.sampler, dataset.dataset), False, torch.Generator().manual_seed(0))


def _generators(dataset: Any) -> List[torch.Generator]:
    found: List[torch.Generator] = []
    batch_sampler = getattr(dataset, "batch_sampler", None)
    for owner in (dataset, getattr(dataset, "sampler", None), getattr(batch_sampler, "sampler", None)):
        generator = getattr(owner, "generator", None)
        if isinstance(generator, torch.Generator) and all(generator is not g for g in found):
            found.append(generator)
    return found


@contextlib.contextmanager
def preserved_generators(dataset: Any) -> Iterator[None]:
    """Give the random generators of a DataLoader (its own and its sampler's) their state back afterwards."""
    generators = _generators(dataset)
    states = [generator.get_state() for generator in generators]
    try:
        yield
    finally:
        for generator, state in zip(generators, states):
            generator.set_state(state)


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

    Rows live in buffers whose capacity doubles as instances arrive, and an
    ``id -> row`` dictionary finds them, so filling the cache costs time linear
    in the number of instances.

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
        self._row_of: Dict[int, int] = {}
        self._buffers: Optional[List[torch.Tensor]] = None
        self._triple = False
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def run(self, inputs: Any) -> Any:
        """Run the model once on ``inputs`` without gradients, in eval mode."""
        with inference(self.model) as model:
            return _detach(validate_output(model(inputs), self.name))

    def for_batch(self, ids: torch.Tensor, inputs: Any) -> Any:
        """The model's outputs for the instances ``ids`` of a batch whose inputs are ``inputs``.

        Served from the cache when every id is known; otherwise the model runs
        once on ``inputs`` and the new instances are cached.
        """
        row_of = self._row_of
        try:
            rows = [row_of[i] for i in ids.tolist()]
        except KeyError:
            output = self.run(inputs)
            self._add(ids, output)
            return output
        assert self._buffers is not None
        index = torch.as_tensor(rows, dtype=torch.long, device=self._buffers[0].device)
        parts = [buffer[index] for buffer in self._buffers]
        return tuple(parts) if self._triple else parts[0]

    def _add(self, ids: torch.Tensor, output: Any) -> None:
        parts = list(output) if isinstance(output, (tuple, list)) else [output]
        new_positions, new_ids, seen = [], [], set()
        for position, instance_id in enumerate(ids.tolist()):
            if instance_id not in self._row_of and instance_id not in seen:
                seen.add(instance_id)
                new_positions.append(position)
                new_ids.append(instance_id)
        if not new_ids:
            return
        if self._buffers is None:
            self._triple = isinstance(output, (tuple, list))
            self._buffers = [part.new_empty((max(1024, 2 * len(new_ids)),) + tuple(part.shape[1:])) for part in parts]
        needed = self._size + len(new_ids)
        if needed > self._buffers[0].shape[0]:
            capacity = max(needed, 2 * self._buffers[0].shape[0])
            grown = []
            for buffer in self._buffers:
                bigger = buffer.new_empty((capacity,) + tuple(buffer.shape[1:]))
                bigger[: self._size] = buffer[: self._size]
                grown.append(bigger)
            self._buffers = grown
        take = torch.as_tensor(new_positions, dtype=torch.long, device=parts[0].device)
        for buffer, part in zip(self._buffers, parts):
            buffer[self._size:needed] = part[take]
        for offset, instance_id in enumerate(new_ids):
            self._row_of[instance_id] = self._size + offset
        self._size = needed


def _detach(output: Any) -> Any:
    if isinstance(output, torch.Tensor):
        return output.detach()
    if isinstance(output, (tuple, list)):
        return tuple(_detach(part) for part in output)
    return output
