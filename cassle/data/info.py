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
    and 96 px for 224 px ones; three quarters of the crop for digits, as for CIFAR.
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
"""

from __future__ import annotations

from typing import Any, Dict

from cassle.errors import CassleError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.247, 0.243, 0.261)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.228, 0.224, 0.225)
# Mean / std of the digits training split (16x16, bilinear upsampling, fixed split seed 0), rounded to
# 4 decimals; the same value on the three channels because the images are grey replicated to RGB.
DIGITS_MEAN = (0.3058, 0.3058, 0.3058)
DIGITS_STD = (0.3191, 0.3191, 0.3191)

DATASET_INFO: Dict[str, Dict[str, Any]] = {
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
}

DATASET_NAMES = tuple(DATASET_INFO)


def dataset_info(name: str) -> Dict[str, Any]:
    """The :data:`DATASET_INFO` entry of ``name``; a one-line :class:`CassleError` naming ``--dataset``
    for an unknown name."""
    try:
        return DATASET_INFO[name]
    except KeyError:
        raise CassleError(
            f"--dataset {name!r} is not supported (choose one of {', '.join(DATASET_NAMES)})"
        ) from None
