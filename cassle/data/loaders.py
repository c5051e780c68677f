"""Training and validation loaders of both data paths, and the task indices.

Batch formats:

* task stream: ``(indexes, [X1, X2], targets)`` -- ``indexes`` are positions in the *full* training set
  (as the official ``dataset_with_index`` wrapped before ``Subset``), ``X1``/``X2`` the two augmented
  views (``B x 3 x H x W``), ``targets`` the labels;
* online-eval stream: ``(indexes, X, targets)`` over the full training set (all classes) with one
  pipeline (the view-2 augmentation, as officially);
* validation loader: ``(X, targets)``, or ``(X, targets, domains)`` for DomainNet.

:func:`build_train_loaders` returns ``{"task<t>": ..., "online_eval": ...}`` for either path, for Lightning's
``CombinedLoader(loaders, "min_size")``: an epoch lasts as long as the shorter loader (CIFAR-100:
floor(10000 / 256) = 39 steps). Every training loader is an :class:`cassle.data.epochs.EpochLoader`: the
order of an epoch, the shard of each rank and the epoch itself (from Lightning) come from one
:class:`~cassle.data.epochs.EpochSampler`, and the augmentations from seeds derived from ``(seed, task,
stream, epoch, ...)``, so that they do not depend on worker scheduling, persistent workers or a resume.
They are not ``DataLoader`` objects, so Lightning never swaps in its own ``DistributedSampler`` (whatever
``use_distributed_sampler`` says): each rank builds its own loaders with its ``rank`` and ``world_size``.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from cassle.data.epochs import EpochLoader, SampleKey, StreamSpec, split_key
from cassle.data.splits import class_split, data_split
from cassle.errors import CassleError
from cassle.utils.seeding import derive_seed


def _raw_image(base: Any, index: int):
    getter = getattr(base, "get_image", None)
    if getter is not None:
        return getter(index)
    return base[index][0]


def _seed_sample_rngs(seed: int) -> None:
    """Seeds the generators a torchvision transform may draw from: torch's CPU generator (all of
    torchvision's v1 transforms), Python's ``random`` and numpy's global generator (custom transforms).
    Nothing is restored: worker processes own their generators; in the main process (no workers) they end
    each batch in a state fixed by its last sample, which keeps a run reproducible too."""
    torch.default_generator.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)


class AugmentedDataset(Dataset):
    """The samples of ``base`` with a transform; item ``i`` is ``(i, transform(image i), label i)``.

    ``transform`` returns the views (a list of per-view callables is wrapped in
    :class:`cassle.data.augmentations.MultiViewTransform`, giving ``[view1, view2, ...]``) or one tensor.
    With an ``(epoch, i)`` key (:class:`cassle.data.epochs.EpochSampler`) the generators are first seeded
    with ``derive_seed(seed, epoch, i)``: a sample's augmentation depends only on the seed, the epoch and
    the sample, whichever worker draws it. A bare index draws from the generators as they are.

    Args:
        base: the full training set (``get_image(i)`` or ``base[i][0]`` gives a PIL image; ``.targets``).
        transform: the augmentation.
        seed: seed of the augmentation stream.
    """

    def __init__(self, base: Any, transform: Any, seed: int = 0):
        self.base = base
        if isinstance(transform, (list, tuple)):
            from cassle.data.augmentations import MultiViewTransform

            transform = MultiViewTransform(transform)
        self.transform = transform
        self.targets = [int(t) for t in base.targets]
        self.seed = int(seed)

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, key: SampleKey | int):
        epoch, i = split_key(key)
        if epoch is not None:
            _seed_sample_rngs(derive_seed(self.seed, epoch, i))
        return i, self.transform(_raw_image(self.base, i)), self.targets[i]


def task_indices(
    targets: Sequence[int],
    split_strategy: str,
    tasks_or_none: Sequence[Sequence[int]] | None,
    task_idx: int,
    num_tasks: int,
    domains: Sequence[int] | None = None,
) -> list[int]:
    """Indices (into the full training set, ascending) of the training samples of task ``task_idx``.

    * ``class``: samples whose label is in ``tasks_or_none[task_idx]`` (the class blocks of
      :func:`cassle.data.splits.class_split`);
    * ``data``: ``data_split(len(targets), num_tasks)[task_idx]`` (seed 42, in that split's order);
    * ``domain``: samples whose domain tag equals ``task_idx`` -- the DomainNet training set is loaded
      with all six domains and each sample carries the index of its domain in task order.
    """
    task_idx = int(task_idx)
    if not 0 <= task_idx < int(num_tasks):
        raise CassleError(f"--task_idx {task_idx} is out of range for --num_tasks {num_tasks}")
    if split_strategy == "class":
        if tasks_or_none is None:
            raise ValueError("the class split needs the class blocks (tasks)")
        if len(tasks_or_none) != num_tasks:
            raise ValueError(f"{len(tasks_or_none)} class blocks for {num_tasks} tasks")
        wanted = {int(c) for c in tasks_or_none[task_idx]}
        return [i for i, y in enumerate(targets) if int(y) in wanted]
    if split_strategy == "data":
        return list(data_split(len(targets), num_tasks)[task_idx])
    if split_strategy == "domain":
        if domains is None:
            raise CassleError("--split_strategy domain needs a dataset with domain tags (--dataset domainnet)")
        return [i for i, d in enumerate(domains) if int(d) == task_idx]
    raise CassleError(f"--split_strategy {split_strategy!r} is not one of class, data, domain")


def tasks_for(split_strategy: str, num_classes: int, num_tasks: int, seed: int) -> list[list[int]] | None:
    """The class blocks for ``class`` (``class_split(num_classes, num_tasks, seed)``), else ``None``."""
    if split_strategy == "class":
        return class_split(num_classes, num_tasks, seed)
    return None


def _loader_kwargs(num_workers: int) -> dict[str, Any]:
    return {
        "num_workers": int(num_workers),
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": int(num_workers) > 0,
    }


class WorkerLoader(EpochLoader):
    """The faithful path's training loader: PIL images augmented by torchvision in CPU workers.

    A ``DataLoader`` over an :class:`AugmentedDataset` whose batch sampler is this loader's
    :class:`~cassle.data.epochs.EpochSampler`: the workers receive ``(epoch, index)`` keys, and each sample
    is augmented from ``derive_seed(augment_seed, epoch, index)``.

    Args:
        base: the full training set.
        spec: the stream.
        transform: a list of per-view pipelines (items ``(i, [X1, X2], y)``) or one pipeline
            (items ``(i, X, y)``).
        num_workers: CPU worker processes (persistent across epochs; 0: the main process).
    """

    def __init__(self, base: Any, spec: StreamSpec, transform: Any, num_workers: int) -> None:
        super().__init__(spec)
        self.dataset = AugmentedDataset(base, transform, self.augment_seed)
        self.dataloader = DataLoader(self.dataset, batch_sampler=self.sampler, **_loader_kwargs(num_workers))

    def _iterate(self, epoch: int) -> Iterator[Any]:
        # The sampler yields the keys of ``epoch``, the epoch set before this iteration started.
        return iter(self.dataloader)


def fast_data_kind(dataset: Any) -> str:
    """Which device loader serves ``dataset`` under --fast_data: ``"memory"`` for an in-memory dataset
    (``.data``: cifar100, digits), ``"files"`` for an image-file dataset (``.samples``: imagenet100,
    domainnet).

    Raises:
        CassleError: if it is neither.
    """
    if hasattr(dataset, "data"):
        return "memory"
    if hasattr(dataset, "samples"):
        return "files"
    raise CassleError(f"--fast_data needs an in-memory dataset (cifar100, digits) or an image-file dataset "
                      f"(imagenet100, domainnet); {type(dataset).__name__} is neither")


def build_train_loaders(
    train_dataset: Any,
    indices: Sequence[int],
    view_configs: Sequence[Mapping[str, Any]],
    mean: Sequence[float],
    std: Sequence[float],
    batch_size: int,
    num_workers: int,
    seed: int,
    task: int,
    rank: int = 0,
    world_size: int = 1,
    online_eval_view: Mapping[str, Any] | None = None,
    device: Any | None = None,
    fast: bool = False,
    memory_format: torch.memory_format | None = None,
) -> dict[str, EpochLoader]:
    """The training loaders of task ``task`` on rank ``rank`` of ``world_size``, for either data path.

    ``"task<t>"``: the task's samples with one pipeline per view (items ``(indexes, [X1, X2], targets)``).
    ``"online_eval"`` (with ``online_eval_view``): the whole training set with that pipeline (items
    ``(indexes, X, targets)``). Both shuffle every epoch and drop the last partial batch; each rank gets a
    disjoint shard of every epoch.

    Args:
        train_dataset: the full training set (in-memory ``.data`` or files ``.samples`` for ``fast``).
        indices: the task's dataset indices.
        view_configs: one augmentation config per view (``build_view_transform`` keys; missing keys take
            its defaults on both paths).
        mean: normalisation mean.
        std: normalisation std.
        batch_size: samples per batch on each rank.
        num_workers: CPU workers (faithful path; file reading for ``fast`` on file datasets).
        seed: the run's base seed.
        task: the task index.
        rank: this rank.
        world_size: number of ranks.
        online_eval_view: the online-eval stream's augmentation config (officially the view-2 pipeline);
            None: no online-eval stream.
        device: the training device (``fast`` only; default CPU).
        fast: augment on the device (``cassle.data.device``) instead of in CPU workers.
        memory_format: memory format of the device path's outputs (default contiguous).

    Returns:
        ``{"task<t>": loader}`` plus ``"online_eval"`` when asked for.

    Raises:
        CassleError: if the task has less than one batch per rank, or ``fast`` gets a dataset that is
            neither in memory nor made of files.
    """
    from cassle.data.augmentations import VIEW_DEFAULTS

    view_configs = [{**VIEW_DEFAULTS, **cfg} for cfg in view_configs]  # the same views on both paths
    streams: dict[str, tuple[Sequence[int], Any]] = {"task": (indices, view_configs)}
    if online_eval_view is not None:  # over every training image, as officially
        streams["online_eval"] = (range(len(train_dataset.targets)), {**VIEW_DEFAULTS, **online_eval_view})
    if len(indices) // world_size < batch_size:  # the online-eval stream holds the task's samples and more
        devices = f" x {world_size} devices" if world_size > 1 else ""
        raise CassleError(f"task {task} has {len(indices)} training samples, fewer than --batch_size "
                          f"{batch_size}{devices}: no full batch to train on (lower --batch_size)")
    make = _device_loader_factory(train_dataset, mean, std, device, num_workers, memory_format) if fast \
        else _worker_loader_factory(train_dataset, mean, std, num_workers)
    return {
        f"task{task}" if name == "task" else name:
            make(StreamSpec(idx, batch_size, seed, task, name, rank, world_size), cfgs)
        for name, (idx, cfgs) in streams.items()
    }


def _worker_loader_factory(train_dataset: Any, mean: Sequence[float], std: Sequence[float],
                           num_workers: int) -> Callable[..., EpochLoader]:
    from cassle.data.augmentations import build_view_transform

    def make(spec: StreamSpec, cfgs: Any) -> EpochLoader:
        if isinstance(cfgs, Mapping):
            transform = build_view_transform(cfgs, mean, std)
        else:
            transform = [build_view_transform(c, mean, std) for c in cfgs]
        return WorkerLoader(train_dataset, spec, transform, num_workers)

    return make


def _device_loader_factory(train_dataset: Any, mean: Sequence[float], std: Sequence[float], device: Any,
                           num_workers: int, memory_format: torch.memory_format | None
                           ) -> Callable[..., EpochLoader]:
    from cassle.data.device import (
        BatchViewAugment,
        DeviceArrayLoader,
        DeviceDataset,
        DeviceFileLoader,
        TwoViewBatchAugment,
    )

    kind = fast_data_kind(train_dataset)
    device = torch.device(device if device is not None else "cpu")
    fmt = memory_format if memory_format is not None else torch.contiguous_format

    def make(spec: StreamSpec, cfgs: Any) -> EpochLoader:
        if isinstance(cfgs, Mapping):
            augment = BatchViewAugment(cfgs, mean, std, memory_format=fmt)
        else:
            augment = TwoViewBatchAugment(cfgs, mean, std, memory_format=fmt)
        if kind == "memory":
            return DeviceArrayLoader(DeviceDataset.of(train_dataset, device), spec, augment)
        return DeviceFileLoader(train_dataset, spec, augment, device, num_workers)

    return make


def build_val_loader(val_dataset: Any, batch_size: int, num_workers: int) -> DataLoader:
    """Validation loader: in order, keeps the last partial batch. ``val_dataset`` must carry its own
    transform (items ``(X, label)`` or ``(X, label, domain)``)."""
    return DataLoader(val_dataset, batch_size=batch_size, shuffle=False, drop_last=False,
                      **_loader_kwargs(num_workers))
