"""Images, configs and statistical bounds shared by the device-path tests."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image

from cassle.data.info import DATASET_INFO

MEAN, STD = DATASET_INFO["cifar100"]["mean"], DATASET_INFO["cifar100"]["std"]
Z = 4.0  # statistical bounds at 4 sigma: a false alarm ~3e-5 per check


def identity_cfg(size: int, **overrides) -> dict:
    """A config with every random operation switched off (crop = whole square image)."""
    cfg = dict(
        brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, gaussian_prob=0.0, solarization_prob=0.0,
        min_scale=1.0, size=size, horizontal_flip_prob=0.0, color_jitter_prob=0.0, gray_scale_prob=0.0,
    )
    cfg.update(overrides)
    return cfg


def cifar_cfg(**overrides) -> dict:
    """The official CIFAR view config (view 2's solarisation)."""
    cfg = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, gaussian_prob=0.0,
               solarization_prob=0.2, min_scale=0.08, size=32)
    cfg.update(overrides)
    return cfg


def random_uint8(n: int, h: int, w: int, seed: int = 0, low: int = 0, high: int = 256) -> torch.Tensor:
    """(n, 3, h, w) uint8 images."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, h, w), generator=g, dtype=torch.uint8)


def normalise(x_uint8: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """ToTensor + Normalize of (N, 3, H, W) uint8 images."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (x_uint8.float() / 255.0 - m) / s


def chi2_bound(df: int, z: float = Z) -> float:
    """Upper z-quantile of chi-square(df) (Wilson-Hilferty)."""
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def binomial_ok(count: int, n: int, p: float) -> bool:
    """Whether ``count`` successes in ``n`` trials are within 4 sigma of rate ``p``."""
    return abs(count / n - p) <= Z * math.sqrt(p * (1 - p) / n)


# (class, file name, height, width, kind); kinds: rgb JPEG, grayscale JPEG, CMYK JPEG, PNG
FILES = [
    ("n01", "a.JPEG", 20, 30, "rgb"),
    ("n01", "b.JPEG", 33, 17, "rgb"),
    ("n01", "c.JPEG", 24, 24, "gray"),
    ("n02", "d.JPEG", 40, 26, "rgb"),
    ("n02", "e.png", 18, 22, "png"),
    ("n02", "f.JPEG", 27, 35, "cmyk"),
    ("n03", "g.JPEG", 16, 48, "rgb"),
    ("n03", "h.JPEG", 30, 30, "rgb"),
    ("n03", "i.JPEG", 21, 19, "rgb"),
]


def smooth_image(rng: np.random.RandomState, height: int, width: int) -> Image.Image:
    """Random but smooth RGB content (JPEG-friendly)."""
    small = rng.randint(0, 256, size=(max(2, height // 4), max(2, width // 4), 3), dtype=np.uint8)
    return Image.fromarray(small).resize((width, height), Image.BILINEAR)


def write_tree(root, files=FILES):
    """An ImageFolder tree of ``files`` under ``root``."""
    rng = np.random.RandomState(0)
    for cls, name, height, width, kind in files:
        folder = root / cls
        folder.mkdir(parents=True, exist_ok=True)
        img = smooth_image(rng, height, width)
        if kind == "png":
            img.save(folder / name, "PNG")
        else:
            img = {"rgb": img, "gray": img.convert("L"), "cmyk": img.convert("CMYK")}[kind]
            img.save(folder / name, "JPEG", quality=92)
    return root
