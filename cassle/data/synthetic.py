"""Synthetic datasets written in the real on-disk formats, for checks that must run without a download.

* :func:`write_cifar100`: torchvision's ``cifar-100-python`` folder (pickles ``train``, ``test``, ``meta``
  with bytes keys, ``data`` as (N, 3072) uint8 rows in channel-major order), readable by ``--dataset
  cifar100 --data_dir <root>``;
* :func:`write_image_folders`: an ImageFolder tree of JPEG files (one folder per class, as ImageNet-100's
  ``--train_dir`` / ``--val_dir``), with a few files that take the decoder's less common paths.

Images are smooth random colour fields plus noise and a few sharp edges, so that JPEG compression and the
augmentations see photo-like content rather than pure noise.
"""

from __future__ import annotations

import os
import pickle

import numpy as np
from PIL import Image

from cassle.data.datasets import CIFAR_FORMATS

CIFAR_CLASSES = 100


def photo_like(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A (height, width, 3) uint8 image: a bilinear blend of a coarse random colour grid, a bright rectangle
    (sharp edges) and a little noise."""
    grid = rng.uniform(0, 255, size=(4, 4, 3))
    ys = np.linspace(0, 3, height)[:, None]
    xs = np.linspace(0, 3, width)[None, :]
    y0, x0 = np.minimum(ys.astype(int), 2), np.minimum(xs.astype(int), 2)
    fy, fx = (ys - y0)[..., None], (xs - x0)[..., None]
    image = ((1 - fy) * (1 - fx) * grid[y0, x0] + (1 - fy) * fx * grid[y0, x0 + 1]
             + fy * (1 - fx) * grid[y0 + 1, x0] + fy * fx * grid[y0 + 1, x0 + 1])
    top, left = rng.integers(0, max(1, height // 2)), rng.integers(0, max(1, width // 2))
    image[top:top + height // 3, left:left + width // 3] = rng.uniform(0, 255, size=3)
    image += rng.normal(0, 8, size=image.shape)
    return np.clip(image, 0, 255).astype(np.uint8)


def write_cifar100(root: str, train_per_class: int, test_per_class: int, seed: int = 0) -> str:
    """Write a synthetic CIFAR-100 in torchvision's python format under ``root``.

    Args:
        root: folder that receives ``cifar-100-python/`` (pass it as ``--data_dir``).
        train_per_class: training images of each of the 100 classes.
        test_per_class: test images of each class.
        seed: seed of the images and of their order.

    Returns:
        ``root``.
    """
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, CIFAR_FORMATS["cifar100"].folder)
    os.makedirs(folder, exist_ok=True)
    for name, per_class in (("train", train_per_class), ("test", test_per_class)):
        labels = rng.permutation(np.repeat(np.arange(CIFAR_CLASSES), per_class))
        images = np.stack([photo_like(rng, 32, 32) for _ in labels]) if len(labels) else np.zeros((0, 32, 32, 3))
        rows = images.astype(np.uint8).transpose(0, 3, 1, 2).reshape(len(labels), 3 * 32 * 32)
        batch = {
            b"batch_label": f"synthetic {name} batch".encode(),
            b"filenames": [f"synthetic_{name}_{i}.png".encode() for i in range(len(labels))],
            b"fine_labels": [int(y) for y in labels],
            b"coarse_labels": [int(y) // 5 for y in labels],
            b"data": rows,
        }
        with open(os.path.join(folder, name), "wb") as handle:
            pickle.dump(batch, handle, protocol=2)
    meta = {b"fine_label_names": [f"class{i:02d}".encode() for i in range(CIFAR_CLASSES)],
            b"coarse_label_names": [f"superclass{i:02d}".encode() for i in range(CIFAR_CLASSES // 5)]}
    with open(os.path.join(folder, "meta"), "wb") as handle:
        pickle.dump(meta, handle, protocol=2)
    return root


def write_image_folders(root: str, num_classes: int, per_class: int, min_side: int, max_side: int,
                        seed: int = 0, quality: int = 90) -> list[str]:
    """Write an ImageFolder tree of JPEG files: ``root/n<class:05d>/img<k>.JPEG``.

    Sizes are drawn per image in ``[min_side, max_side]`` (odd sizes included, so chroma subsampling meets
    partial blocks). The first image of classes 0-3 takes a less common path of the decoders: a grayscale
    JPEG, a CMYK JPEG, a progressive JPEG, and a PNG file named ``.JPEG`` (as ImageNet has one).

    Args:
        root: the tree's root (pass it as ``--train_dir`` or ``--val_dir``).
        num_classes: number of class folders.
        per_class: images per class.
        min_side, max_side: range of the height and width.
        seed: seed of the images.
        quality: JPEG quality of the ordinary files.

    Returns:
        The written paths, class by class.
    """
    rng = np.random.default_rng(seed)
    paths = []
    for label in range(num_classes):
        folder = os.path.join(root, f"n{label:05d}")
        os.makedirs(folder, exist_ok=True)
        for k in range(per_class):
            height, width = (int(v) for v in rng.integers(min_side, max_side + 1, size=2))
            image = Image.fromarray(photo_like(rng, height, width))
            path = os.path.join(folder, f"img{k}.JPEG")
            special = label if k == 0 else None
            if special == 0:
                image.convert("L").save(path, "JPEG", quality=quality)
            elif special == 1:
                image.convert("CMYK").save(path, "JPEG", quality=quality)
            elif special == 2:
                image.save(path, "JPEG", quality=quality, progressive=True)
            elif special == 3:
                image.save(path, "PNG")
            else:
                image.save(path, "JPEG", quality=quality)
            paths.append(path)
    return paths
