"""Constants of each supported dataset, importable without torch (``--dry_run`` reads them).

Keys of every entry of :data:`DATASET_INFO`:

``num_classes``
    classifier width (labels are ``0 .. num_classes - 1``).
``mean``, ``std``
    per-channel normalisation (RGB, images scaled to [0, 1]). CIFAR and ImageNet values as the official
    code (note ImageNet std 0.228, not 0.229); digits: computed on its fixed training split
    (``cassle.data.datasets.digits_stats`` recomputes them; a test checks they agree).
``small_images``
    True: the ResNet "CIFAR stem" (3x3 first convolution, no max-pool) and ``ToTensor + Normalize``
    validation; False: the ImageNet stem and ``Resize(256) + CenterCrop(224)`` validation.
``size``
    pretraining crop size (default of ``--size``).
``small_size``
    side of the multi-crop small crops (default of ``--small_size``): CaSSLe's 24 px for 32 px images
    and 96 px for 224 px ones; three quarters of the crop for digits, as for CIFAR; 48 px (half the crop)
    for STL-10's 96 px images. ``--dataset custom --small_stem`` takes three quarters of its ``--size``.
``fixed_size``
    True where ``--size`` is ignored (CIFAR always crops 32x32, digits 16x16).
``online_eval``
    default of the online linear classifier during pretraining (on for cifar100 and digits, as the
    official code for CIFAR; off for imagenet100 and domainnet).
``split_strategies``, ``default_split_strategy``, ``default_num_tasks``
    task splits the data code supports, and the defaults of the official scripts.
``official_loader``
    how the official code read the dataset: ``"dali"`` (the ImageNet-100 / DomainNet scripts pass
    ``--dali``) or ``"torchvision"``; the probe's training crop interpolates as that loader did
    (bicubic for DALI, torchvision's default bilinear otherwise).
``source``
    where the data comes from: ``"data_dir"`` (``--data_dir``), ``"train_val_dirs"``
    (``--train_dir``/``--val_dir``) or ``"embedded"`` (scikit-learn's bundled digits, no files needed).
``native_eval`` (optional, default ``small_images``)
    True: evaluation images are used at their stored size (``ToTensor + Normalize``), as for STL-10's
    96 px images with the ImageNet stem; False: ``Resize(256) + CenterCrop(224)``.

A run does not read these entries directly: :func:`resolve_dataset` turns an entry and the data flags
(``--train_dir``, ``--no_labels``, ``--mean``, ``--std``, ``--size``, ``--small_stem``) into one
:class:`DatasetSpec`, without importing torch.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from cassle.errors import CassleError, DataNotFoundError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.247, 0.243, 0.261)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.228, 0.224, 0.225)
# STL-10 as the official STLTransform normalises it: CIFAR-like values, not the ImageNet ones.
STL10_MEAN = (0.4914, 0.4823, 0.4466)
STL10_STD = (0.247, 0.243, 0.261)
# Mean / std of the digits training split (16x16, bilinear upsampling, fixed split seed 0), rounded to
# 4 decimals; the same value on the three channels because the images are grey replicated to RGB.
DIGITS_MEAN = (0.3058, 0.3058, 0.3058)
DIGITS_STD = (0.3191, 0.3191, 0.3191)

DATASET_INFO: dict[str, dict[str, Any]] = {
    "cifar100": {
        "num_classes": 100,
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "small_images": True,
        "size": 32,
        "small_size": 24,
        "fixed_size": True,
        "online_eval": True,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "data_dir",
        "official_loader": "torchvision",
    },
    "imagenet100": {
        "num_classes": 100,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "small_images": False,
        "size": 224,
        "small_size": 96,
        "fixed_size": False,
        "online_eval": False,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "train_val_dirs",
        "official_loader": "dali",
    },
    "domainnet": {
        "num_classes": 345,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "small_images": False,
        "size": 224,
        "small_size": 96,
        "fixed_size": False,
        "online_eval": False,
        "split_strategies": ("domain",),
        "default_split_strategy": "domain",
        "default_num_tasks": 6,
        "source": "data_dir",
        "official_loader": "dali",
    },
    "digits": {
        "num_classes": 10,
        "mean": DIGITS_MEAN,
        "std": DIGITS_STD,
        "small_images": True,
        "size": 16,
        "small_size": 12,
        "fixed_size": True,
        "online_eval": True,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "embedded",
        "official_loader": "torchvision",
    },
    "cifar10": {
        "num_classes": 10,
        "mean": CIFAR_MEAN,
        "std": CIFAR_STD,
        "small_images": True,
        "size": 32,
        "small_size": 24,
        "fixed_size": True,
        "online_eval": True,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "data_dir",
        "official_loader": "torchvision",
    },
    "stl10": {
        "num_classes": 10,
        "mean": STL10_MEAN,
        "std": STL10_STD,
        "small_images": False,
        "size": 96,
        "small_size": 48,
        "fixed_size": True,
        # Pretraining reads train + unlabeled (official): no label for most images, no online classifier.
        "online_eval": False,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "data_dir",
        "official_loader": "torchvision",
        "native_eval": True,
    },
    "imagenet": {
        "num_classes": 1000,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "small_images": False,
        "size": 224,
        "small_size": 96,
        "fixed_size": False,
        "online_eval": False,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "train_val_dirs",
        "official_loader": "dali",
    },
    # Your own class folders: num_classes is the number of class folders of --train_dir (None here);
    # mean/std are the defaults of the official --mean/--std flags.
    "custom": {
        "num_classes": None,
        "mean": IMAGENET_MEAN,
        "std": IMAGENET_STD,
        "small_images": False,
        "size": 224,
        "small_size": 96,
        "fixed_size": False,
        "online_eval": False,
        "split_strategies": ("class", "data"),
        "default_split_strategy": "class",
        "default_num_tasks": 5,
        "source": "train_val_dirs",
        "official_loader": "torchvision",
    },
}

DATASET_NAMES = tuple(DATASET_INFO)


def dataset_info(name: str) -> dict[str, Any]:
    """The :data:`DATASET_INFO` entry of ``name``; a one-line :class:`CassleError` naming ``--dataset``
    for an unknown name."""
    try:
        return DATASET_INFO[name]
    except KeyError:
        raise CassleError(
            f"--dataset {name!r} is not supported (choose one of {', '.join(DATASET_NAMES)})"
        ) from None


# --------------------------------------------------------------------------------------------------
# resolution of a dataset's facts from the data flags

#: ``Resize`` (shorter side) and ``CenterCrop`` of the evaluation pipeline of ImageNet-style data.
IMAGENET_EVAL_RESIZE = 256
IMAGENET_EVAL_CROP = 224
#: Default crop of ``--dataset custom --small_stem`` without ``--size``: small images such as 28-32 px
#: ones; 224 (the default of the ImageNet stem) would run the stride-1 stem at full resolution.
SMALL_STEM_DEFAULT_SIZE = 32


@dataclass(frozen=True)
class DatasetSpec:
    """What a run needs to know about its dataset, resolved from ``--dataset`` and the data flags.

    Attributes:
        name: the ``--dataset`` value.
        num_classes: classifier width (labels ``0 .. num_classes - 1``); custom: the number of class
            folders of ``--train_dir``; 1 with ``--no_labels`` (the online classifier is never trained).
        mean, std: per-channel normalisation of images scaled to [0, 1].
        small_images: the small-image ResNet stem (3x3 stride-1 convolution, no max-pool).
        size: pretraining crop size: ``--size`` (its first value) where ``size_honoured``, else the
            dataset's own size (CIFAR 32, STL-10 96, digits 16).
        size_honoured: whether ``--size`` changes the pretraining crop (per view).
        eval_resize: ``Resize`` (shorter side) of the evaluation pipeline, or None (images as stored).
        eval_crop: ``CenterCrop`` of the evaluation pipeline, or None.
        probe_size: crop size of the linear probe's training pipeline (``RandomResizedCrop``).
        online_eval: default of ``--online_eval``.
        split_strategies: the ``--split_strategy`` values this data supports.
        default_split_strategy: ``--split_strategy`` when none is given.
        no_labels: ``--no_labels``: images without labels (data split only, no evaluation).
        every_train_image_labelled: False where the pretraining set holds unlabelled images (STL-10's
            ``unlabeled`` split, ``--no_labels``): the online classifier cannot train on it.
        has_val: whether there is a labelled evaluation set (custom: only with ``--val_dir``).
    """

    name: str
    num_classes: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    small_images: bool
    size: int
    size_honoured: bool
    eval_resize: int | None
    eval_crop: int | None
    probe_size: int
    online_eval: bool
    split_strategies: tuple[str, ...]
    default_split_strategy: str
    no_labels: bool
    every_train_image_labelled: bool
    has_val: bool

    def as_dict(self) -> dict[str, Any]:
        """The spec as plain JSON values (what ``--dry_run`` prints and ``args.json`` keeps)."""
        return {key: list(value) if isinstance(value, tuple) else value for key, value in asdict(self).items()}

    def require_evaluation(self, what: str, every_train_label: bool = False) -> None:
        """A one-line :class:`CassleError` unless ``what`` (a flag or step that evaluates with labels) can
        run: it needs labels and an evaluation set, and, with ``every_train_label``, a label on every
        pretraining image (the online classifier trains on the whole pretraining set)."""
        if self.no_labels:
            raise CassleError(f"{what} needs labels: --dataset custom --no_labels has none "
                              f"(it pretrains with --split_strategy data and evaluates nothing)")
        if not self.has_val:
            raise CassleError(f"{what} needs an evaluation set: pass --val_dir (class folders named as "
                              f"those of --train_dir)")
        if every_train_label and not self.every_train_image_labelled:
            raise CassleError(f"{what} needs a label on every pretraining image, but --dataset {self.name} "
                              f"pretrains on its unlabelled images too")


def join_data_path(data_dir: str | None, path: str | None) -> str | None:
    """``path`` joined to ``data_dir`` when relative (an absolute ``path`` stays), as the official
    ``data_dir / train_dir``; None stays None."""
    if not path:
        return None
    path = os.path.expanduser(str(path))
    return os.path.join(os.path.expanduser(str(data_dir)), path) if data_dir else path


def class_folders(root: str, flag: str) -> list[str]:
    """Sorted names of the sub-folders of ``root`` (the classes of an ImageFolder tree; the label of a
    class is its index here). A missing ``root`` or one without sub-folders is a one-line
    :class:`DataNotFoundError` naming ``flag``."""
    layout = "an ImageFolder layout: one sub-folder of images per class"
    if not os.path.isdir(root):
        raise DataNotFoundError(f"{flag} {root} does not exist (expected {layout})")
    classes = sorted(entry.name for entry in os.scandir(root) if entry.is_dir())
    if not classes:
        hint = " (images without labels: pass --no_labels with --dataset custom)" if flag == "--train_dir" else ""
        raise DataNotFoundError(f"{flag} {root} has no class sub-folders (expected {layout}){hint}")
    return classes


def _three_floats(values: Sequence[float] | None, flag: str, positive: bool) -> tuple[float, ...] | None:
    if values is None:
        return None
    values = tuple(float(v) for v in values)
    if len(values) != 3:
        raise CassleError(f"{flag} takes 3 values (R G B), got {len(values)}")
    if positive and min(values) <= 0:
        raise CassleError(f"{flag} values must be positive, got {' '.join(f'{v:g}' for v in values)}")
    return values


def resolve_dataset(
    name: str,
    *,
    data_dir: str | None = None,
    train_dir: str | None = None,
    val_dir: str | None = None,
    no_labels: bool = False,
    mean: Sequence[float] | None = None,
    std: Sequence[float] | None = None,
    size: int | None = None,
    small_stem: bool = False,
) -> DatasetSpec:
    """The :class:`DatasetSpec` of ``--dataset name`` under the data flags, without importing torch.

    Only ``custom`` looks at the disk: it lists the class folders of ``--train_dir`` (joined to
    ``--data_dir`` when relative) to count its classes. Every other check of the files happens when the
    data is read (:func:`cassle.data.datasets.build_datasets`).

    Args:
        name: ``--dataset``.
        data_dir, train_dir, val_dir: ``--data_dir``, ``--train_dir``, ``--val_dir``.
        no_labels: ``--no_labels`` (custom only).
        mean, std: ``--mean``, ``--std``, 3 values each (custom only; default: the ImageNet constants).
        size: ``--size`` (the first view's); ignored where the dataset fixes its size (CIFAR, STL-10,
            digits), as officially.
        small_stem: ``--small_stem``: the small-image stem on any dataset (a no-op where it is already
            used); on custom data it also makes evaluation resize and crop to ``size``.

    Raises:
        CassleError: a flag that does not fit the dataset, or a custom ``--train_dir`` that cannot
            be listed (one line naming the flag or path).
    """
    info = dataset_info(name)
    custom = name == "custom"
    if no_labels and not custom:
        raise CassleError(f"--no_labels applies to --dataset custom only (--dataset {name} has its labels)")
    if (mean is not None or std is not None) and not custom:
        raise CassleError(f"--mean/--std apply to --dataset custom only (--dataset {name} uses the "
                          f"official constants {info['mean']} / {info['std']})")
    mean = _three_floats(mean, "--mean", positive=False) or tuple(info["mean"])
    std = _three_floats(std, "--std", positive=True) or tuple(info["std"])
    if size is not None and int(size) < 1:
        raise CassleError(f"--size must be a positive number of pixels, got {size}")

    crop = int(info["size"])
    if not info["fixed_size"] and size is not None:
        crop = int(size)
    elif custom and small_stem:
        crop = SMALL_STEM_DEFAULT_SIZE

    if custom and small_stem:  # small custom images: evaluated at the crop size, as the small-image datasets
        eval_resize, eval_crop, probe_size = crop, crop, crop
    elif info.get("native_eval", info["small_images"]):
        eval_resize, eval_crop, probe_size = None, None, int(info["size"])
    else:
        eval_resize, eval_crop, probe_size = IMAGENET_EVAL_RESIZE, IMAGENET_EVAL_CROP, IMAGENET_EVAL_CROP

    num_classes = info["num_classes"]
    split_strategies = tuple(info["split_strategies"])
    default_split = info["default_split_strategy"]
    has_val = True
    if custom:
        if not train_dir:
            raise CassleError("--train_dir is required for --dataset custom (one sub-folder of images per "
                              "class; or a folder of images with --no_labels)")
        has_val = bool(val_dir) and not no_labels
        if no_labels:
            num_classes, split_strategies, default_split = 1, ("data",), "data"
        else:
            num_classes = len(class_folders(join_data_path(data_dir, train_dir), "--train_dir"))
    return DatasetSpec(
        name=name,
        num_classes=int(num_classes),
        mean=mean,
        std=std,
        small_images=bool(info["small_images"] or small_stem),
        size=crop,
        size_honoured=not info["fixed_size"],
        eval_resize=eval_resize,
        eval_crop=eval_crop,
        probe_size=probe_size,
        online_eval=bool(info["online_eval"]),
        split_strategies=split_strategies,
        default_split_strategy=default_split,
        no_labels=bool(no_labels),
        every_train_image_labelled=not no_labels and name != "stl10",
        has_val=has_val,
    )


def spec_from_args(args: Any) -> DatasetSpec:
    """:func:`resolve_dataset` from a parsed command line (``main_pretrain.py`` or ``main_linear.py``);
    flags a namespace lacks take their defaults."""
    size = getattr(args, "size", None)
    if isinstance(size, (list, tuple)):
        size = size[0] if size else None
    return resolve_dataset(
        args.dataset,
        data_dir=getattr(args, "data_dir", None),
        train_dir=getattr(args, "train_dir", None),
        val_dir=getattr(args, "val_dir", None),
        no_labels=bool(getattr(args, "no_labels", False)),
        mean=getattr(args, "mean", None),
        std=getattr(args, "std", None),
        size=size,
        small_stem=bool(getattr(args, "small_stem", False)),
    )
