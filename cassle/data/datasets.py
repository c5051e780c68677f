"""Dataset readers: CIFAR-100 (torchvision's python pickles), ImageNet-100 (class folders), DomainNet
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
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
from PIL import Image

from cassle.data.info import DATASET_INFO, dataset_info
from cassle.data.splits import DOMAINNET_DOMAINS
from cassle.errors import CassleError, DataNotFoundError

#: Same object as :data:`cassle.data.info.DATASET_INFO` (num_classes, mean, std, small_images, size,
#: fixed_size, online_eval, ...). Kept under this name for code that works with datasets.
DATASETS = DATASET_INFO

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
CIFAR_FOLDER = "cifar-100-python"
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

    def __init__(self, images: np.ndarray, targets: Sequence[int], transform: Optional[Callable] = None):
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
        self.classes: Optional[List[str]] = None

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
        samples: Sequence[Tuple[str, int]],
        transform: Optional[Callable] = None,
        domains: Optional[Sequence[int]] = None,
    ):
        self.samples = [(str(p), int(y)) for p, y in samples]
        self.targets = [y for _, y in self.samples]
        self.transform = transform
        if domains is not None:
            domains = [int(d) for d in domains]
            if len(domains) != len(self.samples):
                raise ValueError(f"{len(self.samples)} samples but {len(domains)} domain tags")
        self.domains = domains
        self.classes: Optional[List[str]] = None

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
# CIFAR-100


def _read_cifar_pickle(path: str) -> Tuple[np.ndarray, List[int]]:
    """One torchvision ``cifar-100-python`` batch file -> (uint8 (N, 32, 32, 3), fine labels)."""
    try:
        with open(path, "rb") as f:
            entry = pickle.load(f, encoding="bytes")
    except Exception as exc:  # unreadable or truncated file
        raise DataNotFoundError(f"cannot read CIFAR-100 file {path}: {_one_line(exc)}") from None
    if not isinstance(entry, dict):
        raise DataNotFoundError(f"CIFAR-100 file {path} does not hold a dict (not the python version?)")

    def get(key: str):
        for k in (key.encode(), key):
            if k in entry:
                return entry[k]
        raise DataNotFoundError(f"CIFAR-100 file {path} has no {key!r} entry (not the python version?)")

    data = np.asarray(get("data"), dtype=np.uint8)
    labels = [int(y) for y in get("fine_labels")]
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != len(labels):
        raise DataNotFoundError(
            f"CIFAR-100 file {path} has data of shape {tuple(data.shape)} for {len(labels)} labels "
            f"(expected (N, 3072))"
        )
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
    return np.ascontiguousarray(images), labels


def _read_cifar_classes(folder: str) -> Optional[List[str]]:
    path = os.path.join(folder, "meta")
    if not os.path.isfile(path):
        return None
    try:
        with open(path, "rb") as f:
            meta = pickle.load(f, encoding="bytes")
        names = meta.get(b"fine_label_names", meta.get("fine_label_names"))
        return [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    except Exception:
        return None


def _cifar_candidates(data_dir: str, which: str) -> List[str]:
    """Folders that may hold the ``cifar-100-python`` files, in search order.

    The official layout downloads the same archive to ``cifar100/train`` and ``cifar100/val``; the
    training file is read from the first, the test file from the second, falling back to the other copy
    and then to ``<data_dir>/cifar-100-python``.
    """
    train = os.path.join(data_dir, "cifar100", "train", CIFAR_FOLDER)
    val = os.path.join(data_dir, "cifar100", "val", CIFAR_FOLDER)
    direct = os.path.join(data_dir, CIFAR_FOLDER)
    return [train, val, direct] if which == "train" else [val, train, direct]


def _find_cifar(data_dir: str) -> Optional[Tuple[str, str]]:
    found = []
    for which, fname in (("train", "train"), ("test", "test")):
        hit = next((os.path.join(d, fname) for d in _cifar_candidates(data_dir, which)
                    if os.path.isfile(os.path.join(d, fname))), None)
        if hit is None:
            return None
        found.append(hit)
    return found[0], found[1]


def _cifar_missing_message(data_dir: str, reason: str = "") -> str:
    official = os.path.join(data_dir, "cifar100", "train", CIFAR_FOLDER)
    direct = os.path.join(data_dir, CIFAR_FOLDER)
    msg = (
        f"CIFAR-100 not found: expected {official} (and the same files under "
        f"{os.path.join(data_dir, 'cifar100', 'val', CIFAR_FOLDER)}) or {direct}, each holding the files "
        f"'train', 'test' and 'meta' of torchvision's python version ({CIFAR100_URL} extracted there); "
        f"set --data_dir to the folder above them"
    )
    if reason:
        msg += f" ({reason})"
    return msg


def load_cifar100(data_dir: str, download: bool = True) -> Tuple[ArrayImageDataset, ArrayImageDataset]:
    """CIFAR-100 train (50,000) and test (10,000) sets as :class:`ArrayImageDataset` (fine labels).

    Reads torchvision's ``cifar-100-python`` pickles with this module's own reader (no md5 check), from
    ``<data_dir>/cifar100/{train,val}/cifar-100-python`` (official layout) or
    ``<data_dir>/cifar-100-python``. When they are missing, ``data_dir`` exists and ``download`` is true,
    torchvision's downloader is tried into the official layout; any failure, or a missing ``data_dir``
    (never created here), raises a one-line :class:`DataNotFoundError`.
    """
    data_dir = os.path.expanduser(str(data_dir))
    paths = _find_cifar(data_dir)
    if paths is None:
        if not os.path.isdir(data_dir):
            raise DataNotFoundError(_cifar_missing_message(data_dir, f"--data_dir {data_dir} does not exist"))
        if not download:
            raise DataNotFoundError(_cifar_missing_message(data_dir))
        try:
            from torchvision.datasets import CIFAR100

            CIFAR100(root=os.path.join(data_dir, "cifar100", "train"), train=True, download=True)
            CIFAR100(root=os.path.join(data_dir, "cifar100", "val"), train=False, download=True)
        except BaseException as exc:  # network, disk, checksum, interrupted download ...
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise DataNotFoundError(
                _cifar_missing_message(data_dir, f"download failed: {type(exc).__name__}: {_one_line(exc)}")
            ) from None
        paths = _find_cifar(data_dir)
        if paths is None:
            raise DataNotFoundError(_cifar_missing_message(data_dir, "download produced no files"))
    train_path, test_path = paths
    train = ArrayImageDataset(*_read_cifar_pickle(train_path))
    test = ArrayImageDataset(*_read_cifar_pickle(test_path))
    classes = _read_cifar_classes(os.path.dirname(train_path))
    train.classes = test.classes = classes
    for ds, path in ((train, train_path), (test, test_path)):
        bad = [y for y in ds.targets if not 0 <= y < 100]
        if bad:
            raise DataNotFoundError(f"CIFAR-100 file {path} has label {bad[0]} outside 0..99")
    return train, test


# --------------------------------------------------------------------------------------------------
# ImageNet-100 (class folders)


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMAGE_EXTENSIONS)


def _image_folder(root: str, flag: str) -> Tuple[List[str], List[Tuple[str, int]]]:
    """ImageFolder listing: class = sub-folder, label = its index in sorted order, files in sorted walk
    order (sub-folders included), extensions .jpg/.jpeg/.png in any case."""
    root = os.path.expanduser(str(root))
    if not os.path.isdir(root):
        raise DataNotFoundError(
            f"{flag} {root} does not exist (expected an ImageFolder layout: one sub-folder of images per class)"
        )
    classes = sorted(e.name for e in os.scandir(root) if e.is_dir())
    if not classes:
        raise DataNotFoundError(
            f"{flag} {root} has no class sub-folders (expected an ImageFolder layout: one sub-folder of "
            f"images per class)"
        )
    samples: List[Tuple[str, int]] = []
    for label, cls in enumerate(classes):
        cls_dir = os.path.join(root, cls)
        count = 0
        for dirpath, _, fnames in sorted(os.walk(cls_dir, followlinks=True)):
            for fname in sorted(fnames):
                if _is_image(fname):
                    samples.append((os.path.join(dirpath, fname), label))
                    count += 1
        if count == 0:
            raise DataNotFoundError(
                f"{flag}: class folder {cls_dir} holds no image ({'/'.join(IMAGE_EXTENSIONS)})"
            )
    return classes, samples


def load_imagenet100(
    train_dir: str, val_dir: str, num_classes: Optional[int] = None
) -> Tuple[FileListDataset, FileListDataset]:
    """ImageNet-100 train / validation sets from two ImageFolder trees (``--train_dir``, ``--val_dir``).

    Labels are the index of the class folder in sorted order, in both trees, which must hold the same
    class folders. With ``num_classes`` set, the number of class folders is checked too.
    """
    if not train_dir:
        raise DataNotFoundError("--train_dir is required for --dataset imagenet100 (ImageFolder training tree)")
    if not val_dir:
        raise DataNotFoundError("--val_dir is required for --dataset imagenet100 (ImageFolder validation tree)")
    train_classes, train_samples = _image_folder(train_dir, "--train_dir")
    val_classes, val_samples = _image_folder(val_dir, "--val_dir")
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
    if num_classes is not None and len(train_classes) != num_classes:
        raise DataNotFoundError(
            f"--train_dir {train_dir} has {len(train_classes)} class folders, expected {num_classes}"
        )
    train = FileListDataset(train_samples)
    val = FileListDataset(val_samples)
    train.classes = val.classes = list(train_classes)
    return train, val


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
    samples: List[Tuple[str, int]] = []
    tags: List[int] = []
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
        with open(list_path, "r", encoding="utf-8") as f:
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


def _digits_arrays(size: int) -> Tuple[np.ndarray, np.ndarray]:
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
                         test_fraction: float = DIGITS_TEST_FRACTION) -> Tuple[List[int], List[int]]:
    """Stratified split: per class, a ``numpy.random.RandomState(seed)`` permutation of its samples;
    the first ``round(test_fraction * n_class)`` go to the test set. Both index lists are sorted."""
    targets = np.asarray(targets)
    rng = np.random.RandomState(seed)
    train_idx: List[int] = []
    test_idx: List[int] = []
    for c in np.unique(targets):
        idx = np.flatnonzero(targets == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        test_idx.extend(int(i) for i in idx[:n_test])
        train_idx.extend(int(i) for i in idx[n_test:])
    return sorted(train_idx), sorted(test_idx)


def load_digits(size: int = 16, split_seed: int = DIGITS_SPLIT_SEED) -> Tuple[ArrayImageDataset, ArrayImageDataset]:
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


def _array_stats(data: np.ndarray) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    x = data.reshape(-1, data.shape[-1]).astype(np.float64) / 255.0
    return tuple(float(v) for v in x.mean(0)), tuple(float(v) for v in x.std(0))


def digits_stats(size: int = 16) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
    """(mean, std) per RGB channel of the digits training split, images scaled to [0, 1]."""
    images, targets = _digits_arrays(int(size))
    train_idx, _ = digits_split_indices(targets)
    return _array_stats(images[train_idx])


# --------------------------------------------------------------------------------------------------
# dispatcher


def with_transform(dataset: Any, transform: Optional[Callable]) -> Any:
    """A shallow copy of ``dataset`` (sharing its images and samples) with another ``transform``."""
    out = copy.copy(dataset)
    out.transform = transform
    return out


def build_datasets(
    dataset: str,
    data_dir: Optional[str] = None,
    train_dir: Optional[str] = None,
    val_dir: Optional[str] = None,
    download: bool = True,
    domains: Sequence[str] | str = DOMAINNET_DOMAINS,
) -> Tuple[Any, Any]:
    """(train, val) datasets of ``dataset``, without transforms.

    cifar100: ``--data_dir``; imagenet100: ``--train_dir``/``--val_dir`` (relative ones are joined to
    ``data_dir`` when given, as the official code did); domainnet: ``--data_dir`` = DomainNet root, train =
    the ``_train`` lists of ``domains`` (default all six, task order), val = the ``_test`` lists of the same
    domains; digits: embedded, no path.
    """
    info = dataset_info(dataset)
    if dataset == "cifar100":
        if not data_dir:
            raise DataNotFoundError("--data_dir is required for --dataset cifar100")
        return load_cifar100(data_dir, download=download)
    if dataset == "imagenet100":
        if data_dir:
            train_dir = os.path.join(data_dir, train_dir) if train_dir else train_dir
            val_dir = os.path.join(data_dir, val_dir) if val_dir else val_dir
        return load_imagenet100(train_dir, val_dir, num_classes=info["num_classes"])
    if dataset == "domainnet":
        if not data_dir:
            raise DataNotFoundError("--data_dir (the DomainNet root) is required for --dataset domainnet")
        return (load_domainnet(data_dir, "train", domains, info["num_classes"]),
                load_domainnet(data_dir, "test", domains, info["num_classes"]))
    if dataset == "digits":
        return load_digits(info["size"])
    raise CassleError(f"--dataset {dataset!r} has no reader")  # pragma: no cover (info lists only these)
