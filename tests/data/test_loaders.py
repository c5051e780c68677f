"""Task datasets, task indices and loaders: batch formats, shuffle/drop_last, CombinedLoader lengths."""

import numpy as np
import pytest
import torch
from pytorch_lightning.utilities import CombinedLoader

from cassle.data.augmentations import MultiViewTransform, build_val_transform, build_view_transform
from cassle.data.datasets import ArrayImageDataset, with_transform
from cassle.data.info import DATASET_INFO
from cassle.data.loaders import (
    OnlineEvalDataset,
    TaskDataset,
    build_pretrain_loaders,
    build_val_loader,
    task_indices,
    tasks_for,
)
from cassle.data.splits import class_split, data_split
from cassle.errors import CassleError

CIFAR = DATASET_INFO["cifar100"]


def fake_images(n=40, num_classes=5, size=8, seed=0):
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return ArrayImageDataset(data, [i % num_classes for i in range(n)])


def two_views(size=8):
    cfg = dict(gaussian_prob=0.0, solarization_prob=0.0, size=size)
    return [build_view_transform({**cfg, "solarization_prob": 0.0}, CIFAR["mean"], CIFAR["std"]),
            build_view_transform({**cfg, "solarization_prob": 0.2}, CIFAR["mean"], CIFAR["std"])]


class CheapDataset:
    """Length-only stand-in: no images are made until an item is asked for."""

    def __init__(self, n):
        self.targets = [0] * n

    def get_image(self, i):
        return i


def test_task_dataset_items():
    base = fake_images()
    idx = task_indices(base.targets, "class", [[1, 3], [0, 2], [4]], 0, 3)
    assert idx == [i for i in range(40) if i % 5 in (1, 3)]
    ds = TaskDataset(base, np.array(idx).reshape(-1, 1)[:, 0], two_views())
    assert all(type(i) is int for i in ds.indices)
    i, views, y = ds[2]
    assert i == idx[2] and y == base.targets[idx[2]]
    assert isinstance(views, list) and len(views) == 2 and views[0].shape == (3, 8, 8)
    ds2 = TaskDataset(base, idx, MultiViewTransform(two_views()))
    assert len(ds2[0][1]) == 2 and len(ds2) == len(idx)


def test_task_indices_strategies():
    targets = [i % 10 for i in range(100)]
    tasks = tasks_for("class", 10, 5, 5)
    assert tasks == class_split(10, 5, 5)
    seen = []
    for t in range(5):
        idx = task_indices(targets, "class", tasks, t, 5)
        assert {targets[i] for i in idx} == set(tasks[t]) and len(idx) == 20
        seen += idx
    assert sorted(seen) == list(range(100))
    assert tasks_for("data", 10, 5, 5) is None
    for t in range(3):
        assert task_indices(targets, "data", None, t, 3) == data_split(100, 3)[t]
    domains = [0] * 3 + [1] * 2 + [5] * 4
    assert task_indices([0] * 9, "domain", None, 5, 6, domains) == [5, 6, 7, 8]
    assert task_indices([0] * 9, "domain", None, 2, 6, domains) == []
    with pytest.raises(CassleError) as exc:
        task_indices(targets, "class", tasks, 5, 5)
    assert "--task_idx" in str(exc.value)
    with pytest.raises(CassleError):
        task_indices(targets, "domain", None, 0, 6)


def test_pretrain_loaders_batch_format():
    base = fake_images(40)
    idx = task_indices(base.targets, "class", [[0, 1], [2, 3, 4]], 0, 2)  # 16 samples
    eval_t = two_views()[1]
    loaders = build_pretrain_loaders(base, idx, two_views(), batch_size=4, num_workers=0,
                                     online_eval_transform=eval_t)
    assert set(loaders) == {"task", "online_eval"}
    task, online = loaders["task"], loaders["online_eval"]
    assert task.drop_last and online.drop_last
    assert isinstance(task.sampler, torch.utils.data.RandomSampler)
    assert isinstance(online.sampler, torch.utils.data.RandomSampler)
    assert task.pin_memory == torch.cuda.is_available() and not task.persistent_workers
    assert len(task) == 4 and len(online) == 10 and len(online.dataset) == 40  # all classes

    indexes, views, targets = next(iter(task))
    assert indexes.shape == (4,) and targets.shape == (4,)
    assert isinstance(views, list) and len(views) == 2
    assert all(v.shape == (4, 3, 8, 8) and v.dtype == torch.float32 for v in views)
    assert set(indexes.tolist()) <= set(idx)
    assert targets.tolist() == [base.targets[i] for i in indexes.tolist()]

    indexes, x, targets = next(iter(online))
    assert x.shape == (4, 3, 8, 8) and targets.tolist() == [base.targets[i] for i in indexes.tolist()]

    only_task = build_pretrain_loaders(base, idx, two_views(), batch_size=4, num_workers=0)
    assert set(only_task) == {"task"}


def test_pretrain_loaders_shuffle_and_drop_last():
    base = fake_images(40)
    loaders = build_pretrain_loaders(base, list(range(10)), two_views(), batch_size=4, num_workers=0)
    torch.manual_seed(0)
    batches = [b[0].tolist() for b in loaders["task"]]
    assert len(batches) == 2  # 10 // 4, last partial batch dropped
    flat = [i for b in batches for i in b]
    assert len(set(flat)) == 8 and flat != sorted(flat)


def test_pretrain_loaders_reject_task_smaller_than_batch():
    base = fake_images(10)
    with pytest.raises(CassleError) as exc:
        build_pretrain_loaders(base, list(range(6)), two_views(), batch_size=8, num_workers=0)
    assert "--batch_size" in str(exc.value) and "\n" not in str(exc.value)


def test_combined_loader_min_size_tiny():
    base = fake_images(100, num_classes=10)
    idx = task_indices(base.targets, "class", [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]], 0, 2)
    assert len(idx) == 40
    loaders = build_pretrain_loaders(base, idx, two_views(), 8, 0, online_eval_transform=two_views()[0])
    combined = CombinedLoader({"task0": loaders["task"], "online_eval": loaders["online_eval"]}, "min_size")
    it = iter(combined)
    assert len(combined) == 5
    batch, _, _ = next(it)
    assert set(batch) == {"task0", "online_eval"}
    assert len(batch["task0"]) == 3 and len(batch["task0"][1]) == 2
    assert sum(1 for _ in combined) == 5


def test_combined_loader_cifar_epoch_is_39_steps():
    base = CheapDataset(50000)
    loaders = build_pretrain_loaders(base, list(range(10000)), lambda im: [im, im], 256, 0,
                                     online_eval_transform=lambda im: im)
    combined = CombinedLoader({"task0": loaders["task"], "online_eval": loaders["online_eval"]}, "min_size")
    iter(combined)
    assert len(loaders["task"]) == 39 and len(loaders["online_eval"]) == 195
    assert len(combined) == 39


def test_val_loader_keeps_order_and_last_batch():
    base = fake_images(10, size=32)
    val = with_transform(base, build_val_transform("cifar100"))
    loader = build_val_loader(val, batch_size=4, num_workers=0)
    batches = list(loader)
    assert [len(b[1]) for b in batches] == [4, 4, 2]
    x, y = batches[0]
    assert x.shape == (4, 3, 32, 32) and y.tolist() == base.targets[:4]
    assert not loader.drop_last and isinstance(loader.sampler, torch.utils.data.SequentialSampler)


def test_online_eval_dataset_items():
    base = fake_images(6)
    ds = OnlineEvalDataset(base, lambda im: np.asarray(im).shape)
    assert ds[4] == (4, (8, 8, 3), base.targets[4]) and len(ds) == 6
