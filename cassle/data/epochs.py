"""One epoch sampler for every training loader, and the loader base class that owns it.

Both data paths (PIL + torchvision in CPU workers, and the batched device path) order, shard and batch
their samples with :class:`EpochSampler`, and take the epoch from Lightning:

* the order of epoch ``e`` is a permutation of the loader's indices drawn from a generator seeded with
  ``derive_seed(order_seed, e)``: the same on every rank and in every process;
* rank ``r`` of ``W`` takes positions ``r, r + W, r + 2W, ...`` of that order, truncated to ``W * (n // W)``
  positions first, exactly as PyTorch's ``DistributedSampler(drop_last=True)`` shards a dataset: every rank
  gets the same number of samples and together they cover the epoch up to the ``n % W`` dropped ones;
* each rank cuts its shard into batches of ``batch_size`` and drops the last partial batch.

Lightning calls ``set_epoch(epoch)`` on a train loader's ``.sampler`` at the start of every epoch (with its
restored epoch counter after a resume); :class:`EpochLoader` exposes its sampler there and reads the epoch
only when the first batch is requested. When fitting starts, Lightning 2.6 calls ``iter()`` on the loaders
*before* it sets the epoch (``FitLoop.setup_data``, then ``on_advance_start``; Lightning issue 21938), so a
loader that drew its order in ``iter()`` would replay epoch 0 on the first epoch after a resume.
Torch-free.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cassle.utils.seeding import derive_seed

__all__ = ["EpochLoader", "EpochSampler", "SampleKey", "StreamSpec", "split_key"]

#: What :class:`EpochSampler` yields for one sample: ``(epoch, dataset index)``. Datasets that draw each
#: sample's augmentation from its own seed read the epoch from the key, so worker processes hold no epoch.
SampleKey = tuple[int, int]


def split_key(key: SampleKey | int) -> tuple[int | None, int]:
    """``(epoch, index)`` of a dataset key: a :data:`SampleKey`, or a bare index (epoch None)."""
    if isinstance(key, tuple):
        return int(key[0]), int(key[1])
    return None, int(key)


class EpochSampler:
    """Per-epoch order, per-rank shard and batches of a set of dataset indices.

    Iterating yields this rank's batches of the current epoch (see :meth:`set_epoch`) as lists of
    :data:`SampleKey`, the batch-sampler protocol of ``torch.utils.data.DataLoader``; :meth:`batches` gives
    the same batches as index arrays.

    Args:
        indices: dataset indices to sample from (any integer sequence; an (n, 1) array is flattened).
        batch_size: samples per batch on each rank.
        seed: seed of the order; epoch ``e`` uses ``derive_seed(seed, e)``.
        rank: this rank, in ``[0, world_size)``.
        world_size: number of ranks sharing each epoch.
        shuffle: a new permutation every epoch (otherwise the order of ``indices``).
        drop_last: drop the samples that do not fill every rank equally and the last partial batch
            (``DistributedSampler(drop_last=True)``); otherwise the order is padded with its own start to a
            multiple of ``world_size`` (``DistributedSampler(drop_last=False)``) and the last batch may be
            short.

    Raises:
        ValueError: on a non-positive batch size or world size, or a rank outside ``[0, world_size)``.
    """

    def __init__(
        self,
        indices: Sequence[int] | np.ndarray,
        batch_size: int,
        seed: int,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        if world_size < 1 or not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, world_size), got rank {rank} of {world_size}")
        self.indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.shuffle = bool(shuffle)
        self.drop_last = bool(drop_last)
        self.epoch = 0
        self._skip: tuple[int, int] | None = None

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch whose batches the next iteration gives (Lightning calls this every epoch)."""
        self.epoch = int(epoch)

    def skip_first(self, epoch: int, batches: int) -> None:
        """The next iteration of epoch ``epoch`` starts after its first ``batches`` batches (a task resumed
        from a checkpoint taken in the middle of that epoch); later iterations are whole again."""
        self._skip = (int(epoch), int(batches))

    def first_position(self, epoch: int) -> int:
        """Where the next iteration of ``epoch`` starts: 0, or the batches skipped by :meth:`skip_first`."""
        return self._skip[1] if self._skip is not None and self._skip[0] == epoch else 0

    def numbered_batches(self, epoch: int) -> Iterator[tuple[int, np.ndarray]]:
        """``(position in the epoch, batch)`` of this rank's batches of ``epoch``, after any skip."""
        start = self.first_position(epoch)
        if start:
            self._skip = None
        for position, batch in enumerate(self.batches(epoch)):
            if position >= start:
                yield position, batch

    @property
    def num_samples(self) -> int:
        """Samples of this rank per epoch, before batching."""
        n, w = len(self.indices), self.world_size
        return n // w if self.drop_last else -(-n // w)

    def __len__(self) -> int:
        """Batches of this rank per epoch."""
        if self.drop_last:
            return self.num_samples // self.batch_size
        return -(-self.num_samples // self.batch_size)

    def epoch_order(self, epoch: int) -> np.ndarray:
        """All indices of epoch ``epoch`` in order, the same on every rank: (n,) int64."""
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng(derive_seed(self.seed, int(epoch)))
        return self.indices[rng.permutation(len(self.indices))]

    def shard(self, epoch: int) -> np.ndarray:
        """This rank's indices of epoch ``epoch``, in order: (num_samples,) int64."""
        order = self.epoch_order(epoch)
        total = self.num_samples * self.world_size
        if total > len(order):  # drop_last=False: pad with the start of the order, as DistributedSampler
            order = np.resize(order, total)
        return order[self.rank : total : self.world_size]

    def batches(self, epoch: int | None = None) -> list[np.ndarray]:
        """This rank's batches of epoch ``epoch`` (default: the current one), each (batch_size,) int64."""
        shard = self.shard(self.epoch if epoch is None else epoch)
        b = self.batch_size
        return [shard[k * b : (k + 1) * b] for k in range(len(self))]

    def __iter__(self) -> Iterator[list[SampleKey]]:
        epoch = self.epoch
        for _, batch in self.numbered_batches(epoch):
            yield [(epoch, int(i)) for i in batch]


@dataclass(frozen=True, eq=False)  # eq=False: ``indices`` may be an array, whose == is element-wise
class StreamSpec:
    """One stream of training batches: which samples, how many per batch, and whose stream it is.

    Args:
        indices: dataset indices of the stream.
        batch_size: samples per batch on each rank.
        seed: the run's base seed.
        task: the task index.
        name: the stream's name (``"task"``, ``"online_eval"``).
        rank: this rank.
        world_size: number of ranks.
    """

    indices: Sequence[int] | np.ndarray
    batch_size: int
    seed: int
    task: int
    name: str
    rank: int = 0
    world_size: int = 1


class EpochLoader:
    """Base of the training loaders: the sampler, the seeds, the epoch and the length, written once.

    Its order seed and its augmentation seed ``augment_seed`` both derive from the StreamSpec's ``(seed, task,
    name)``; :meth:`batch_seed` adds the epoch, the rank and the batch for batched augmentation on a device,
    while per-sample augmentation in CPU workers adds the epoch and the sample's dataset index
    (``cassle.data.loaders.AugmentedDataset``). Subclasses implement :meth:`_iterate`.

    Args:
        spec: the stream.
    """

    def __init__(self, spec: StreamSpec) -> None:
        self.spec = spec
        order_seed = derive_seed(spec.seed, "order", spec.task, spec.name)
        self.sampler = EpochSampler(spec.indices, spec.batch_size, order_seed, spec.rank, spec.world_size)
        self.augment_seed = derive_seed(spec.seed, "augment", spec.task, spec.name)

    @property
    def epoch(self) -> int:
        """The epoch the next iteration gives."""
        return self.sampler.epoch

    @property
    def rank(self) -> int:
        """This loader's rank."""
        return self.sampler.rank

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch the next iteration gives (Lightning sets it through ``.sampler``)."""
        self.sampler.set_epoch(epoch)

    def batch_seed(self, epoch: int, position: int) -> int:
        """Seed of this rank's batched augmentation of batch ``position`` of epoch ``epoch`` (one seed per
        batch, so that a resume in the middle of an epoch draws the same augmentations)."""
        return derive_seed(self.augment_seed, int(epoch), self.rank, int(position))

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[Any]:
        # A generator: the epoch is read at the first next(), after Lightning's set_epoch (see the module
        # docstring), not when iter() is called.
        yield from self._iterate(self.sampler.epoch)

    def _iterate(self, epoch: int) -> Iterator[Any]:
        """The batches of epoch ``epoch`` on this rank."""
        raise NotImplementedError
