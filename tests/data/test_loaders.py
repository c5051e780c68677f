"""Training loaders of both paths (batch formats, epochs, seeds, ranks), task indices, validation loader."""

import numpy as np
import pytest
import torch
from pytorch_lightning.utilities import CombinedLoader

from cassle.data.augmentations import build_val_transform, build_view_transform
from cassle.data.datasets import ArrayImageDataset, with_transform
from cassle.data.epochs import StreamSpec
from cassle.data.info import DATASET_INFO
from cassle.data.loaders import (
    AugmentedDataset,
    WorkerLoader,
    build_train_loaders,
    build_val_loader,
    fast_data_kind,
    task_indices,
    tasks_for,
)
from cassle.data.splits import class_split, data_split
from cassle.errors import CassleError
from tests.data.batches import epoch_batches, same_batches

CIFAR = DATASET_INFO["cifar100"]


def fake_images(n=40, num_classes=5, size=8, seed=0):
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 256, size=(n, size, size, 3), dtype=np.uint8)
    return ArrayImageDataset(data, [i % num_classes for i in range(n)])


def view_configs(size=8):
    cfg = dict(gaussian_prob=0.0, size=size)
    return [{**cfg, "solarization_prob": 0.0}, {**cfg, "solarization_prob": 0.2}]


def loaders_of(base, indices, batch_size=4, online_eval=False, **kwargs):
    kwargs = {"seed": 5, "task": 0, "num_workers": 0, **kwargs}
    views = view_configs()
    return build_train_loaders(base, indices, views, CIFAR["mean"], CIFAR["std"], batch_size,
                               online_eval_view=views[-1] if online_eval else None, **kwargs)


class CheapDataset:
    """Length-only stand-in: no images are made until an item is asked for."""

    def __init__(self, n):
        self.targets = [0] * n

    def get_image(self, i):
        return i


def test_augmented_dataset_items_and_per_sample_seeds():
    base = fake_images()
    views = [build_view_transform(c, CIFAR["mean"], CIFAR["std"]) for c in view_configs()]
    ds = AugmentedDataset(base, views, seed=3)
    i, x, y = ds[(2, 7)]
    assert i == 7 and y == base.targets[7]
    assert isinstance(x, list) and len(x) == 2 and x[0].shape == (3, 8, 8)
    again = ds[(2, 7)]
    assert all(torch.equal(a, b) for a, b in zip(x, again[1]))  # (seed, epoch, index) fixes the draws
    assert not torch.equal(x[0], ds[(3, 7)][1][0])  # another epoch
    assert not torch.equal(x[0], AugmentedDataset(base, views, seed=4)[(2, 7)][1][0])  # another stream
    single = AugmentedDataset(base, views[1])
    assert single[4][1].shape == (3, 8, 8) and single[4][0] == 4 and len(single) == 40


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


def test_train_loaders_batch_format():
    base = fake_images(40)
    idx = task_indices(base.targets, "class", [[0, 1], [2, 3, 4]], 1, 2)  # 24 samples
    loaders = loaders_of(base, idx, online_eval=True, task=1)
    assert set(loaders) == {"task1", "online_eval"}
    task, online = loaders["task1"], loaders["online_eval"]
    assert isinstance(task, WorkerLoader) and isinstance(online, WorkerLoader)
    assert task.dataloader.pin_memory == torch.cuda.is_available()
    assert not task.dataloader.persistent_workers
    assert len(task) == 6 and len(online) == 10  # all 40 images, all classes

    indexes, views, targets = next(iter(task))
    assert indexes.shape == (4,) and targets.shape == (4,)
    assert isinstance(views, list) and len(views) == 2
    assert all(v.shape == (4, 3, 8, 8) and v.dtype == torch.float32 for v in views)
    assert set(indexes.tolist()) <= set(idx)
    assert targets.tolist() == [base.targets[i] for i in indexes.tolist()]

    indexes, x, targets = next(iter(online))
    assert x.shape == (4, 3, 8, 8) and targets.tolist() == [base.targets[i] for i in indexes.tolist()]
    assert set(loaders_of(base, idx)) == {"task0"}


def test_train_loaders_shuffle_drop_last_and_epochs():
    base = fake_images(40)
    loader = loaders_of(base, list(range(10)))["task0"]
    epoch0 = epoch_batches(loader, 0)
    assert len(epoch0) == len(loader) == 2  # 10 // 4, last partial batch dropped
    flat = [i for b in epoch0 for i in b[0].tolist()]
    assert len(set(flat)) == 8 and flat != sorted(flat)
    assert same_batches(epoch0, list(loader))  # only set_epoch moves the epoch
    assert [b[0].tolist() for b in epoch_batches(loader, 1)] != [b[0].tolist() for b in epoch0]


def test_worker_augmentation_does_not_depend_on_workers_or_history():
    base = fake_images(24)
    inline = loaders_of(base, list(range(20)))["task0"]
    workers = loaders_of(base, list(range(20)), num_workers=2)["task0"]
    assert workers.dataloader.persistent_workers
    epoch_batches(inline, 0)
    expected = epoch_batches(inline, 1)
    assert same_batches(expected, epoch_batches(workers, 1))  # two processes, no epoch 0 before
    assert same_batches(epoch_batches(workers, 0), epoch_batches(inline, 0))  # the same workers, going back


def test_both_paths_share_the_order_of_every_epoch():
    base = fake_images(30)
    idx = list(range(3, 30, 2))
    for epoch in (0, 3):
        faithful = epoch_batches(loaders_of(base, idx, task=2)["task2"], epoch)
        fast = epoch_batches(loaders_of(base, idx, task=2, fast=True)["task2"], epoch)
        assert [b[0].tolist() for b in faithful] == [b[0].tolist() for b in fast]
        assert all(torch.equal(f[2], d[2]) for f, d in zip(faithful, fast))
    from cassle.data.device import DeviceDataset

    assert DeviceDataset.of(base, "cpu") is DeviceDataset.of(base, torch.device("cpu"))  # one copy per run


def test_train_loaders_shard_over_ranks():
    base = fake_images(40)
    ranks = [loaders_of(base, list(range(22)), rank=r, world_size=2)["task0"] for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == 2  # (22 // 2) // 4
    got = [[i for b in epoch_batches(loader, 1) for i in b[0].tolist()] for loader in ranks]
    assert len(got[0]) == len(got[1]) == 8 and not set(got[0]) & set(got[1])
    order = ranks[0].sampler.epoch_order(1).tolist()
    assert got[0] == order[0:16:2] and got[1] == order[1:16:2]


def test_train_loaders_reject_less_than_a_batch_per_rank():
    base = fake_images(10)
    with pytest.raises(CassleError) as exc:
        loaders_of(base, list(range(6)), batch_size=8)
    assert "--batch_size" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CassleError, match="2 devices"):
        loaders_of(base, list(range(10)), batch_size=6, world_size=2)
    with pytest.raises(CassleError, match="--fast_data"):
        fast_data_kind(CheapDataset(4))
    assert fast_data_kind(base) == "memory"


def test_combined_loader_min_size_tiny():
    base = fake_images(100, num_classes=10)
    idx = task_indices(base.targets, "class", [[0, 1, 2, 3], [4, 5, 6, 7, 8, 9]], 0, 2)
    assert len(idx) == 40
    combined = CombinedLoader(loaders_of(base, idx, batch_size=8, online_eval=True), "min_size")
    it = iter(combined)
    assert len(combined) == 5
    batch, _, _ = next(it)
    assert set(batch) == {"task0", "online_eval"}
    assert len(batch["task0"]) == 3 and len(batch["task0"][1]) == 2
    assert sum(1 for _ in combined) == 5


def test_combined_loader_cifar_epoch_is_39_steps():
    base = CheapDataset(50000)
    loaders = {
        "task0": WorkerLoader(base, StreamSpec(range(10000), 256, 5, 0, "task"), lambda im: [im, im], 0),
        "online_eval": WorkerLoader(base, StreamSpec(range(50000), 256, 5, 0, "online_eval"), lambda im: im, 0),
    }
    combined = CombinedLoader(loaders, "min_size")
    iter(combined)
    assert len(loaders["task0"]) == 39 and len(loaders["online_eval"]) == 195
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
