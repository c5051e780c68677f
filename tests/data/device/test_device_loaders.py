"""Device loaders: batch formats, epochs from set_epoch, and two simulated ranks sharing each epoch."""

import numpy as np
import pytest
import torch
from pytorch_lightning.utilities import CombinedLoader

from cassle.data.datasets import FileListDataset, load_imagenet100
from cassle.data.device.loaders import DeviceArrayLoader, DeviceDataset, DeviceFileLoader
from cassle.data.device.pipelines import BatchViewAugment, TwoViewBatchAugment
from cassle.data.epochs import StreamSpec
from tests.data.batches import epoch_batches, same_batches
from tests.data.device.helpers import FILES, MEAN, STD, cifar_cfg, identity_cfg, normalise, smooth_image

SIZE = 16


def file_cfg(**over):
    return cifar_cfg(**{"size": SIZE, "gaussian_prob": 0.5, **over})


@pytest.fixture(scope="module")
def device_data() -> DeviceDataset:
    rng = np.random.default_rng(41)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    return DeviceDataset(images, [i % 5 for i in range(50)], device="cpu")


# ------------------------------------------------------------------------------------------ in memory
def test_array_loader_batches(device_data: DeviceDataset) -> None:
    task = [i for i in range(50) if i % 5 in (1, 3)]
    aug = TwoViewBatchAugment([identity_cfg(8), identity_cfg(8, horizontal_flip_prob=1.0)], MEAN, STD)
    loader = DeviceArrayLoader(device_data, StreamSpec(task, 6, seed=5, task=0, name="task"), aug)
    assert len(loader) == 3
    epoch0 = epoch_batches(loader, 0)
    seen = []
    for idx, views, y in epoch0:
        assert isinstance(views, list) and len(views) == 2 and idx.shape == (6,) and y.shape == (6,)
        assert set(idx.tolist()) <= set(task) and torch.equal(y, idx % 5)
        ref = normalise(device_data.images[idx])
        torch.testing.assert_close(views[0], ref, atol=1e-6, rtol=0)  # views belong to the indexed images
        torch.testing.assert_close(views[1], ref.flip(-1), atol=1e-6, rtol=0)
        seen += idx.tolist()
    assert len(set(seen)) == 18  # no repeats within an epoch; the last 2 images dropped
    assert same_batches(epoch0, list(loader))  # iterating again is the same epoch: only set_epoch moves it
    epoch1 = epoch_batches(loader, 1)
    assert not all(torch.equal(a[0], b[0]) for a, b in zip(epoch0, epoch1))  # reshuffled
    rand_aug = TwoViewBatchAugment(cifar_cfg(size=8), MEAN, STD)
    spec = StreamSpec(task, 6, seed=5, task=0, name="task")
    r1 = epoch_batches(DeviceArrayLoader(device_data, spec, rand_aug), 1)
    r2 = epoch_batches(DeviceArrayLoader(device_data, spec, rand_aug), 1)
    assert same_batches(r1, r2) and [b[0].tolist() for b in r1] == [b[0].tolist() for b in epoch1]


def test_single_view_stream_and_combined_loader(device_data: DeviceDataset) -> None:
    two_views = TwoViewBatchAugment(cifar_cfg(size=8), MEAN, STD)
    task = DeviceArrayLoader(device_data, StreamSpec(range(0, 50, 2), 8, 0, 0, "task"), two_views)
    one_view = BatchViewAugment(cifar_cfg(size=8), MEAN, STD)
    online = DeviceArrayLoader(device_data, StreamSpec(range(50), 8, 0, 0, "online_eval"), one_view)
    assert len(online) == 6
    combined = CombinedLoader({"task0": task, "online_eval": online}, mode="min_size")
    iter(combined)
    assert len(combined) == 3 == min(len(task), len(online))
    steps = 0
    for batch, batch_idx, _ in combined:
        idx, (x1, x2), y = batch["task0"]
        assert x1.shape == x2.shape == (8, 3, 8, 8) and (idx % 2 == 0).all() and y.shape == (8,)
        oidx, ox, oy = batch["online_eval"]
        assert isinstance(ox, torch.Tensor) and ox.shape == (8, 3, 8, 8)
        assert torch.equal(oy, device_data.targets[oidx])
        assert batch_idx == steps
        steps += 1
    assert steps == 3
    with pytest.raises(ValueError):
        DeviceArrayLoader(device_data, StreamSpec([0, 50], 1, 0, 0, "task"), one_view)


# ------------------------------------------------------------------------------------------ files
def test_file_loader_batches(file_dataset) -> None:
    indices = [0, 2, 3, 4, 5, 6, 8]
    augment = TwoViewBatchAugment([file_cfg(), file_cfg(gaussian_prob=1.0, size=12)], MEAN, STD)
    loader = DeviceFileLoader(file_dataset, StreamSpec(indices, 3, 7, 0, "task"), augment, num_workers=0)
    assert len(loader) == 2  # floor(7 / 3)
    seen = []
    for idx, views, targets in loader:
        assert isinstance(views, list) and len(views) == 2
        assert views[0].shape == (3, 3, SIZE, SIZE) and views[1].shape == (3, 3, 12, 12)
        assert all(x.dtype == torch.float32 and torch.isfinite(x).all() for x in views)
        assert idx.dtype == torch.long and targets.dtype == torch.long
        assert targets.tolist() == [file_dataset.targets[i] for i in idx.tolist()]
        seen += idx.tolist()
    assert len(seen) == 6 and len(set(seen)) == 6 and set(seen) <= set(indices)
    online = DeviceFileLoader(file_dataset, StreamSpec(range(len(FILES)), 4, 7, 0, "online_eval"),
                              BatchViewAugment(file_cfg(), MEAN, STD), num_workers=0)
    assert len(online) == len(FILES) // 4
    idx, x, y = next(iter(online))
    assert x.shape == (4, 3, SIZE, SIZE) and y.tolist() == [file_dataset.targets[i] for i in idx.tolist()]


def test_file_loader_epochs_do_not_depend_on_workers_or_history(file_dataset) -> None:
    def make(workers):
        augment = TwoViewBatchAugment(file_cfg(), MEAN, STD)
        return DeviceFileLoader(file_dataset, StreamSpec(range(len(FILES)), 4, 11, 0, "task"), augment,
                                num_workers=workers)

    a = make(0)
    a0, a1 = epoch_batches(a, 0), epoch_batches(a, 1)
    b1 = epoch_batches(make(1), 1)  # a worker process, and epoch 1 without epoch 0 before it
    assert same_batches(a1, b1)
    assert [b[0].tolist() for b in a0] != [b[0].tolist() for b in a1]


# ------------------------------------------------------------------------------------------ two ranks
def check_two_ranks(make, batch_size: int) -> None:
    """``make(rank, task)`` builds rank ``rank`` of 2 for ``task``, over identical images."""
    ranks = [make(0, 0), make(1, 0)]
    assert len(ranks[0]) == len(ranks[1]) > 0
    for epoch in (0, 1):
        batches = [epoch_batches(loader, epoch) for loader in ranks]
        order = ranks[0].sampler.epoch_order(epoch).tolist()
        assert order == ranks[1].sampler.epoch_order(epoch).tolist()  # identical order on both ranks
        got = [torch.cat([b[0] for b in rank_batches]).tolist() for rank_batches in batches]
        assert len(got[0]) == len(got[1]) == len(ranks[0]) * batch_size
        assert not set(got[0]) & set(got[1])
        covered = 2 * len(ranks[0]) * batch_size  # the epoch minus the dropped remainder
        assert sorted(got[0] + got[1]) == sorted(order[:covered])
        assert got[0] == order[0:covered:2] and got[1] == order[1:covered:2]
        for rank_batches in batches:
            assert all(b[2].tolist() == b[0].tolist() for b in rank_batches)  # label i for sample i
        # The images are all the same, so equal views would mean equal augmentation draws.
        assert not torch.equal(batches[0][0][1][0], batches[1][0][1][0])
        assert not torch.equal(batches[0][0][1][1], batches[1][0][1][1])
    assert ranks[0].sampler.epoch_order(0).tolist() != ranks[0].sampler.epoch_order(1).tolist()
    assert make(0, 1).sampler.epoch_order(0).tolist() != ranks[0].sampler.epoch_order(0).tolist()


def test_two_ranks_share_each_epoch_in_memory() -> None:
    image = np.random.default_rng(3).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    data = DeviceDataset(np.repeat(image, 23, axis=0), list(range(23)))
    augment = TwoViewBatchAugment(cifar_cfg(size=8), MEAN, STD)

    def make(rank, task):
        return DeviceArrayLoader(data, StreamSpec(range(23), 3, 5, task, "task", rank, world_size=2), augment)

    check_two_ranks(make, 3)


def test_two_ranks_share_each_epoch_of_files(tmp_path) -> None:
    path = tmp_path / "same.jpg"
    smooth_image(np.random.RandomState(0), 20, 24).save(path, "JPEG")
    files = FileListDataset([(str(path), i) for i in range(11)])
    augment = TwoViewBatchAugment(file_cfg(), MEAN, STD)

    def make(rank, task):
        return DeviceFileLoader(files, StreamSpec(range(11), 2, 5, task, "task", rank, world_size=2), augment,
                                num_workers=0)

    check_two_ranks(make, 2)


# ------------------------------------------------------------------------------------------ driver
def test_task_data_fast_data_on_file_dataset(tree) -> None:
    from cassle.args.pretrain import parse_args
    from cassle.train import TaskData

    args = parse_args([
        "--method", "simclr", "--dataset", "imagenet100", "--fast_data",
        "--train_dir", str(tree / "train"), "--val_dir", str(tree / "val"),
        "--split_strategy", "data", "--num_tasks", "2", "--batch_size", "2", "--size", str(SIZE),
        "--num_workers", "0", "--accelerator", "cpu", "--online_eval",
    ])
    datasets = load_imagenet100(str(tree / "train"), str(tree / "val"))
    data = TaskData(args, datasets)
    loaders = data.train_loaders(1, torch.device("cpu"))
    assert set(loaders) == {"task1", "online_eval"}
    task = loaders["task1"]
    assert isinstance(task, DeviceFileLoader) and isinstance(loaders["online_eval"], DeviceFileLoader)
    wanted = set(data.task_indices(1))
    assert len(task) == len(wanted) // 2
    idx, (x1, x2), y = next(iter(task))
    assert x1.shape == x2.shape == (2, 3, SIZE, SIZE) and x1.dtype == torch.float32
    assert set(idx.tolist()) <= wanted and y.tolist() == [datasets[0].targets[i] for i in idx.tolist()]
    idx, x, y = next(iter(loaders["online_eval"]))
    assert x.shape == (2, 3, SIZE, SIZE) and len(loaders["online_eval"]) == len(FILES) // 2
