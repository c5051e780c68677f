"""Training loaders of the device path: in-memory images (:class:`DeviceArrayLoader`) or image files
(:class:`DeviceFileLoader`), augmented in batches on the device.

Both are :class:`cassle.data.epochs.EpochLoader` s: the epoch's order, this rank's shard, the batches, the
length and the epoch (set by Lightning through ``.sampler``) come from one :class:`EpochSampler`, and each
batch's augmentation draws from a generator seeded with ``batch_seed(epoch, position)``, a seed derived
from ``(seed, task, stream, epoch, rank, batch)``: each rank draws its own augmentations and a resumed run,
even one resumed in the middle of an epoch, redraws those of the uninterrupted one. They are plain iterables
with ``__len__``, so Lightning takes them as train loaders, also inside
``CombinedLoader(..., mode="min_size")``, and yields ``(indexes, views, targets)``: ``indexes`` are
positions in the full dataset, ``views`` is ``[X1, X2]`` for a :class:`TwoViewBatchAugment`
(the official batch format) and one tensor ``X`` for a :class:`BatchViewAugment` (the online-eval stream).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from cassle.data.device.decode import EncodedFiles, collate_encoded, decode_batch
from cassle.data.device.pipelines import BatchViewAugment, TwoViewBatchAugment
from cassle.data.epochs import EpochLoader, StreamSpec

__all__ = ["DeviceArrayLoader", "DeviceDataset", "DeviceFileLoader"]

#: A device loader's batch: (indexes (B,), [X1, X2] or X (B, 3, size, size), targets (B,)).
Batch = tuple[Tensor, list[Tensor] | Tensor, Tensor]

Augment = BatchViewAugment | TwoViewBatchAugment


class DeviceDataset:
    """A dataset held on a device: uint8 images (N, 3, H, W) and int64 labels (N,).

    Args:
        images: (N, H, W, 3) uint8 images, numpy array or tensor (as torchvision's CIFAR ``.data``).
        targets: (N,) integer labels (sequence, array or tensor).
        device: where to hold them.

    Raises:
        ValueError: on wrong shapes or dtype.
    """

    # One device copy per (in-memory dataset, device), shared by the loaders of every task of a run.
    _copies: weakref.WeakKeyDictionary[Any, dict[torch.device, DeviceDataset]] = weakref.WeakKeyDictionary()

    def __init__(
        self,
        images: np.ndarray | Tensor,
        targets: Sequence[int] | np.ndarray | Tensor,
        device: torch.device | str = "cpu",
    ) -> None:
        imgs = torch.as_tensor(images)
        if imgs.dtype != torch.uint8 or imgs.dim() != 4 or imgs.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 images of shape (N, H, W, 3), got {imgs.dtype} {tuple(imgs.shape)}"
            )
        tgts = torch.as_tensor(np.asarray(targets) if not isinstance(targets, Tensor) else targets).long()
        if tgts.shape != (imgs.shape[0],):
            raise ValueError(f"expected {imgs.shape[0]} targets, got shape {tuple(tgts.shape)}")
        self.device = torch.device(device)
        self.images = imgs.to(self.device).permute(0, 3, 1, 2).contiguous()
        self.targets = tgts.to(self.device)

    @classmethod
    def of(cls, dataset: Any, device: torch.device | str) -> DeviceDataset:
        """The device copy of an in-memory dataset (``.data`` (N, H, W, 3) uint8 and ``.targets``), made
        once per dataset and device and kept while the dataset lives."""
        device = torch.device(device)
        copies = cls._copies.setdefault(dataset, {})
        if device not in copies:
            copies[device] = cls(dataset.data, dataset.targets, device)
        return copies[device]

    def __len__(self) -> int:
        return self.images.shape[0]


def _checked(spec: StreamSpec, n: int) -> StreamSpec:
    """``spec``, after checking that its indices lie in ``[0, n)``."""
    idx = np.asarray(spec.indices, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    return spec


class DeviceArrayLoader(EpochLoader):
    """Augmented batches of in-memory images, all on the dataset's device.

    Args:
        dataset: the device-resident dataset.
        spec: the stream (indices are dataset positions).
        augment: the view pipelines (moved to the dataset's device).
    """

    def __init__(self, dataset: DeviceDataset, spec: StreamSpec, augment: Augment) -> None:
        super().__init__(_checked(spec, len(dataset)))
        self.dataset = dataset
        self.augment = augment.to(dataset.device)

    def _iterate(self, epoch: int) -> Iterator[Batch]:
        dev = self.dataset.device
        generator = torch.Generator(device=dev)
        for position, batch in self.sampler.numbered_batches(epoch):
            generator.manual_seed(self.batch_seed(epoch, position))
            idx = torch.from_numpy(batch).to(dev)
            yield idx, self.augment(self.dataset.images[idx], generator), self.dataset.targets[idx]


class DeviceFileLoader(EpochLoader):
    """Augmented batches of image files: CPU workers read the bytes, ``device`` decodes and augments them.

    The random parameters are drawn from a CPU generator (the crop boxes of images of different sizes are
    cut on the CPU's side anyway), so a seed gives the same batches on any device.

    Args:
        dataset: a file dataset with ``.samples`` (``FileListDataset``, ``ImageFolder``) or an
            :class:`EncodedFiles`.
        spec: the stream (indices are dataset positions).
        augment: the view pipelines (moved to ``device``).
        device: where images are decoded and augmented.
        num_workers: CPU worker processes reading files (0: in the main process).
        prefetch_factor: batches read ahead per worker.
    """

    def __init__(
        self,
        dataset: Any,
        spec: StreamSpec,
        augment: Augment,
        device: torch.device | str = "cpu",
        num_workers: int = 4,
        prefetch_factor: int = 4,
    ) -> None:
        files = dataset if isinstance(dataset, EncodedFiles) else EncodedFiles.from_dataset(dataset)
        super().__init__(_checked(spec, len(files)))
        self.files = files
        self.device = torch.device(device)
        self.augment = augment.to(self.device)
        workers = max(0, int(num_workers))
        extra: dict[str, Any] = {"persistent_workers": True, "prefetch_factor": prefetch_factor} if workers else {}
        # The sampler yields (epoch, index) keys of the epoch set before this loader's iteration starts.
        self.reader = DataLoader(self.files, batch_sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate_encoded, **extra)

    def _iterate(self, epoch: int) -> Iterator[Batch]:
        generator = torch.Generator()
        dev = self.device
        start = self.sampler.first_position(epoch)  # the reader's batches are the sampler's, from there on
        for position, (indexes, flat, lengths, targets) in enumerate(self.reader, start):
            generator.manual_seed(self.batch_seed(epoch, position))
            images = decode_batch(self.files, indexes, flat, lengths, dev)
            yield indexes.to(dev), self.augment(images, generator), targets.to(dev)
