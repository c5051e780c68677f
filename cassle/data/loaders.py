"""Task datasets and data loaders (spec 2.6).

Batch formats (after the default collate):

* task loader: ``(indexes, [X1, X2], targets)`` -- ``indexes`` are positions in the *full* training set
  (as the official ``dataset_with_index`` wrapped before ``Subset``), ``X1``/``X2`` the two augmented
  views (``B x 3 x H x W``), ``targets`` the labels;
* online-eval loader: ``(indexes, X, targets)`` over the full training set (all classes) with one
  pipeline (the view-2 augmentation in the official code);
* validation loader: ``(X, targets)``, or ``(X, targets, domains)`` for DomainNet.

The caller renames ``"task"`` to ``"task<t>"`` and combines the dict with Lightning's
``CombinedLoader(loaders, "min_size")``: an epoch lasts as long as the shorter loader (CIFAR-100:
floor(10000 / 256) = 39 steps).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, List, Optional, Sequence

import torch
from torch.utils.data import DataLoader, Dataset

from cassle.data.splits import class_split, data_split
from cassle.errors import CassleError


def _raw_image(base: Any, index: int):
    getter = getattr(base, "get_image", None)
    if getter is not None:
        return getter(index)
    return base[index][0]


class TaskDataset(Dataset):
    """The samples ``indices`` of ``base`` with a multi-view transform.

    Item ``k`` is ``(indices[k], [view1, view2, ...], label)``. ``transform`` is a callable returning the
    list of views (e.g. :class:`cassle.data.augmentations.MultiViewTransform`) or a list of per-view
    callables. ``indices`` is kept as a flat list of Python ints (the official code passed an N x 1 tensor,
    bug 16).
    """

    def __init__(self, base: Any, indices: Sequence[int], transform: Any):
        self.base = base
        self.indices: List[int] = [int(i) for i in indices]
        if isinstance(transform, (list, tuple)):
            from cassle.data.augmentations import MultiViewTransform

            transform = MultiViewTransform(transform)
        self.transform = transform
        self.targets = [int(base.targets[i]) for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, k: int):
        i = self.indices[k]
        views = self.transform(_raw_image(self.base, i))
        return i, list(views), self.targets[k]


class OnlineEvalDataset(Dataset):
    """The whole ``base`` dataset with one transform; item ``i`` is ``(i, X, label)``."""

    def __init__(self, base: Any, transform: Callable):
        self.base = base
        self.transform = transform
        self.targets = [int(t) for t in base.targets]

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int):
        return i, self.transform(_raw_image(self.base, i)), self.targets[i]


def task_indices(
    targets: Sequence[int],
    split_strategy: str,
    tasks_or_none: Optional[Sequence[Sequence[int]]],
    task_idx: int,
    num_tasks: int,
    domains: Optional[Sequence[int]] = None,
) -> List[int]:
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


def tasks_for(split_strategy: str, num_classes: int, num_tasks: int, seed: int) -> Optional[List[List[int]]]:
    """The class blocks for ``class`` (``class_split(num_classes, num_tasks, seed)``), else ``None``."""
    if split_strategy == "class":
        return class_split(num_classes, num_tasks, seed)
    return None


def _loader_kwargs(num_workers: int) -> Dict[str, Any]:
    return {
        "num_workers": int(num_workers),
        "pin_memory": torch.cuda.is_available(),
        "persistent_workers": int(num_workers) > 0,
    }


def build_pretrain_loaders(
    train_dataset: Any,
    indices: Sequence[int],
    view_transforms: Any,
    batch_size: int,
    num_workers: int,
    online_eval_transform: Optional[Callable] = None,
) -> Dict[str, DataLoader]:
    """``{"task": loader}`` over the task's samples (items ``(index, [views], label)``; shuffle,
    drop_last), plus ``"online_eval"`` over the full training set with ``online_eval_transform``
    (items ``(index, X, label)``; same batch size, shuffle, drop_last) when that transform is given.

    A task or set smaller than one batch would give an empty epoch under ``drop_last``: a one-line error
    naming ``--batch_size``.
    """
    task_ds = TaskDataset(train_dataset, indices, view_transforms)
    if len(task_ds) < batch_size:
        raise CassleError(
            f"the task has {len(task_ds)} training samples, fewer than --batch_size {batch_size}: "
            f"no full batch to train on (lower --batch_size)"
        )
    loaders = {
        "task": DataLoader(task_ds, batch_size=batch_size, shuffle=True, drop_last=True,
                           **_loader_kwargs(num_workers)),
    }
    if online_eval_transform is not None:
        eval_ds = OnlineEvalDataset(train_dataset, online_eval_transform)
        if len(eval_ds) < batch_size:
            raise CassleError(
                f"the training set has {len(eval_ds)} samples, fewer than --batch_size {batch_size}"
            )
        loaders["online_eval"] = DataLoader(eval_ds, batch_size=batch_size, shuffle=True, drop_last=True,
                                            **_loader_kwargs(num_workers))
    return loaders


def build_val_loader(val_dataset: Any, batch_size: int, num_workers: int) -> DataLoader:
    """Validation loader: in order, keeps the last partial batch. ``val_dataset`` must carry its own
    transform (items ``(X, label)`` or ``(X, label, domain)``)."""
    return DataLoader(val_dataset, batch_size=batch_size, shuffle=False, drop_last=False,
                      **_loader_kwargs(num_workers))
