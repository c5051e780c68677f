"""Dataset readers: CIFAR-10 / CIFAR-100 (torchvision's python pickles), STL-10 (torchvision's binary
files), class folders (ImageNet-100, ImageNet, your own ``custom`` data, also without labels), DomainNet
(official list files) and scikit-learn's digits (embedded, no download).

Every reader returns plain datasets whose items are ``(image, label)`` (``(image, label, domain)`` for
DomainNet), with the untransformed image available through ``get_image(i)`` so that
:mod:`cassle.data.loaders` can apply several augmentation pipelines to the same picture. Missing or
malformed data raises :class:`cassle.errors.DataNotFoundError` with a one-line message naming the path
(and the flag that sets it) and what was expected.
"""

from __future__ import annotations

import copy
import os
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from cassle.data.info import DATASET_INFO, class_folders, dataset_info, join_data_path
from cassle.data.splits import DOMAINNET_DOMAINS
from cassle.errors import CassleError, DataNotFoundError

#: Same object as :data:`cassle.data.info.DATASET_INFO` (num_classes, mean, std, small_images, size,
#: fixed_size, online_eval, ...). Kept under this name for code that works with datasets.
DATASETS = DATASET_INFO

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
#: Label of an image without one (STL-10's unlabeled split, ``--no_labels``), as the official code.
UNLABELLED = -1
DIGITS_SPLIT_SEED = 0
DIGITS_TEST_FRACTION = 0.2


def _one_line(text: Any) -> str:
    """Collapse an exception text into one short line for an error message."""
    text = " ".join(str(text).split())
    return text if len(text) <= 200 else text[:197] + "..."


# --------------------------------------------------------------------------------------------------
# dataset classes


class ArrayImageDataset:
    """Images held in memory as one uint8 array ``(N, H, W, 3)``.

    ``dataset[i]`` is ``(PIL RGB image, label)``, or ``(transform(image), label)`` when a transform is
    set. ``.data`` (the uint8 array) and ``.targets`` (list of ints) are public, so that a device-side
    augmentation path can take the whole array at once.
    """

    def __init__(self, images: np.ndarray, targets: Sequence[int], transform: Callable | None = None):
        images = np.asarray(images)
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"ArrayImageDataset expects uint8 images of shape (N, H, W, 3), got {images.dtype} "
                f"{tuple(images.shape)}"
            )
        if len(targets) != len(images):
            raise ValueError(f"{len(images)} images but {len(targets)} targets")
        self.data = np.ascontiguousarray(images)
        self.targets = [int(t) for t in targets]
        self.transform = transform
        self.classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.targets)

    def get_image(self, index: int) -> Image.Image:
        return Image.fromarray(self.data[index])

    def __getitem__(self, index: int):
        img = self.get_image(index)
        if self.transform is not None:
            img = self.transform(img)
        return img, self.targets[index]


class FileListDataset:
    """Images read from files with PIL (converted to RGB).

    ``samples`` is a list of ``(path, label)``. ``dataset[i]`` is ``(image, label)``, or
    ``(image, label, domain_idx)`` when ``domains`` (one int per sample) is given. ``.targets``,
    ``.samples`` and ``.domains`` are public.
    """

    def __init__(
        self,
        samples: Sequence[tuple[str, int]],
        transform: Callable | None = None,
        domains: Sequence[int] | None = None,
    ):
        self.samples = [(str(p), int(y)) for p, y in samples]
        self.targets = [y for _, y in self.samples]
        self.transform = transform
        if domains is not None:
            domains = [int(d) for d in domains]
            if len(domains) != len(self.samples):
                raise ValueError(f"{len(self.samples)} samples but {len(domains)} domain tags")
        self.domains = domains
        self.classes: list[str] | None = None

    def __len__(self) -> int:
        return len(self.samples)

    def get_image(self, index: int) -> Image.Image:
        path = self.samples[index][0]
        try:
            with Image.open(path) as img:
                return img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise DataNotFoundError(f"cannot read image {path}: {_one_line(exc)}") from None

    def __getitem__(self, index: int):
        img = self.get_image(index)
        if self.transform is not None:
            img = self.transform(img)
        if self.domains is not None:
            return img, self.targets[index], self.domains[index]
        return img, self.targets[index]


# --------------------------------------------------------------------------------------------------
# CIFAR-10 / CIFAR-100 (torchvision's python pickles)


@dataclass(frozen=True)
class CifarFormat:
    """Where and how torchvision's python version of a CIFAR dataset keeps its files."""

    title: str  # CIFAR-10 / CIFAR-100
    layout_name: str  # the official layout's folder under --data_dir: cifar10 / cifar100
    folder: str  # the extracted archive's folder
    train_files: tuple[str, ...]
    test_files: tuple[str, ...]
    meta_file: str
    label_key: str
    names_key: str
    num_classes: int
    url: str
    torchvision_class: str


CIFAR_FORMATS: dict[str, CifarFormat] = {
    "cifar10": CifarFormat(
        "CIFAR-10", "cifar10", "cifar-10-batches-py", tuple(f"data_batch_{i}" for i in range(1, 6)),
        ("test_batch",), "batches.meta", "labels", "label_names", 10,
        "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz", "CIFAR10"),
    "cifar100": CifarFormat(
        "CIFAR-100", "cifar100", "cifar-100-python", ("train",), ("test",), "meta", "fine_labels",
        "fine_label_names", 100, "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz", "CIFAR100"),
}


def _read_cifar_pickle(path: str, fmt: CifarFormat = CIFAR_FORMATS["cifar100"]) -> tuple[np.ndarray, list[int]]:
    """One batch file of torchvision's python version -> (uint8 (N, 32, 32, 3), labels)."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except Exception as exc:  # unreadable or truncated file
        raise DataNotFoundError(f"cannot read {fmt.title} file {path}: {_one_line(exc)}") from None
    if not isinstance(entry, dict):
        raise DataNotFoundError(f"{fmt.title} file {path} does not hold a dict (not the python version?)")

    def get(key: str):
        for k in (key.encode(), key):
            if k in entry:
                return entry[k]
        raise DataNotFoundError(f"{fmt.title} file {path} has no {key!r} entry (not the python version?)")

    data = np.asarray(get("data"), dtype=np.uint8)
    labels = [int(y) for y in get(fmt.label_key)]
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise DataNotFoundError(
            f"{fmt.title} file {path} has data of shape {tuple(data.shape)} for {len(labels)} labels "
            f"(expected (N, 3072))"
        )
    bad = [y for y in labels if not 0 <= y < fmt.num_classes]
    if bad:
        raise DataNotFoundError(f"{fmt.title} file {path} has label {bad[0]} outside 0..{fmt.num_classes - 1}")
    # rows are channel-first: the R plane, then G, then B (1024 values each)
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_cifar_classes(folder: str, fmt: CifarFormat = CIFAR_FORMATS["cifar100"]) -> list[str] | None:
    path = os.path.join(folder, fmt.meta_file)
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            meta = pickle.load(f, encoding="bytes")
        names = meta.get(fmt.names_key.encode(), meta.get(fmt.names_key))
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except Exception:
        return None


def _official_or_direct(data_dir: str, layout_name: str, folder: str, which: str) -> list[str]:
    """Folders that may hold a dataset's extracted archive, in search order.

    The official layout downloads the same archive to ``<layout_name>/train`` and ``<layout_name>/val``;
    training files are read from the first, test files from the second, falling back to the other copy
    and then to ``<data_dir>/<folder>``.
    """
    train = os.path.join(data_dir, layout_name, "train", folder)
    val = os.path.join(data_dir, layout_name, "val", folder)
    direct = os.path.join(data_dir, folder)
    return [train, val, direct] if which == "train" else [val, train, direct]


def _find_files(data_dir: str, layout_name: str, folder: str,
                wanted: Sequence[tuple[str, Sequence[str]]]) -> list[list[str]] | None:
    """For each ``(which, file names)`` of ``wanted``: the paths of those files in the first candidate
    folder (:func:`_official_or_direct`) that holds them all; None when one group is found nowhere."""
    found = []
    for which, names in wanted:
        for candidate in _official_or_direct(data_dir, layout_name, folder, which):
            paths = [os.path.join(candidate, name) for name in names]
            if all(os.path.isfile(p) for p in paths):
                found.append(paths)
                break
        else:
            return None
    return found


def _missing_message(title: str, data_dir: str, layout_name: str, folder: str, files: Sequence[str],
                     source: str, reason: str = "") -> str:
    official = os.path.join(data_dir, layout_name, "train", folder)
    msg = (
        f"{title} not found: expected {official} (and the same files under "
        f"{os.path.join(data_dir, layout_name, 'val', folder)}) or {os.path.join(data_dir, folder)}, each "
        f"holding {', '.join(repr(f) for f in files)} ({source}); set --data_dir to the folder above them"
    )
    return msg + (f" ({reason})" if reason else "")


def _find_or_download(title: str, data_dir: str, layout_name: str, folder: str,
                      wanted: Sequence[tuple[str, Sequence[str]]], source: str, download: bool,
                      fetch: Callable[[str], None]) -> list[list[str]]:
    """The files of :func:`_find_files`, after one try of ``fetch(root)`` (torchvision's downloader) for
    the official ``train`` and ``val`` roots when they are missing and ``data_dir`` exists. A missing
    ``data_dir`` is never created; every failure is a one-line :class:`DataNotFoundError`."""
    all_files = [name for _, names in wanted for name in names]

    def missing(reason: str = "") -> DataNotFoundError:
        return DataNotFoundError(_missing_message(title, data_dir, layout_name, folder, all_files, source, reason))

    paths = _find_files(data_dir, layout_name, folder, wanted)
    if paths is not None:
        return paths
    if not os.path.isdir(data_dir):
        raise missing(f"--data_dir {data_dir} does not exist")
    if not download:
        raise missing()
    try:
        for split in ("train", "val"):
            fetch(os.path.join(data_dir, layout_name, split))
    except BaseException as exc:  # network, disk, checksum, interrupted download ...
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise missing(f"download failed: {type(exc).__name__}: {_one_line(exc)}") from None
    paths = _find_files(data_dir, layout_name, folder, wanted)
    if paths is None:
        raise missing("download produced no files")
    return paths


def load_cifar(name: str, data_dir: str, download: bool = True) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """CIFAR-10 or CIFAR-100 (``name``) train (50,000) and test (10,000) sets as :class:`ArrayImageDataset`.

    Reads torchvision's python pickles (CIFAR-100: fine labels) with this module's own reader (no md5
    check), from ``<data_dir>/<name>/{train,val}/<archive folder>`` (official layout) or
    ``<data_dir>/<archive folder>``. When they are missing, ``data_dir`` exists and ``download`` is true,
    torchvision's downloader is tried into the official layout; any failure, or a missing ``data_dir``
    (never created here), raises a one-line :class:`DataNotFoundError`.
    """
    fmt = CIFAR_FORMATS[name]
    data_dir = os.path.expanduser(str(data_dir))

    def fetch(root: str) -> None:
        import torchvision.datasets

        dataset_class = getattr(torchvision.datasets, fmt.torchvision_class)
        dataset_class(root=root, train=root.endswith("train"), download=True)

    train_paths, test_paths = _find_or_download(
        fmt.title, data_dir, fmt.layout_name, fmt.folder, (("train", fmt.train_files), ("test", fmt.test_files)),
        f"torchvision's python version: {fmt.url} extracted there", download, fetch)

    def read(paths: Sequence[str]) -> ArrayImageDataset:
        parts = [_read_cifar_pickle(p, fmt) for p in paths]
        return ArrayImageDataset(np.concatenate([images for images, _ in parts]),
                                 [y for _, labels in parts for y in labels])

    train, test = read(train_paths), read(test_paths)
    train.classes = test.classes = _read_cifar_classes(os.path.dirname(train_paths[0]), fmt)
    return train, test


def load_cifar100(data_dir: str, download: bool = True) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """CIFAR-100 (fine labels): :func:`load_cifar` with ``name="cifar100"``."""
    return load_cifar("cifar100", data_dir, download)


def load_cifar10(data_dir: str, download: bool = True) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """CIFAR-10 (``data_batch_1`` .. ``data_batch_5``, ``test_batch``): :func:`load_cifar` with
    ``name="cifar10"``."""
    return load_cifar("cifar10", data_dir, download)


# --------------------------------------------------------------------------------------------------
# STL-10 (torchvision's binary version)

STL10_URL = "http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz"
STL10_FOLDER = "stl10_binary"
STL10_SIZE = 96
_STL10_IMAGE_BYTES = 3 * STL10_SIZE * STL10_SIZE
# Unlabelled images read per chunk: the 100,000 of them take 2.8 GB, read straight into the output array.
_STL10_CHUNK = 4096


def _stl10_count(path: str) -> int:
    size = os.path.getsize(path)
    if size == 0 or size % _STL10_IMAGE_BYTES:
        raise DataNotFoundError(f"STL-10 file {path} has {size} bytes, not a whole number of 3x96x96 images")
    return size // _STL10_IMAGE_BYTES


def _read_stl10_images(path: str, out: np.ndarray) -> None:
    """Fill ``out`` (uint8 ``(N, 96, 96, 3)``) from an STL-10 ``*_X.bin`` file of N images.

    Each image is stored as three 96x96 planes (R, G, B), each plane column by column (the layout
    torchvision transposes back); the result is row-major HWC, as a PIL image expects.
    """
    with open(path, "rb") as f:
        for start in range(0, len(out), _STL10_CHUNK):
            stop = min(start + _STL10_CHUNK, len(out))
            raw = np.frombuffer(f.read((stop - start) * _STL10_IMAGE_BYTES), dtype=np.uint8)
            # (n, channel, column, row) -> (n, row, column, channel)
            out[start:stop] = raw.reshape(-1, 3, STL10_SIZE, STL10_SIZE).transpose(0, 3, 2, 1)


def _read_stl10_labels(path: str, count: int) -> list[int]:
    """An STL-10 ``*_y.bin`` file (one uint8 label per image, 1..10) as labels 0..9."""
    labels = np.fromfile(path, dtype=np.uint8).astype(np.int64) - 1
    if len(labels) != count:
        raise DataNotFoundError(f"STL-10 file {path} has {len(labels)} labels for {count} images")
    if len(labels) and not (0 <= labels.min() and labels.max() <= 9):
        bad = int(labels[(labels < 0) | (labels > 9)][0]) + 1
        raise DataNotFoundError(f"STL-10 file {path} has label {bad} outside 1..10")
    return labels.tolist()


def _stl10_dataset(files: Sequence[tuple[str, str | None]]) -> ArrayImageDataset:
    """Images (and labels, -1 where a file has none) of several ``(X file, y file or None)`` pairs."""
    counts = [_stl10_count(x) for x, _ in files]
    images = np.empty((sum(counts), STL10_SIZE, STL10_SIZE, 3), dtype=np.uint8)
    targets: list[int] = []
    start = 0
    for (x_path, y_path), count in zip(files, counts):
        _read_stl10_images(x_path, images[start:start + count])
        targets += _read_stl10_labels(y_path, count) if y_path else [UNLABELLED] * count
        start += count
    return ArrayImageDataset(images, targets)


def load_stl10(data_dir: str, unlabeled: bool = True,
               download: bool = True) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """STL-10 train and test sets (96x96 RGB, labels 0..9) as :class:`ArrayImageDataset`.

    Reads torchvision's binary files (``train_X.bin``, ``train_y.bin``, ``test_X.bin``, ``test_y.bin``,
    ``unlabeled_X.bin``) with this module's own reader (no md5 check), from
    ``<data_dir>/stl10/{train,val}/stl10_binary`` (official layout) or ``<data_dir>/stl10_binary``;
    missing files are handled as for CIFAR (one download try with torchvision, else one line).

    Args:
        data_dir: ``--data_dir``.
        unlabeled: add the 100,000 unlabelled images (label -1) after the 5,000 labelled training
            images, as the official pretraining set "train+unlabeled"; the probe reads without them.
        download: try torchvision's downloader when the files are missing.
    """
    data_dir = os.path.expanduser(str(data_dir))
    train_files = ("train_X.bin", "train_y.bin") + (("unlabeled_X.bin",) if unlabeled else ())

    def fetch(root: str) -> None:
        import torchvision.datasets

        split = ("train+unlabeled" if unlabeled else "train") if root.endswith("train") else "test"
        torchvision.datasets.STL10(root=root, split=split, download=True)

    train_paths, test_paths = _find_or_download(
        "STL-10", data_dir, "stl10", STL10_FOLDER, (("train", train_files), ("test", ("test_X.bin", "test_y.bin"))),
        f"torchvision's binary version: {STL10_URL} extracted there", download, fetch)
    pairs = [(train_paths[0], train_paths[1])] + ([(train_paths[2], None)] if unlabeled else [])
    train = _stl10_dataset(pairs)
    test = _stl10_dataset([(test_paths[0], test_paths[1])])
    names_path = os.path.join(os.path.dirname(train_paths[0]), "class_names.txt")
    if os.path.isfile(names_path):
        with open(names_path, encoding="utf-8") as f:
            train.classes = test.classes = [line.strip() for line in f if line.strip()]
    return train, test


# --------------------------------------------------------------------------------------------------
# class folders (ImageNet-100, ImageNet, custom) and folders of images without labels


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _image_files(folder: str) -> list[str]:
    """Image files under ``folder`` (sub-folders included) in torchvision ImageFolder's order: folders
    sorted by path, the files of each sorted by name; extensions .jpg/.jpeg/.png in any case, other files
    ignored. The data split draws from this order."""
    files: list[str] = []
    for dirpath, _, fnames in sorted(os.walk(folder, followlinks=True)):
        files += [os.path.join(dirpath, f) for f in sorted(fnames) if _is_image(f)]
    return files


def verify_image(path: str, flag: str) -> None:
    """A cheap check that ``path`` is an image PIL can read: its header is parsed and ``verify()`` run
    (without decoding the pixels). A bad file is a one-line :class:`DataNotFoundError` naming it."""
    try:
        with Image.open(path) as img:
            img.verify()
    except Exception as exc:  # PIL raises OSError, SyntaxError, ValueError ... for broken files
        raise DataNotFoundError(
            f"{flag}: {path} is not a readable image ({_one_line(exc) or type(exc).__name__}); remove or replace it"
        ) from None


def _image_folder(root: str, flag: str) -> tuple[list[str], list[tuple[str, int]]]:
    """ImageFolder listing: class = sub-folder, label = its index in sorted order, files in sorted walk
    order (sub-folders included). An empty class folder is an error."""
    root = os.path.expanduser(str(root))
    classes = class_folders(root, flag)
    samples: list[tuple[str, int]] = []
    for label, cls in enumerate(classes):
        cls_dir = os.path.join(root, cls)
        files = _image_files(cls_dir)
        if not files:
            raise DataNotFoundError(
                f"{flag}: class folder {cls_dir} holds no image ({'/'.join(IMAGE_EXTENSIONS)})"
            )
        samples += [(path, label) for path in files]
    return classes, samples


def load_image_folders(
    train_dir: str | None,
    val_dir: str | None,
    num_classes: int | None = None,
    dataset: str = "imagenet100",
    verify: bool = False,
) -> tuple[FileListDataset, FileListDataset | None]:
    """Train / validation sets from two ImageFolder trees (``--train_dir``, ``--val_dir``).

    Labels are the index of the class folder in sorted order, in both trees, which must hold the same
    class folders. With ``num_classes`` set, the number of class folders is checked too.

    Args:
        train_dir, val_dir: the two trees; ``val_dir`` may be None only for ``dataset="custom"``
            (pretraining without evaluation), the validation set is then None.
        num_classes: the expected number of classes, or None (custom: any number).
        dataset: ``--dataset``, for the messages.
        verify: open every file's header (:func:`verify_image`), so that a broken file stops the run
            before it starts, not in a loader worker mid-task. On for custom data; the large official
            datasets are not checked file by file at start (a worker meeting a broken image stops the run
            with a one-line error naming the file, see :meth:`FileListDataset.get_image`).
    """
    kind = "ImageFolder training tree" if dataset != "custom" else "one sub-folder of images per class"
    if not train_dir:
        raise DataNotFoundError(f"--train_dir is required for --dataset {dataset} ({kind})")
    if not val_dir and dataset != "custom":
        raise DataNotFoundError(f"--val_dir is required for --dataset {dataset} (ImageFolder validation tree)")
    # the cheap checks (folders, class names) first, then every file when asked
    train_classes, train_samples = _image_folder(train_dir, "--train_dir")
    if num_classes is not None and len(train_classes) != num_classes:
        raise DataNotFoundError(
            f"--train_dir {train_dir} has {len(train_classes)} class folders, expected {num_classes}"
        )
    val_classes, val_samples = _image_folder(val_dir, "--val_dir") if val_dir else (train_classes, [])
    if train_classes != val_classes:
        only_train = sorted(set(train_classes) - set(val_classes))
        only_val = sorted(set(val_classes) - set(train_classes))
        detail = []
        if only_train:
            detail.append(f"only in --train_dir: {', '.join(only_train[:5])}")
        if only_val:
            detail.append(f"only in --val_dir: {', '.join(only_val[:5])}")
        raise DataNotFoundError(
            f"--train_dir {train_dir} and --val_dir {val_dir} have different class folders "
            f"({'; '.join(detail)})"
        )
    if verify:
        for samples, flag in ((train_samples, "--train_dir"), (val_samples, "--val_dir")):
            for path, _ in samples:
                verify_image(path, flag)
    train = FileListDataset(train_samples)
    train.classes = list(train_classes)
    if not val_dir:
        return train, None
    val = FileListDataset(val_samples)
    val.classes = list(train_classes)
    return train, val


def load_imagenet100(
    train_dir: str, val_dir: str, num_classes: int | None = None
) -> tuple[FileListDataset, FileListDataset]:
    """ImageNet-100 train / validation sets: :func:`load_image_folders` of the two trees."""
    return load_image_folders(train_dir, val_dir, num_classes, dataset="imagenet100")


def load_unlabeled_folder(root: str | None, verify: bool = True) -> FileListDataset:
    """``--no_labels``: every image under ``root`` (a flat or nested folder), label -1, in ImageFolder's
    file order.

    An empty folder, a missing one or (with ``verify``) a broken image file is a one-line
    :class:`DataNotFoundError` naming the path.
    """
    if not root:
        raise DataNotFoundError("--train_dir is required for --dataset custom --no_labels (a folder of images)")
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise DataNotFoundError(f"--train_dir {root} does not exist (expected a folder of images)")
    files = _image_files(root)
    if not files:
        raise DataNotFoundError(f"--train_dir {root} holds no image ({'/'.join(IMAGE_EXTENSIONS)}), "
                                f"sub-folders included")
    if verify:
        for path in files:
            verify_image(path, "--train_dir")
    return FileListDataset([(path, UNLABELLED) for path in files])


# --------------------------------------------------------------------------------------------------
# DomainNet (official list files)


def domainnet_list_path(data_dir: str, domain: str, split: str) -> str:
    return os.path.join(os.path.expanduser(str(data_dir)), f"{domain}_{split}.txt")


def load_domainnet(
    data_dir: str,
    split: str,
    domains: Sequence[str] | str = DOMAINNET_DOMAINS,
    num_classes: int = 345,
) -> FileListDataset:
    """DomainNet samples of ``domains`` (in the given order) from ``<data_dir>/<domain>_<split>.txt``.

    Each non-empty line is ``relative/path.jpg label`` with the path relative to ``data_dir``. Every
    sample is tagged with the index of its domain in :data:`DOMAINNET_DOMAINS` (the task index of that
    domain), so items are ``(image, label, domain_idx)``. A single domain name may be given as a string.
    The first image of each list is checked to exist (a wrong ``--data_dir`` fails here, not mid-epoch).
    """
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    if isinstance(domains, str):
        domains = (domains,)
    data_dir = os.path.expanduser(str(data_dir))
    if not os.path.isdir(data_dir):
        raise DataNotFoundError(
            f"DomainNet not found: --data_dir {data_dir} does not exist (expected the DomainNet root "
            f"holding <domain>_train.txt / <domain>_test.txt and the domain image folders)"
        )
    samples: list[tuple[str, int]] = []
    tags: list[int] = []
    for domain in domains:
        if domain not in DOMAINNET_DOMAINS:
            raise CassleError(
                f"unknown DomainNet domain {domain!r} (choose one of {', '.join(DOMAINNET_DOMAINS)})"
            )
        domain_idx = DOMAINNET_DOMAINS.index(domain)
        list_path = domainnet_list_path(data_dir, domain, split)
        if not os.path.isfile(list_path):
            raise DataNotFoundError(
                f"DomainNet list file {list_path} not found (expected the official {domain}_{split}.txt "
                f"in --data_dir {data_dir})"
            )
        first = None
        with open(list_path, encoding="utf-8") as f:
            for line_no, line in enumerate(f, start=1):
                parts = line.split()
                if not parts:
                    continue
                if len(parts) != 2:
                    raise DataNotFoundError(
                        f"{list_path} line {line_no}: expected 'relative/path.jpg label', got {_one_line(line)!r}"
                    )
                rel, label_text = parts
                try:
                    label = int(label_text)
                except ValueError:
                    raise DataNotFoundError(
                        f"{list_path} line {line_no}: label {label_text!r} is not an integer"
                    ) from None
                if not 0 <= label < num_classes:
                    raise DataNotFoundError(
                        f"{list_path} line {line_no}: label {label} outside 0..{num_classes - 1}"
                    )
                path = os.path.join(data_dir, rel)
                if first is None:
                    first = (path, line_no)
                samples.append((path, label))
                tags.append(domain_idx)
        if first is None:
            raise DataNotFoundError(f"DomainNet list file {list_path} is empty")
        if not os.path.isfile(first[0]):
            raise DataNotFoundError(
                f"DomainNet image {first[0]} not found (listed in {list_path} line {first[1]}; paths are "
                f"relative to --data_dir {data_dir})"
            )
    return FileListDataset(samples, domains=tags)


# --------------------------------------------------------------------------------------------------
# digits (scikit-learn, embedded)


def _digits_arrays(size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits as sk_load_digits

    bunch = sk_load_digits()
    grey = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    if size != grey.shape[1]:
        grey = np.stack(
            [np.asarray(Image.fromarray(g).resize((size, size), Image.BILINEAR)) for g in grey]
        )
    rgb = np.repeat(grey[..., None], 3, axis=-1)
    return np.ascontiguousarray(rgb), np.asarray(bunch.target, dtype=np.int64)


def digits_split_indices(targets: Sequence[int], seed: int = DIGITS_SPLIT_SEED,
                         test_fraction: float = DIGITS_TEST_FRACTION) -> tuple[list[int], list[int]]:
    """Stratified split: per class, a ``numpy.random.RandomState(seed)`` permutation of its samples;
    the first ``round(test_fraction * n_class)`` go to the test set. Both index lists are sorted."""
    targets = np.asarray(targets)
    rng = np.random.RandomState(seed)
    train_idx: list[int] = []
    test_idx: list[int] = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        test_idx.extend(int(i) for i in idx[:n_test])
        train_idx.extend(int(i) for i in idx[n_test:])
    return sorted(train_idx), sorted(test_idx)


def load_digits(size: int = 16, split_seed: int = DIGITS_SPLIT_SEED) -> tuple[ArrayImageDataset, ArrayImageDataset]:
    """scikit-learn's 1,797 8x8 digits as (train, test) :class:`ArrayImageDataset` of RGB ``size``x``size``.

    Pixel values 0..16 are scaled to 0..255 (rounded), upsampled with PIL bilinear resizing, and the grey
    channel is replicated to RGB. The split is stratified 80/20 with a fixed seed (0, independent of
    ``--seed``, so the test set never changes): 1,438 training and 359 test images. Both datasets carry
    ``mean``/``std`` attributes: the per-channel statistics of the training split (see :func:`digits_stats`).
    """
    images, targets = _digits_arrays(int(size))
    train_idx, test_idx = digits_split_indices(targets, split_seed)
    train = ArrayImageDataset(images[train_idx], targets[train_idx].tolist())
    test = ArrayImageDataset(images[test_idx], targets[test_idx].tolist())
    mean, std = _array_stats(train.data)
    for ds in (train, test):
        ds.classes = [str(i) for i in range(10)]
        ds.mean, ds.std = mean, std
    return train, test


def _array_stats(data: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    x = data.reshape(-1, data.shape[-1]).astype(np.float64) / 255.0
    return tuple(float(v) for v in x.mean(0)), tuple(float(v) for v in x.std(0))


def digits_stats(size: int = 16) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """(mean, std) per RGB channel of the digits training split, images scaled to [0, 1]."""
    images, targets = _digits_arrays(int(size))
    train_idx, _ = digits_split_indices(targets)
    return _array_stats(images[train_idx])


# --------------------------------------------------------------------------------------------------
# dispatcher


def with_transform(dataset: Any, transform: Callable | None) -> Any:
    """A shallow copy of ``dataset`` (sharing its images and samples) with another ``transform``."""
    out = copy.copy(dataset)
    out.transform = transform
    return out


def build_datasets(
    dataset: str,
    data_dir: str | None = None,
    train_dir: str | None = None,
    val_dir: str | None = None,
    download: bool = True,
    domains: Sequence[str] | str = DOMAINNET_DOMAINS,
    no_labels: bool = False,
    unlabeled: bool = True,
) -> tuple[Any, Any]:
    """(train, val) datasets of ``dataset``, without transforms.

    * cifar10, cifar100, stl10: ``--data_dir`` (official layout ``<data_dir>/<name>/{train,val}/...`` or
      the extracted archive directly under it); stl10's training set adds the unlabelled split (label
      -1) when ``unlabeled`` (pretraining), as the official "train+unlabeled";
    * imagenet100, imagenet, custom: ``--train_dir``/``--val_dir`` class folders (relative ones are
      joined to ``data_dir``, as the official code did); custom takes any number of classes, checks
      every file's header, and may have no ``--val_dir`` (val is then None); with ``no_labels`` its
      ``--train_dir`` is a flat or nested folder of images (label -1) and val is None;
    * domainnet: ``--data_dir`` = DomainNet root, train = the ``_train`` lists of ``domains`` (default all
      six, task order), val = the ``_test`` lists of the same domains;
    * digits: embedded, no path.

    Every problem with the files is a one-line :class:`DataNotFoundError` naming the path and the flag.
    """
    info = dataset_info(dataset)
    if no_labels and dataset != "custom":
        raise CassleError(f"--no_labels applies to --dataset custom only (--dataset {dataset} has its labels)")
    if dataset in ("cifar10", "cifar100", "stl10", "domainnet") and not data_dir:
        raise DataNotFoundError(f"--data_dir is required for --dataset {dataset}")
    if dataset in CIFAR_FORMATS:
        return load_cifar(dataset, data_dir, download=download)
    if dataset == "stl10":
        return load_stl10(data_dir, unlabeled=unlabeled, download=download)
    if dataset in ("imagenet100", "imagenet", "custom"):
        train_dir, val_dir = join_data_path(data_dir, train_dir), join_data_path(data_dir, val_dir)
        if no_labels:
            return load_unlabeled_folder(train_dir), None
        return load_image_folders(train_dir, val_dir, num_classes=info["num_classes"], dataset=dataset,
                                  verify=dataset == "custom")
    if dataset == "domainnet":
        return (load_domainnet(data_dir, "train", domains, info["num_classes"]),
                load_domainnet(data_dir, "test", domains, info["num_classes"]))
    if dataset == "digits":
        return load_digits(info["size"])
    raise CassleError(f"--dataset {dataset!r} has no reader")  # pragma: no cover (info lists only these)
