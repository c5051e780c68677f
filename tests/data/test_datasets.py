"""Dataset readers on tiny copies written in the real formats: CIFAR-10/100 python pickles (both layouts),
STL-10 binary files, ImageNet-style and custom class folders (also without labels), DomainNet list files;
and the embedded digits. CIFAR-10 and STL-10 are compared with torchvision's own readers."""

import os
import pickle
import sys

import numpy as np
import pytest
from PIL import Image

from cassle.data import datasets as D
from cassle.data.datasets import (
    DATASETS,
    ArrayImageDataset,
    FileListDataset,
    build_datasets,
    digits_stats,
    load_cifar10,
    load_cifar100,
    load_digits,
    load_domainnet,
    load_imagenet100,
    load_stl10,
    with_transform,
)
from cassle.data.splits import DOMAINNET_DOMAINS
from cassle.errors import CassleError, DataNotFoundError, one_line


def one_line_error(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)
    return msg


# ------------------------------------------------------------------------------------ CIFAR-100


def _cifar_batch(n, seed):
    rng = np.random.RandomState(seed)
    data = rng.randint(0, 256, size=(n, 3072), dtype=np.uint8)
    fine = [int(v) for v in rng.randint(0, 100, size=n)]
    return {
        b"filenames": [f"img_{i}.png".encode() for i in range(n)],
        b"batch_label": b"training batch 1 of 1",
        b"fine_labels": fine,
        b"coarse_labels": [f // 5 for f in fine],
        b"data": data,
    }


def write_cifar(folder, n_train=6, n_test=4, seed=0):
    """A tiny torchvision ``cifar-100-python`` folder (pickle protocol 2, bytes keys)."""
    folder = os.path.join(folder, "cifar-100-python")
    os.makedirs(folder, exist_ok=True)
    batches = {"train": _cifar_batch(n_train, seed), "test": _cifar_batch(n_test, seed + 1)}
    for name, batch in batches.items():
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batch, f, protocol=2)
    meta = {b"fine_label_names": [f"class{i}".encode() for i in range(100)],
            b"coarse_label_names": [f"super{i}".encode() for i in range(20)]}
    with open(os.path.join(folder, "meta"), "wb") as f:
        pickle.dump(meta, f, protocol=2)
    return batches


def _check_against(ds, batch):
    assert isinstance(ds, ArrayImageDataset)
    n = len(batch[b"fine_labels"])
    assert len(ds) == n and ds.targets == batch[b"fine_labels"]
    assert ds.data.dtype == np.uint8 and ds.data.shape == (n, 32, 32, 3)
    row = batch[b"data"][1]
    # rows are channel-first: R plane, G plane, B plane (1024 values each)
    assert tuple(ds.data[1, 0, 0]) == (row[0], row[1024], row[2048])
    assert tuple(ds.data[1, 2, 5]) == (row[2 * 32 + 5], row[1024 + 2 * 32 + 5], row[2048 + 2 * 32 + 5])
    img, label = ds[1]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and img.size == (32, 32)
    assert label == batch[b"fine_labels"][1]
    assert np.array_equal(np.asarray(img), ds.data[1])


def test_cifar_official_layout_reads_train_and_val_copies(tmp_path):
    train_b = write_cifar(tmp_path / "cifar100" / "train", seed=0)
    val_b = write_cifar(tmp_path / "cifar100" / "val", n_test=3, seed=10)
    train, test = load_cifar100(str(tmp_path), download=False)
    _check_against(train, train_b["train"])
    _check_against(test, val_b["test"])  # the test set comes from the val copy
    assert train.classes[:2] == ["class0", "class1"]


def test_cifar_direct_layout(tmp_path):
    b = write_cifar(tmp_path, seed=3)
    train, test = load_cifar100(str(tmp_path), download=False)
    _check_against(train, b["train"])
    _check_against(test, b["test"])


def test_cifar_missing_data_dir_never_downloads(tmp_path, monkeypatch):
    import torchvision.datasets

    def boom(*a, **k):
        raise AssertionError("must not download")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", boom)
    missing = tmp_path / "nowhere"
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar100(str(missing), download=True)
    one_line_error(exc, missing, "cifar-100-python", "cifar-100-python.tar.gz", "--data_dir")
    assert not missing.exists()


def test_cifar_missing_files_without_download(tmp_path):
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar100(str(tmp_path), download=False)
    one_line_error(exc, os.path.join(str(tmp_path), "cifar-100-python"))


def test_cifar_download_failure_is_one_line(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fail(root, train, download):
        calls.append(root)
        raise RuntimeError("no network\nsecond line of a long story")

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fail)
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar100(str(tmp_path), download=True)
    one_line_error(exc, str(tmp_path), "download failed", "no network")
    assert calls == [os.path.join(str(tmp_path), "cifar100", "train")]


def test_cifar_download_success_is_read_back(tmp_path, monkeypatch):
    import torchvision.datasets

    def fake_download(root, train, download):  # what torchvision leaves after a download
        write_cifar(root, seed=7)

    monkeypatch.setattr(torchvision.datasets, "CIFAR100", fake_download)
    train, test = load_cifar100(str(tmp_path), download=True)
    assert len(train) == 6 and len(test) == 4
    assert (tmp_path / "cifar100" / "val" / "cifar-100-python" / "test").is_file()


def test_cifar_corrupt_file(tmp_path):
    write_cifar(tmp_path)
    (tmp_path / "cifar-100-python" / "train").write_bytes(b"not a pickle")
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar100(str(tmp_path), download=False)
    one_line_error(exc, os.path.join(str(tmp_path), "cifar-100-python", "train"))


def test_build_datasets_cifar(tmp_path):
    write_cifar(tmp_path / "cifar100" / "train")
    write_cifar(tmp_path / "cifar100" / "val")
    train, val = build_datasets("cifar100", data_dir=str(tmp_path))
    assert len(train) == 6 and len(val) == 4


# ------------------------------------------------------------------------------------ ImageNet-100


def _save(path, color, fmt=None, mode="RGB"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    img = Image.new(mode, (10, 8), color)
    img.save(path, format=fmt)


def write_image_folder(root, classes=("n02", "n01", "b_cls")):
    """Class folders created in unsorted order, mixed extensions / case, one nested file, one non-image."""
    for k, cls in enumerate(classes):
        d = os.path.join(root, cls)
        _save(os.path.join(d, "b.JPEG"), (k * 40, 0, 0), "JPEG")
        _save(os.path.join(d, "a.png"), k * 40, "PNG", mode="L")  # grey: converted to RGB
        _save(os.path.join(d, "sub", "c.jpg"), (0, k * 40, 0), "JPEG")
        with open(os.path.join(d, "notes.txt"), "w") as f:
            f.write("not an image")


def test_imagenet_folders_sorted_labels(tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "val")
    train, val = load_imagenet100(str(tmp_path / "train"), str(tmp_path / "val"))
    assert train.classes == ["b_cls", "n01", "n02"]
    names = [os.path.relpath(p, tmp_path / "train") for p, _ in train.samples]
    assert names == [
        "b_cls/a.png", "b_cls/b.JPEG", "b_cls/sub/c.jpg",
        "n01/a.png", "n01/b.JPEG", "n01/sub/c.jpg",
        "n02/a.png", "n02/b.JPEG", "n02/sub/c.jpg",
    ]
    assert train.targets == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert val.targets == train.targets
    img, label = train[3]
    assert isinstance(img, Image.Image) and img.mode == "RGB" and label == 1
    # grey PNG of class "n01" (k=1) -> value 40 on the three channels
    assert tuple(np.asarray(img)[0, 0]) == (40, 40, 40)


def test_imagenet_errors(tmp_path):
    write_image_folder(tmp_path / "train")
    with pytest.raises(DataNotFoundError) as exc:
        load_imagenet100(str(tmp_path / "train"), str(tmp_path / "missing"))
    one_line_error(exc, "--val_dir", tmp_path / "missing")

    (tmp_path / "empty").mkdir()
    with pytest.raises(DataNotFoundError) as exc:
        load_imagenet100(str(tmp_path / "empty"), str(tmp_path / "train"))
    one_line_error(exc, "--train_dir", tmp_path / "empty")

    write_image_folder(tmp_path / "val", classes=("n01", "n02", "zzz"))
    with pytest.raises(DataNotFoundError) as exc:
        load_imagenet100(str(tmp_path / "train"), str(tmp_path / "val"))
    one_line_error(exc, "b_cls", "zzz")

    (tmp_path / "train2" / "n01").mkdir(parents=True)
    with pytest.raises(DataNotFoundError) as exc:
        load_imagenet100(str(tmp_path / "train2"), str(tmp_path / "train"))
    one_line_error(exc, tmp_path / "train2" / "n01")

    with pytest.raises(DataNotFoundError) as exc:  # 3 class folders, 100 expected
        build_datasets("imagenet100", train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "train"))
    one_line_error(exc, "100", "--train_dir")


def test_build_datasets_imagenet100_with_100_classes(tmp_path):
    for split in ("train", "val"):
        for c in range(100):
            _save(str(tmp_path / "in100" / split / f"n{c:08d}" / "x.png"), (c, c, c), "PNG")
    # relative dirs are joined to --data_dir (absolute ones stay as they are)
    train, val = build_datasets("imagenet100", data_dir=str(tmp_path), train_dir="in100/train",
                                val_dir=str(tmp_path / "in100" / "val"))
    assert len(train) == len(val) == 100 and train.targets == list(range(100))


# ------------------------------------------------------------------------------------ DomainNet


def write_domainnet(root, per_domain=2):
    """Images under <root>/<domain>/<class>/..., list files <domain>_{train,test}.txt."""
    expected = {}
    for d_idx, domain in enumerate(DOMAINNET_DOMAINS):
        for split in ("train", "test"):
            lines = []
            for k in range(per_domain):
                label = (d_idx * 7 + k * 100 + (split == "test")) % 345
                rel = f"{domain}/cls_{label}/{domain}_{split}_{k}.jpg"
                _save(os.path.join(root, rel), (d_idx * 30, k * 60, 0), "JPEG")
                lines.append(f"{rel} {label}")
                expected.setdefault(split, []).append((rel, label, d_idx))
            with open(os.path.join(root, f"{domain}_{split}.txt"), "w") as f:
                f.write("\n".join(lines) + "\n\n")  # trailing blank line is fine
    return expected


def test_domainnet_lists(tmp_path):
    expected = write_domainnet(str(tmp_path))
    for split in ("train", "test"):
        ds = load_domainnet(str(tmp_path), split)
        assert isinstance(ds, FileListDataset)
        got = [(os.path.relpath(p, tmp_path), y, d) for (p, y), d in zip(ds.samples, ds.domains)]
        assert got == expected[split]
        img, label, domain = ds[5]
        assert img.mode == "RGB" and (label, domain) == expected[split][5][1:]
    assert [d for d in load_domainnet(str(tmp_path), "train").domains] == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    one = load_domainnet(str(tmp_path), "train", "sketch")  # a single string is one domain
    assert len(one) == 2 and one.domains == [3, 3]
    train, test = build_datasets("domainnet", data_dir=str(tmp_path))
    assert len(train) == 12 and len(test) == 12


def test_domainnet_errors(tmp_path):
    write_domainnet(str(tmp_path))
    bad = tmp_path / "painting_train.txt"
    lines = bad.read_text().splitlines()
    bad.write_text(lines[0] + "\n" + "painting/no_label.jpg\n")
    with pytest.raises(DataNotFoundError) as exc:
        load_domainnet(str(tmp_path), "train")
    one_line_error(exc, bad, "line 2")

    bad.write_text(lines[0] + "\n" + "painting/x.jpg seven\n")
    with pytest.raises(DataNotFoundError) as exc:
        load_domainnet(str(tmp_path), "train")
    one_line_error(exc, bad, "line 2", "seven")

    bad.write_text("painting/x.jpg 345\n")
    with pytest.raises(DataNotFoundError) as exc:
        load_domainnet(str(tmp_path), "train")
    one_line_error(exc, bad, "line 1", "345")

    os.remove(tmp_path / "clipart_test.txt")
    with pytest.raises(DataNotFoundError) as exc:
        load_domainnet(str(tmp_path), "test")
    one_line_error(exc, tmp_path / "clipart_test.txt", "--data_dir")

    (tmp_path / "real_test.txt").write_text("real/missing.jpg 3\n")
    with pytest.raises(DataNotFoundError) as exc:
        load_domainnet(str(tmp_path), "test", ["real"])
    one_line_error(exc, tmp_path / "real" / "missing.jpg", "real_test.txt", "line 1")

    with pytest.raises(DataNotFoundError) as exc:
        load_domainnet(str(tmp_path / "nope"), "train")
    one_line_error(exc, tmp_path / "nope", "--data_dir")

    with pytest.raises(CassleError):
        load_domainnet(str(tmp_path), "train", ["photos"])


def test_file_list_missing_image_is_one_line(tmp_path):
    ds = FileListDataset([(str(tmp_path / "gone.jpg"), 0)])
    with pytest.raises(DataNotFoundError) as exc:
        ds[0]
    one_line_error(exc, tmp_path / "gone.jpg")


# ------------------------------------------------------------------------------------ digits / misc


@pytest.fixture(scope="module")
def digits():
    return load_digits()


def test_digits_split(digits):
    train, test = digits
    assert len(train) + len(test) == 1797
    assert (len(train), len(test)) == (1438, 359)
    assert sorted(set(train.targets)) == list(range(10)) == sorted(set(test.targets))
    tr_counts = np.bincount(train.targets, minlength=10)
    te_counts = np.bincount(test.targets, minlength=10)
    for c in range(10):  # stratified: 20% of every class, rounded
        assert te_counts[c] == round(0.2 * (tr_counts[c] + te_counts[c]))
    assert train.data.shape == (1438, 16, 16, 3) and train.data.dtype == np.uint8
    assert np.array_equal(train.data[..., 0], train.data[..., 2])  # grey replicated to RGB
    assert train.data.max() == 255 and train.data.min() == 0
    img, label = train[0]
    assert img.size == (16, 16) and img.mode == "RGB" and 0 <= label < 10


def test_digits_split_is_fixed(digits):
    train, test = digits
    again_train, again_test = load_digits()
    assert again_train.targets == train.targets and again_test.targets == test.targets
    assert np.array_equal(again_train.data, train.data) and np.array_equal(again_test.data, test.data)
    tr_idx, te_idx = D.digits_split_indices(np.repeat(np.arange(10), 10))
    assert len(te_idx) == 20 and not set(tr_idx) & set(te_idx)


def test_digits_stats_match_table(digits):
    train, _ = digits
    mean, std = digits_stats()
    assert np.allclose(mean, DATASETS["digits"]["mean"], atol=1e-4)
    assert np.allclose(std, DATASETS["digits"]["std"], atol=1e-4)
    assert np.allclose(train.mean, mean) and np.allclose(train.std, std)
    x = train.data.astype(np.float64) / 255.0
    assert np.isclose(x.mean(), mean[0]) and np.isclose(x.std(), std[0])
    d_train, d_test = build_datasets("digits")
    assert len(d_train) == 1438 and len(d_test) == 359


def test_array_dataset_transform_and_copy():
    imgs = np.zeros((3, 4, 5, 3), dtype=np.uint8)
    imgs[1, ..., 1] = 9
    ds = ArrayImageDataset(imgs, [0, 1, 2])
    t = with_transform(ds, lambda im: np.asarray(im).sum())
    assert t[1] == (9 * 20, 1) and ds.transform is None and t.data is ds.data
    with pytest.raises(ValueError):
        ArrayImageDataset(np.zeros((2, 4, 4), dtype=np.uint8), [0, 1])


def test_build_datasets_unknown_and_missing_flags():
    with pytest.raises(CassleError) as exc:
        build_datasets("mnist")
    one_line_error(exc, "--dataset")
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("imagenet100")
    one_line_error(exc, "--train_dir")
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("domainnet")
    one_line_error(exc, "--data_dir")


# ------------------------------------------------------------------------------------ CIFAR-10


def write_cifar10(folder, n_per_batch=3, n_test=4, seed=0):
    """A tiny torchvision ``cifar-10-batches-py`` folder: five training batches, a test batch, the meta.

    Keys are str (what torchvision's reader, which unpickles with latin1, needs); the CIFAR-100 copies
    above use bytes keys, what the real Python 2 pickles give with ``encoding="bytes"``.
    """
    folder = os.path.join(folder, "cifar-10-batches-py")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    batches = {}
    for name, n in [(f"data_batch_{i}", n_per_batch) for i in range(1, 6)] + [("test_batch", n_test)]:
        batches[name] = {"batch_label": name, "labels": [int(v) for v in rng.randint(0, 10, size=n)],
                         "data": rng.randint(0, 256, size=(n, 3072), dtype=np.uint8),
                         "filenames": [f"{name}_{i}.png" for i in range(n)]}
        with open(os.path.join(folder, name), "wb") as f:
            pickle.dump(batches[name], f, protocol=2)
    with open(os.path.join(folder, "batches.meta"), "wb") as f:
        pickle.dump({"label_names": [f"name{i}" for i in range(10)], "num_vis": 3072}, f, protocol=2)
    return batches


def torchvision_reads(dataset_class, monkeypatch, **kwargs):
    """torchvision's own reader on the tiny files (its md5 checks cannot pass on them)."""
    monkeypatch.setattr(sys.modules[dataset_class.__module__], "check_integrity", lambda *a, **k: True)
    return dataset_class(**kwargs, download=False)


def test_cifar10_matches_torchvision(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    write_cifar10(tmp_path / "cifar10" / "train")
    write_cifar10(tmp_path / "cifar10" / "val", seed=1)
    train, test = load_cifar10(str(tmp_path), download=False)
    for ours, root, is_train in ((train, "train", True), (test, "val", False)):
        ref = torchvision_reads(CIFAR10, monkeypatch, root=str(tmp_path / "cifar10" / root), train=is_train)
        assert ours.targets == list(ref.targets) and np.array_equal(ours.data, ref.data)
    assert len(train) == 15 and len(test) == 4 and train.classes == [f"name{i}" for i in range(10)]
    # the direct layout and the dispatcher
    write_cifar10(tmp_path / "direct", seed=2)
    train2, _ = build_datasets("cifar10", data_dir=str(tmp_path / "direct"))
    assert len(train2) == 15 and not np.array_equal(train2.data, train.data)


def test_cifar10_errors(tmp_path):
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar10(str(tmp_path), download=False)
    one_line_error(exc, "CIFAR-10", os.path.join(str(tmp_path), "cifar10", "train", "cifar-10-batches-py"),
                   "data_batch_5", "cifar-10-python.tar.gz")
    write_cifar10(tmp_path)
    os.remove(tmp_path / "cifar-10-batches-py" / "data_batch_3")  # one missing batch is not a dataset
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar10(str(tmp_path), download=False)
    one_line_error(exc, "data_batch_3")
    write_cifar10(tmp_path)
    bad = {"labels": [10], "data": np.zeros((1, 3072), dtype=np.uint8)}
    with open(tmp_path / "cifar-10-batches-py" / "test_batch", "wb") as f:
        pickle.dump(bad, f)
    with pytest.raises(DataNotFoundError) as exc:
        load_cifar10(str(tmp_path), download=False)
    one_line_error(exc, "test_batch", "label 10", "0..9")


def test_cifar10_download_uses_torchvision_cifar10(tmp_path, monkeypatch):
    import torchvision.datasets

    calls = []

    def fake_download(root, train, download):
        calls.append((os.path.relpath(root, tmp_path), train))
        write_cifar10(root)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", fake_download)
    train, test = load_cifar10(str(tmp_path))
    assert calls == [(os.path.join("cifar10", "train"), True), (os.path.join("cifar10", "val"), False)]
    assert len(train) == 15 and len(test) == 4


# ------------------------------------------------------------------------------------ STL-10


def write_stl10(folder, n_train=4, n_test=3, n_unlabeled=5, seed=0, class_names=True):
    """Tiny torchvision ``stl10_binary`` files: uint8 images stored plane by plane, column-major."""
    folder = os.path.join(folder, "stl10_binary")
    os.makedirs(folder, exist_ok=True)
    rng = np.random.RandomState(seed)
    written = {}
    for split, n in (("train", n_train), ("test", n_test), ("unlabeled", n_unlabeled)):
        images = rng.randint(0, 256, size=(n, 96, 96, 3), dtype=np.uint8)  # (N, row, column, channel)
        images.transpose(0, 3, 2, 1).tofile(os.path.join(folder, f"{split}_X.bin"))
        written[split] = images
        if split != "unlabeled":
            labels = rng.randint(1, 11, size=n).astype(np.uint8)  # 1..10 on disk
            labels.tofile(os.path.join(folder, f"{split}_y.bin"))
            written[split + "_labels"] = [int(v) - 1 for v in labels]
    if class_names:
        with open(os.path.join(folder, "class_names.txt"), "w") as f:
            f.write("\n".join(f"stl{i}" for i in range(10)) + "\n")
    return written


def test_stl10_reader_matches_torchvision(tmp_path, monkeypatch):
    from torchvision.datasets import STL10

    root = tmp_path / "stl10" / "train"
    written = write_stl10(root)
    write_stl10(tmp_path / "stl10" / "val", seed=1)
    train, test = load_stl10(str(tmp_path), download=False)
    ref = torchvision_reads(STL10, monkeypatch, root=str(root), split="train+unlabeled")
    assert len(train) == 9 and train.targets == [int(v) for v in ref.labels]
    assert train.targets[4:] == [-1] * 5 and train.targets[:4] == written["train_labels"]
    for i in (0, 3, 4, 8):  # torchvision's PIL image of sample i is ours
        assert np.array_equal(np.asarray(ref[i][0]), train.data[i])
    assert np.array_equal(train.data[:4], written["train"]) and np.array_equal(train.data[4:], written["unlabeled"])
    ref_test = torchvision_reads(STL10, monkeypatch, root=str(tmp_path / "stl10" / "val"), split="test")
    assert test.targets == [int(v) for v in ref_test.labels] and len(test) == 3
    assert np.array_equal(np.asarray(ref_test[2][0]), test.data[2])
    assert train.classes == [f"stl{i}" for i in range(10)]
    # the probe reads the labelled training images only
    probe_train, _ = build_datasets("stl10", data_dir=str(tmp_path), unlabeled=False)
    assert len(probe_train) == 4 and min(probe_train.targets) >= 0
    img, label = probe_train[1]
    assert img.size == (96, 96) and img.mode == "RGB" and label == written["train_labels"][1]


def test_stl10_chunked_read(tmp_path, monkeypatch):
    monkeypatch.setattr(D, "_STL10_CHUNK", 2)  # 5 unlabelled images in chunks of 2, 2, 1
    written = write_stl10(tmp_path)
    train, _ = load_stl10(str(tmp_path), download=False)
    assert np.array_equal(train.data[4:], written["unlabeled"])


def test_stl10_errors(tmp_path):
    with pytest.raises(DataNotFoundError) as exc:
        load_stl10(str(tmp_path / "nowhere"))
    one_line_error(exc, "STL-10", "stl10_binary", "unlabeled_X.bin", "--data_dir")
    assert not (tmp_path / "nowhere").exists()
    write_stl10(tmp_path)
    folder = tmp_path / "stl10_binary"
    with open(folder / "test_X.bin", "ab") as f:
        f.write(b"\0")  # not a whole number of images
    with pytest.raises(DataNotFoundError) as exc:
        load_stl10(str(tmp_path), download=False)
    one_line_error(exc, folder / "test_X.bin", "3x96x96")
    write_stl10(tmp_path)
    np.array([1, 2], dtype=np.uint8).tofile(folder / "train_y.bin")
    with pytest.raises(DataNotFoundError) as exc:
        load_stl10(str(tmp_path), download=False)
    one_line_error(exc, folder / "train_y.bin", "2 labels for 4 images")
    np.array([1, 2, 11, 3], dtype=np.uint8).tofile(folder / "train_y.bin")
    with pytest.raises(DataNotFoundError) as exc:
        load_stl10(str(tmp_path), download=False)
    one_line_error(exc, "label 11", "1..10")


# ------------------------------------------------------------------------------------ custom data


def write_custom(root, classes=("dogs", "cats", "owls"), per_class=2):
    """Class folders with odd sizes, a grey image, PNGs and JPEGs, a nested file and a non-image."""
    for k, cls in enumerate(classes):
        for i in range(per_class):
            size = (37, 23) if i % 2 == 0 else (20, 31)
            if i % 2:
                Image.new("L", size, k * 30).save(os.path.join(_mkdir(root, cls), f"img{i}.png"))
            else:
                Image.new("RGB", size, (k * 30, 5, 9)).save(os.path.join(_mkdir(root, cls, "deep"), f"img{i}.jpg"))
        with open(os.path.join(root, cls, "README.txt"), "w") as f:
            f.write("ignored")


def _mkdir(*parts):
    path = os.path.join(*[str(p) for p in parts])
    os.makedirs(path, exist_ok=True)
    return path


def test_custom_folders_any_class_count(tmp_path):
    write_custom(tmp_path / "data" / "train", classes=[f"c{i}" for i in range(7)])
    write_custom(tmp_path / "data" / "val", classes=[f"c{i}" for i in range(7)], per_class=1)
    train, val = build_datasets("custom", data_dir=str(tmp_path / "data"), train_dir="train", val_dir="val")
    assert train.classes == [f"c{i}" for i in range(7)] and len(train) == 14 and len(val) == 7
    assert train.targets == [k for k in range(7) for _ in range(2)] and val.targets == list(range(7))
    img, label = train[0]  # the grey PNG of class c0 (a folder's own files come before its sub-folders')
    assert img.mode == "RGB" and img.size == (20, 31) and label == 0
    # without --val_dir: no evaluation set
    train_only, none = build_datasets("custom", train_dir=str(tmp_path / "data" / "train"))
    assert none is None and len(train_only) == 14


def test_custom_bad_folders(tmp_path):
    good = tmp_path / "good"
    write_custom(good)
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("custom", train_dir=str(tmp_path / "missing"))
    one_line_error(exc, "--train_dir", tmp_path / "missing")
    empty = tmp_path / "empty"
    write_custom(empty)
    (empty / "zebras").mkdir()
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("custom", train_dir=str(empty))
    one_line_error(exc, empty / "zebras", "holds no image")
    broken = tmp_path / "broken"
    write_custom(broken)
    (broken / "owls" / "deep" / "img0.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("custom", train_dir=str(broken), val_dir=str(good))
    one_line_error(exc, "--train_dir", broken / "owls" / "deep" / "img0.jpg", "not a readable image")
    with pytest.raises(DataNotFoundError) as exc:  # the validation tree is checked as well
        build_datasets("custom", train_dir=str(good), val_dir=str(broken))
    one_line_error(exc, "--val_dir", broken / "owls" / "deep" / "img0.jpg")
    other = tmp_path / "other"
    write_custom(other, classes=("dogs", "cats", "eels"))
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("custom", train_dir=str(good), val_dir=str(other))
    one_line_error(exc, "owls", "eels", "different class folders")


def test_custom_no_labels_flat_or_nested(tmp_path):
    write_custom(tmp_path / "pics", per_class=1)
    Image.new("RGB", (9, 9)).save(tmp_path / "pics" / "top.png")
    train, val = build_datasets("custom", data_dir=str(tmp_path), train_dir="pics", no_labels=True)
    assert val is None and train.targets == [-1] * 4
    names = [os.path.relpath(p, tmp_path / "pics") for p, _ in train.samples]
    assert names == ["top.png", "cats/deep/img0.jpg", "dogs/deep/img0.jpg", "owls/deep/img0.jpg"]
    (tmp_path / "nothing" / "sub").mkdir(parents=True)
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("custom", train_dir=str(tmp_path / "nothing"), no_labels=True)
    one_line_error(exc, tmp_path / "nothing", "holds no image")
    (tmp_path / "pics" / "bad.png").write_bytes(b"")
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("custom", train_dir=str(tmp_path / "pics"), no_labels=True)
    one_line_error(exc, tmp_path / "pics" / "bad.png")
    with pytest.raises(CassleError) as exc:
        build_datasets("imagenet100", train_dir=str(tmp_path / "pics"), val_dir="x", no_labels=True)
    one_line_error(exc, "--no_labels", "custom")


def test_imagenet_1k_needs_1000_class_folders(tmp_path):
    write_image_folder(tmp_path / "train")
    write_image_folder(tmp_path / "val")
    with pytest.raises(DataNotFoundError) as exc:
        build_datasets("imagenet", train_dir=str(tmp_path / "train"), val_dir=str(tmp_path / "val"))
    one_line_error(exc, "3 class folders, expected 1000")
    train, val = D.load_image_folders(str(tmp_path / "train"), str(tmp_path / "val"), num_classes=3,
                                      dataset="imagenet")
    assert len(train) == len(val) == 9


def test_broken_image_in_a_loader_worker_is_one_line(tmp_path):
    from torch.utils.data import DataLoader

    path = tmp_path / "broken.jpg"
    path.write_bytes(b"\xff\xd8 truncated")
    loader = DataLoader(FileListDataset([(str(path), 0)]), batch_size=1, num_workers=1)
    with pytest.raises(DataNotFoundError) as exc:
        next(iter(loader))
    message = one_line(exc.value)  # what the entry points print of an error re-raised from a worker
    assert "\n" not in message and "cannot read image" in message and str(path) in message, message
