"""Batched on-device augmentation: a fast path for small datasets held on the device as uint8.

The faithful path (``cassle.data.augmentations``) augments PIL images one at a time with torchvision
transforms in CPU workers. This module draws each image's random parameters from the same distributions, but
augments the whole batch at once on the device that holds the images (GPU or CPU):

1. random resized crop (torchvision's sampling algorithm, vectorised over the batch), resampled with
   PIL's bicubic filter (a = -0.5, antialiased) as per-image resampling matrices (see :func:`resized_crop`);
2. colour jitter with probability 0.8, the four operations in a random order drawn per image;
3. grayscale with probability 0.2;
4. Gaussian blur with probability ``gaussian_prob``, sigma ~ U[0.1, 2] per image;
5. solarisation with probability ``solarization_prob`` (threshold 128 on the uint8 scale);
6. horizontal flip with probability ``horizontal_flip_prob``;
7. normalisation with the dataset mean and std.

Known, deliberate differences from the PIL path: values stay in float between the steps (PIL rounds to uint8
after every step), the contrast op blends with the exact grayscale mean (PIL rounds it to an integer) and the
hue shift is continuous (PIL shifts an 8-bit hue channel).

The loaders at the bottom (:class:`DeviceTaskLoader`, :class:`DeviceEvalLoader`, :class:`DeviceValLoader`)
are plain iterables with ``__len__``, so PyTorch Lightning accepts them as train/val dataloaders, also inside
``CombinedLoader(..., mode="min_size")``.
"""

from __future__ import annotations

import math
import time
from typing import Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PIL_GRAY_WEIGHTS",
    "BatchViewAugment",
    "TwoViewBatchAugment",
    "DeviceDataset",
    "DeviceTaskLoader",
    "DeviceEvalLoader",
    "DeviceValLoader",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "blur_kernel_size",
    "gaussian_blur",
    "gaussian_kernels",
    "hsv_to_rgb",
    "jitter_ranges",
    "resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "sample_blur_params",
    "sample_crop_params",
    "sample_jitter_params",
    "sample_mask",
    "solarize",
    "views_per_second",
]

#: Luma weights of PIL's ``convert("L")`` (ITU-R 601-2), which the faithful path uses.
#: (torchvision's tensor functions use 0.2989 for red.)
PIL_GRAY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)

#: Names of the colour-jitter operations, in the index order used by the sampled permutations.
JITTER_OPS: tuple[str, str, str, str] = ("brightness", "contrast", "saturation", "hue")

_REQUIRED_KEYS = (
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "gaussian_prob",
    "solarization_prob",
    "min_scale",
    "size",
)


# ----------------------------------------------------------------------------------------------------------
# Random parameter sampling
# ----------------------------------------------------------------------------------------------------------


def _uniform(
    shape: tuple[int, ...],
    low: float,
    high: float,
    generator: torch.Generator | None,
    device: torch.device | str | None,
    dtype: torch.dtype = torch.float64,
) -> Tensor:
    """Draws U[low, high) samples on the generator's device (or ``device`` without a generator)."""
    if generator is not None:
        device = generator.device
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return low + (high - low) * u


def sample_mask(
    n: int,
    p: float,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """Draws ``n`` independent Bernoulli(p) decisions.

    Args:
        n: number of images.
        p: probability of ``True``.
        generator: random generator; its device is used for the draw.
        device: device of the draw when ``generator`` is None.

    Returns:
        Bool tensor of shape (n,).
    """
    return _uniform((n,), 0.0, 1.0, generator, device) < p


def sample_crop_params(
    n: int,
    height: int,
    width: int,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    attempts: int = 10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Samples random-resized-crop boxes for ``n`` images with torchvision's algorithm, vectorised.

    For each image, ``attempts`` candidates are drawn at once: area fraction ~ U(scale), aspect ratio
    log-uniform in ``ratio``, ``w = round(sqrt(area * r))``, ``h = round(sqrt(area / r))``. The first
    candidate with ``0 < w <= width`` and ``0 < h <= height`` is kept, with integer offsets drawn uniformly;
    images without a valid candidate get the central crop clamped to the ratio range (torchvision's fallback).

    Args:
        n: number of images.
        height: image height H.
        width: image width W.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio w / h.
        generator: random generator; its device is used for the draws.
        device: device of the draws when ``generator`` is None.
        attempts: number of candidates per image (torchvision: 10).

    Returns:
        ``(top, left, h, w)``, int64 tensors of shape (n,) on the sampling device.
    """
    area = float(height * width)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target = area * _uniform((n, attempts), scale[0], scale[1], generator, device)
    aspect = torch.exp(_uniform((n, attempts), log_lo, log_hi, generator, device))
    cand_w = torch.round(torch.sqrt(target * aspect))
    cand_h = torch.round(torch.sqrt(target / aspect))
    valid = (cand_w > 0) & (cand_w <= width) & (cand_h > 0) & (cand_h <= height)
    tries = torch.arange(attempts, device=valid.device).expand(n, attempts)
    first = torch.where(valid, tries, attempts).min(dim=1, keepdim=True).values  # attempts if none
    found = first.squeeze(1) < attempts
    first = first.clamp(max=attempts - 1)
    w = torch.gather(cand_w, 1, first).squeeze(1)
    h = torch.gather(cand_h, 1, first).squeeze(1)

    # torchvision's fallback: the central crop, clamped to the ratio range.
    in_ratio = float(width) / float(height)
    if in_ratio < min(ratio):
        fb_w, fb_h = width, int(round(width / min(ratio)))
    elif in_ratio > max(ratio):
        fb_w, fb_h = int(round(height * max(ratio))), height
    else:
        fb_w, fb_h = width, height
    w = torch.where(found, w, torch.full_like(w, fb_w))
    h = torch.where(found, h, torch.full_like(h, fb_h))

    u_top = _uniform((n,), 0.0, 1.0, generator, device)
    u_left = _uniform((n,), 0.0, 1.0, generator, device)
    top = torch.minimum(torch.floor(u_top * (height - h + 1)), height - h)
    left = torch.minimum(torch.floor(u_left * (width - w + 1)), width - w)
    top = torch.where(found, top, torch.full_like(top, (height - fb_h) // 2))
    left = torch.where(found, left, torch.full_like(left, (width - fb_w) // 2))
    return top.long(), left.long(), h.long(), w.long()


def jitter_ranges(
    brightness: float | Sequence[float],
    contrast: float | Sequence[float],
    saturation: float | Sequence[float],
    hue: float | Sequence[float],
) -> dict[str, tuple[float, float] | None]:
    """Converts ColorJitter strengths into factor ranges, as torchvision does.

    A number ``x`` gives ``[max(0, 1 - x), 1 + x]`` (``[-x, x]`` for hue); a pair is taken as the range;
    a range that is the identity (``x == 0``) gives None: that operation is never applied.

    Args:
        brightness: brightness strength or range.
        contrast: contrast strength or range.
        saturation: saturation strength or range.
        hue: hue strength (at most 0.5) or range.

    Returns:
        Mapping from operation name to its (low, high) factor range, or None.

    Raises:
        ValueError: on a negative strength, a reversed range or a hue outside [-0.5, 0.5].
    """
    out: dict[str, tuple[float, float] | None] = {}
    for name, value in zip(JITTER_OPS, (brightness, contrast, saturation, hue)):
        centre = 0.0 if name == "hue" else 1.0
        if isinstance(value, (int, float)):
            if value < 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
            low, high = centre - float(value), centre + float(value)
            if name != "hue":
                low = max(0.0, low)
        else:
            low, high = float(value[0]), float(value[1])
        if low > high:
            raise ValueError(f"{name} range is reversed: {(low, high)}")
        if name == "hue" and not (-0.5 <= low <= high <= 0.5):
            raise ValueError(f"hue range must lie in [-0.5, 0.5], got {(low, high)}")
        out[name] = None if low == high == centre else (low, high)
    return out


def sample_jitter_params(
    n: int,
    brightness: float | Sequence[float],
    contrast: float | Sequence[float],
    saturation: float | Sequence[float],
    hue: float | Sequence[float],
    p: float = 0.8,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> dict[str, Tensor]:
    """Samples RandomApply(ColorJitter(...), p) parameters for ``n`` images.

    Args:
        n: number of images.
        brightness: brightness strength (factor ~ U[max(0, 1 - x), 1 + x]).
        contrast: contrast strength (same rule).
        saturation: saturation strength (same rule).
        hue: hue strength (shift ~ U[-x, x]).
        p: probability that an image is jittered at all.
        generator: random generator; its device is used for the draws.
        device: device of the draws when ``generator`` is None.

    Returns:
        Dict with ``apply`` (bool, (n,)), ``order`` (int64, (n, 4): a random permutation of the operation
        indices 0=brightness, 1=contrast, 2=saturation, 3=hue per image, applied left to right) and one float32
        factor tensor (n,) per operation. An operation whose range is None gets the identity factor
        (1, or 0 for hue) and is skipped when applying.
    """
    ranges = jitter_ranges(brightness, contrast, saturation, hue)
    params: dict[str, Tensor] = {"apply": sample_mask(n, p, generator, device)}
    keys = _uniform((n, 4), 0.0, 1.0, generator, device)
    params["order"] = torch.argsort(keys, dim=1)  # i.i.d. keys: a uniform random permutation per row
    for name in JITTER_OPS:
        rng = ranges[name]
        if rng is None:
            identity = 0.0 if name == "hue" else 1.0
            params[name] = torch.full((n,), identity, dtype=torch.float32, device=keys.device)
        else:
            params[name] = _uniform((n,), rng[0], rng[1], generator, device).float()
    return params


def sample_blur_params(
    n: int,
    p: float,
    sigma: Sequence[float] = (0.1, 2.0),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor]:
    """Samples RandomApply(GaussianBlur(sigma ~ U[sigma]), p) parameters.

    Args:
        n: number of images.
        p: probability of blurring an image.
        sigma: (min, max) of the uniform sigma distribution.
        generator: random generator; its device is used for the draws.
        device: device of the draws when ``generator`` is None.

    Returns:
        ``(apply, sigma)``: bool (n,) and float32 (n,).
    """
    apply = sample_mask(n, p, generator, device)
    sig = _uniform((n,), sigma[0], sigma[1], generator, device).float()
    return apply, sig


def blur_kernel_size(size: int) -> int:
    """Gaussian-blur kernel size for crops of ``size`` pixels: about 10% of it, odd, at least 3.

    Args:
        size: output crop side.

    Returns:
        ``max(3, int(0.1 * size) | 1)``: 3 for 32, 7 for 64, 23 for 224.
    """
    return max(3, int(0.1 * size) | 1)


# ----------------------------------------------------------------------------------------------------------
# Deterministic batched operations (float images in [0, 1], shape (N, 3, H, W), per-image parameters)
# ----------------------------------------------------------------------------------------------------------


def _per_image(values: Tensor | float, x: Tensor) -> Tensor:
    """Broadcasts a scalar or an (N,) tensor of per-image values to (N, 1, 1, 1) on x's device/dtype."""
    v = torch.as_tensor(values, dtype=x.dtype, device=x.device)
    if v.dim() == 0:
        return v
    return v.reshape(-1, 1, 1, 1)


def _blend(a: Tensor, b: Tensor, factor: Tensor | float) -> Tensor:
    """``factor * a + (1 - factor) * b`` clamped to [0, 1] (torchvision's blend on float images)."""
    f = _per_image(factor, a)
    return (f * a + (1.0 - f) * b).clamp_(0.0, 1.0)


def rgb_to_grayscale(x: Tensor, weights: Sequence[float] = PIL_GRAY_WEIGHTS) -> Tensor:
    """Luma of RGB images.

    Args:
        x: (N, 3, H, W) float images.
        weights: RGB weights (PIL's by default).

    Returns:
        (N, 1, H, W) grayscale images.
    """
    r, g, b = x.unbind(dim=1)
    return (weights[0] * r + weights[1] * g + weights[2] * b).unsqueeze(1)


def adjust_brightness(x: Tensor, factor: Tensor | float) -> Tensor:
    """Blends with black: ``clamp(factor * x)``.

    Args:
        x: (N, 3, H, W) float images in [0, 1].
        factor: scalar or per-image (N,) factors; 1 is the identity.

    Returns:
        Adjusted images.
    """
    return _blend(x, torch.zeros((), dtype=x.dtype, device=x.device), factor)


def adjust_contrast(
    x: Tensor, factor: Tensor | float, weights: Sequence[float] = PIL_GRAY_WEIGHTS
) -> Tensor:
    """Blends with the per-image mean of the grayscale image.

    Args:
        x: (N, 3, H, W) float images in [0, 1].
        factor: scalar or per-image (N,) factors; 1 is the identity.
        weights: grayscale weights.

    Returns:
        Adjusted images.
    """
    mean = rgb_to_grayscale(x, weights).mean(dim=(1, 2, 3), keepdim=True)
    return _blend(x, mean, factor)


def adjust_saturation(
    x: Tensor, factor: Tensor | float, weights: Sequence[float] = PIL_GRAY_WEIGHTS
) -> Tensor:
    """Blends with the grayscale image.

    Args:
        x: (N, 3, H, W) float images in [0, 1].
        factor: scalar or per-image (N,) factors; 1 is the identity.
        weights: grayscale weights.

    Returns:
        Adjusted images.
    """
    return _blend(x, rgb_to_grayscale(x, weights), factor)


def rgb_to_hsv(x: Tensor) -> Tensor:
    """RGB to HSV, all channels in [0, 1] (hue as a fraction of a turn).

    Args:
        x: (N, 3, H, W) float images in [0, 1].

    Returns:
        (N, 3, H, W) tensor of (hue, saturation, value).
    """
    r, g, b = x.unbind(dim=1)
    v, _ = x.max(dim=1)
    chroma = v - x.min(dim=1).values
    grey = chroma == 0
    s = chroma / torch.where(grey, torch.ones_like(v), v)
    c = torch.where(grey, torch.ones_like(chroma), chroma)
    # Sector by which channel is the maximum (ties: red, then green, as PIL and torchvision).
    h = torch.where(
        v == r, (g - b) / c, torch.where(v == g, 2.0 + (b - r) / c, 4.0 + (r - g) / c)
    )
    h = torch.remainder(h / 6.0, 1.0)
    return torch.stack((h, s, v), dim=1)


def hsv_to_rgb(x: Tensor) -> Tensor:
    """HSV to RGB, inverse of :func:`rgb_to_hsv`.

    Uses ``channel_n = v - v * s * clamp(min(k, 4 - k), 0, 1)`` with ``k = (n + 6 h) mod 6`` and n = 5, 3, 1
    for red, green, blue.

    Args:
        x: (N, 3, H, W) tensor of (hue, saturation, value) in [0, 1].

    Returns:
        (N, 3, H, W) RGB images.
    """
    h, s, v = x.unbind(dim=1)
    n = torch.tensor([5.0, 3.0, 1.0], dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    k = torch.remainder(n + 6.0 * h.unsqueeze(1), 6.0)
    ramp = torch.minimum(k, 4.0 - k).clamp_(0.0, 1.0)
    v = v.unsqueeze(1)
    return v - v * s.unsqueeze(1) * ramp


def adjust_hue(x: Tensor, factor: Tensor | float) -> Tensor:
    """Rotates the hue: rgb → hsv, ``h = (h + factor) mod 1``, hsv → rgb, clamp to [0, 1].

    Args:
        x: (N, 3, H, W) float images in [0, 1].
        factor: scalar or per-image (N,) shifts in [-0.5, 0.5].

    Returns:
        Adjusted images.
    """
    hsv = rgb_to_hsv(x)
    h = torch.remainder(hsv[:, :1] + _per_image(factor, x), 1.0)
    return hsv_to_rgb(torch.cat((h, hsv[:, 1:]), dim=1)).clamp_(0.0, 1.0)


def solarize(x: Tensor) -> Tensor:
    """Solarisation with threshold 128 on the uint8 scale.

    PIL (and torchvision on uint8) invert pixels ``p >= 128``. On float images the threshold is placed at
    127.5/255, so that images holding ``p / 255`` are solarised exactly like their uint8 originals and
    non-quantised values are treated like their nearest uint8 value.

    Args:
        x: float images in [0, 1].

    Returns:
        Solarised images.
    """
    return torch.where(x * 255.0 >= 127.5, 1.0 - x, x)


def gaussian_kernels(sigma: Tensor, kernel_size: int) -> Tensor:
    """Normalised 1-D Gaussian kernels, one per sigma (torchvision's sampling of the kernel).

    Args:
        sigma: (N,) standard deviations (pixels).
        kernel_size: odd kernel length k.

    Returns:
        (N, k) kernels summing to 1.
    """
    half = (kernel_size - 1) * 0.5
    pos = torch.linspace(-half, half, kernel_size, dtype=torch.float32, device=sigma.device)
    pdf = torch.exp(-0.5 * (pos.unsqueeze(0) / sigma.float().unsqueeze(1)) ** 2)
    return pdf / pdf.sum(dim=1, keepdim=True)


def gaussian_blur(x: Tensor, kernels: Tensor) -> Tensor:
    """Separable blur with one kernel per image and reflect padding (as torchvision's gaussian_blur).

    Implemented as two depthwise (grouped) convolutions, horizontal then vertical.

    Args:
        x: (N, C, H, W) float images.
        kernels: (N, k) 1-D kernels, k odd. The delta kernel ``[0, .., 1, .., 0]`` is the exact identity.

    Returns:
        Blurred images, same shape.
    """
    n, c, height, width = x.shape
    k = kernels.shape[1]
    pad = k // 2
    weight = kernels.to(x.dtype).repeat_interleave(c, dim=0)  # (N*C, k)
    flat = x.reshape(1, n * c, height, width)
    flat = F.pad(flat, (pad, pad, 0, 0), mode="reflect")
    flat = F.conv2d(flat, weight.view(n * c, 1, 1, k), groups=n * c)
    flat = F.pad(flat, (0, 0, pad, pad), mode="reflect")
    flat = F.conv2d(flat, weight.view(n * c, 1, k, 1), groups=n * c)
    return flat.reshape(n, c, height, width)


def _bicubic(t: Tensor, a: float = -0.5) -> Tensor:
    """PIL's bicubic (Keys) kernel with a = -0.5, support 2."""
    t = t.abs()
    near = ((a + 2.0) * t - (a + 3.0)) * t * t + 1.0
    far = (((t - 5.0) * t + 8.0) * t - 4.0) * a
    return torch.where(t < 1.0, near, torch.where(t < 2.0, far, torch.zeros_like(t)))


def _resample_matrix(start: Tensor, length: Tensor, in_size: int, out_size: int) -> Tensor:
    """Per-image (out_size, in_size) weights that crop [start, start + length) and resize it like PIL.

    Follows PIL's ``precompute_coeffs`` for the bicubic filter: output pixel ``i`` is centred at
    ``(i + 0.5) * scale`` in crop coordinates (``scale = length / out_size``); when downscaling the kernel is
    stretched by ``scale`` (antialiasing); taps outside the crop are dropped and the weights renormalised.
    """
    dev = start.device
    scale = (length.float() / out_size).view(-1, 1, 1)  # (N, 1, 1)
    stretch = scale.clamp(min=1.0)
    centre = (torch.arange(out_size, device=dev, dtype=torch.float32).view(1, -1, 1) + 0.5) * scale
    pos = torch.arange(in_size, device=dev, dtype=torch.float32).view(1, 1, -1) - start.float().view(-1, 1, 1)
    inside = (pos >= 0) & (pos < length.float().view(-1, 1, 1))
    weights = _bicubic((pos - centre + 0.5) / stretch) * inside
    return weights / weights.sum(dim=2, keepdim=True)


def resized_crop(x: Tensor, top: Tensor, left: Tensor, h: Tensor, w: Tensor, size: int) -> Tensor:
    """Crops a box per image and resizes it to ``size`` x ``size`` with PIL's bicubic filter, batched.

    Interpolation: PIL-style bicubic (a = -0.5, kernel stretched when downscaling, i.e. antialiased, taps
    restricted to the crop and renormalised), applied as two per-image resampling matrices (two batched
    matmuls), then clamped to [0, 1]. This is the filter of the faithful path's
    ``RandomResizedCrop(..., BICUBIC)`` on PIL images; PIL additionally rounds and clips to uint8 between its
    two passes (whose order depends on the Pillow version and the crop shape), so results agree within
    ~1/255 unless the bicubic overshoot of high-contrast content is clipped mid-way. ``F.grid_sample``'s
    bicubic was not used: it has a = -0.75, reads pixels outside the crop and does not antialias.

    Args:
        x: (N, C, H, W) float images in [0, 1].
        top: (N,) int crop rows.
        left: (N,) int crop columns.
        h: (N,) int crop heights.
        w: (N,) int crop widths.
        size: output side.

    Returns:
        (N, C, size, size) float images in [0, 1].
    """
    _, _, height, width = x.shape
    dev = x.device
    rows = _resample_matrix(top.to(dev), h.to(dev), height, size).to(x.dtype)  # (N, size, H)
    cols = _resample_matrix(left.to(dev), w.to(dev), width, size).to(x.dtype)  # (N, size, W)
    out = torch.matmul(x, cols.transpose(1, 2).unsqueeze(1))  # (N, C, H, size)
    return torch.matmul(rows.unsqueeze(1), out).clamp_(0.0, 1.0)  # (N, C, size, size)


# ----------------------------------------------------------------------------------------------------------
# Modules
# ----------------------------------------------------------------------------------------------------------


def _check_prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


class BatchViewAugment(torch.nn.Module):
    """One augmentation pipeline (one view), applied to a uint8 batch on its device.

    Args:
        cfg: pipeline parameters, with the faithful path's keys: ``brightness``, ``contrast``,
            ``saturation``, ``hue``, ``gaussian_prob``, ``solarization_prob``, ``min_scale``, ``size`` and
            optionally ``horizontal_flip_prob`` (0.5), ``color_jitter_prob`` (0.8), ``gray_scale_prob`` (0.2),
            ``max_scale`` (1.0), ``ratio`` ((3/4, 4/3)), ``blur_sigma`` ((0.1, 2.0)) and
            ``blur_kernel_size`` (:func:`blur_kernel_size` of ``size``). Other keys are ignored.
        mean: per-channel normalisation mean (3 values).
        std: per-channel normalisation std (3 values).
        memory_format: memory format of the output (e.g. ``torch.channels_last``).
        gray_weights: luma weights of grayscale, contrast and saturation (PIL's by default).

    Raises:
        ValueError: if a required key is missing or a value is out of range.
    """

    def __init__(
        self,
        cfg: dict,
        mean: Sequence[float],
        std: Sequence[float],
        memory_format: torch.memory_format = torch.contiguous_format,
        gray_weights: Sequence[float] = PIL_GRAY_WEIGHTS,
    ) -> None:
        super().__init__()
        missing = [k for k in _REQUIRED_KEYS if k not in cfg]
        if missing:
            raise ValueError(f"augmentation config lacks {missing}")
        self.size = int(cfg["size"])
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        self.scale = (float(cfg["min_scale"]), float(cfg.get("max_scale", 1.0)))
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"crop scale must satisfy 0 < min_scale <= max_scale, got {self.scale}")
        self.ratio = tuple(float(r) for r in cfg.get("ratio", (3.0 / 4.0, 4.0 / 3.0)))
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")
        self.jitter = {k: cfg[k] for k in JITTER_OPS}
        self.jitter_ranges = jitter_ranges(**self.jitter)
        self.jitter_prob = _check_prob("color_jitter_prob", cfg.get("color_jitter_prob", 0.8))
        self.gray_prob = _check_prob("gray_scale_prob", cfg.get("gray_scale_prob", 0.2))
        self.blur_prob = _check_prob("gaussian_prob", cfg["gaussian_prob"])
        self.blur_sigma = tuple(float(s) for s in cfg.get("blur_sigma", (0.1, 2.0)))
        if not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma}")
        self.blur_kernel_size = int(cfg.get("blur_kernel_size") or blur_kernel_size(self.size))
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd and positive, got {self.blur_kernel_size}")
        self.solarization_prob = _check_prob("solarization_prob", cfg["solarization_prob"])
        self.flip_prob = _check_prob("horizontal_flip_prob", cfg.get("horizontal_flip_prob", 0.5))
        self.memory_format = memory_format
        self.gray_weights = tuple(float(v) for v in gray_weights)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, jitter={self.jitter} "
            f"(p={self.jitter_prob}), gray_p={self.gray_prob}, blur_p={self.blur_prob} "
            f"(sigma={self.blur_sigma}, k={self.blur_kernel_size}), solarize_p={self.solarization_prob}, "
            f"flip_p={self.flip_prob}"
        )

    def sample_params(
        self,
        n: int,
        height: int,
        width: int,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, Tensor]:
        """Draws every random parameter of the pipeline for ``n`` images of size ``height`` x ``width``.

        Args:
            n: number of images.
            height: input height.
            width: input width.
            generator: random generator; its device is used for the draws.
            device: device of the draws when ``generator`` is None.

        Returns:
            Dict with ``top``, ``left``, ``h``, ``w`` (crop), ``jitter_apply``, ``jitter_order`` and the four
            factors ``brightness``, ``contrast``, ``saturation``, ``hue``, ``gray``, ``blur_apply``,
            ``blur_sigma``, ``solarize``, ``flip`` (bool masks / per-image values, shape (n,) or (n, 4)).
        """
        top, left, h, w = sample_crop_params(
            n, height, width, self.scale, self.ratio, generator, device
        )
        params = {"top": top, "left": left, "h": h, "w": w}
        jit = sample_jitter_params(n, **self.jitter, p=self.jitter_prob, generator=generator, device=device)
        params["jitter_apply"] = jit.pop("apply")
        params["jitter_order"] = jit.pop("order")
        params.update(jit)
        params["gray"] = sample_mask(n, self.gray_prob, generator, device)
        params["blur_apply"], params["blur_sigma"] = sample_blur_params(
            n, self.blur_prob, self.blur_sigma, generator, device
        )
        params["solarize"] = sample_mask(n, self.solarization_prob, generator, device)
        params["flip"] = sample_mask(n, self.flip_prob, generator, device)
        return params

    def apply_params(self, images: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Applies the pipeline with the given parameters (see :meth:`sample_params`).

        Args:
            images: (N, 3, H, W) uint8 images (or float in [0, 1]).
            params: per-image parameters.

        Returns:
            (N, 3, size, size) float32 normalised images in ``self.memory_format``.
        """
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
        dev = images.device
        p = {k: v.to(dev, non_blocking=True) for k, v in params.items()}
        if images.dtype == torch.uint8:
            x = images.float().div_(255.0)
        else:
            x = images.float()
        x = resized_crop(x, p["top"], p["left"], p["h"], p["w"], self.size)
        return self.apply_after_crop(x, p)

    def apply_after_crop(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Applies every step after the random resized crop: jitter, grayscale, blur, solarisation, flip and
        normalisation (the crop entries of ``params`` are not read).

        For callers that crop by other means, e.g. :mod:`cassle.data.gpu_decode`, whose images have
        per-image sizes.

        Args:
            x: (N, 3, size, size) float images in [0, 1] (already cropped and resized).
            params: per-image parameters from :meth:`sample_params`.

        Returns:
            (N, 3, size, size) float32 normalised images in ``self.memory_format``.
        """
        dev = x.device
        p = {k: v.to(dev, non_blocking=True) for k, v in params.items()}
        x = self._jitter(x, p)
        if self.gray_prob > 0:
            gray = rgb_to_grayscale(x, self.gray_weights).expand_as(x)
            x = torch.where(p["gray"].view(-1, 1, 1, 1), gray, x)
        if self.blur_prob > 0:
            kernels = gaussian_kernels(p["blur_sigma"], self.blur_kernel_size)
            delta = torch.zeros_like(kernels)
            delta[:, self.blur_kernel_size // 2] = 1.0
            kernels = torch.where(p["blur_apply"].view(-1, 1), kernels, delta)
            x = gaussian_blur(x, kernels)
        if self.solarization_prob > 0:
            x = torch.where(p["solarize"].view(-1, 1, 1, 1), solarize(x), x)
        if self.flip_prob > 0:
            x = torch.where(p["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        x = (x - self.mean.to(dev)) / self.std.to(dev)
        return x.contiguous(memory_format=self.memory_format)

    def _jitter(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """Colour jitter in each image's own order; non-selected operations get identity factors."""
        active = [i for i, name in enumerate(JITTER_OPS) if self.jitter_ranges[name] is not None]
        if self.jitter_prob == 0 or not active:
            return x
        apply, order = p["jitter_apply"], p["jitter_order"]
        for position in range(4):
            here = order[:, position]
            for i in active:
                name = JITTER_OPS[i]
                chosen = apply & (here == i)
                if name == "hue":
                    x = torch.where(chosen.view(-1, 1, 1, 1), adjust_hue(x, p["hue"]), x)
                    continue
                # A blend with factor exactly 1 is the exact identity, so no mask is needed.
                factor = torch.where(chosen, p[name], torch.ones_like(p[name]))
                if name == "brightness":
                    x = adjust_brightness(x, factor)
                elif name == "contrast":
                    x = adjust_contrast(x, factor, self.gray_weights)
                else:
                    x = adjust_saturation(x, factor, self.gray_weights)
        return x

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Augments a batch, each image with its own random parameters.

        Args:
            images: (N, 3, H, W) uint8 images on any device.
            generator: random generator (CPU or on the images' device) for reproducible draws.

        Returns:
            (N, 3, size, size) float32 normalised images on the images' device.
        """
        n, _, height, width = images.shape
        params = self.sample_params(n, height, width, generator, images.device)
        return self.apply_params(images, params)


class TwoViewBatchAugment(torch.nn.Module):
    """One :class:`BatchViewAugment` per view, all applied to the same uint8 batch.

    Args:
        cfgs: one config per view (a single dict is used for two identical pipelines).
        mean: normalisation mean.
        std: normalisation std.
        memory_format: memory format of the outputs.
        gray_weights: luma weights (PIL's by default).
    """

    def __init__(
        self,
        cfgs: Sequence[dict] | dict,
        mean: Sequence[float],
        std: Sequence[float],
        memory_format: torch.memory_format = torch.contiguous_format,
        gray_weights: Sequence[float] = PIL_GRAY_WEIGHTS,
    ) -> None:
        super().__init__()
        if isinstance(cfgs, dict):
            cfgs = [cfgs, cfgs]
        if len(cfgs) < 1:
            raise ValueError("need at least one view config")
        self.views = torch.nn.ModuleList(
            BatchViewAugment(c, mean, std, memory_format, gray_weights) for c in cfgs
        )

    @property
    def num_views(self) -> int:
        """Number of views produced per image."""
        return len(self.views)

    def forward(self, images: Tensor, generator: torch.Generator | None = None) -> list[Tensor]:
        """Augments a batch once per view, with independent random parameters.

        Args:
            images: (N, 3, H, W) uint8 images.
            generator: random generator for reproducible draws.

        Returns:
            List of (N, 3, size_v, size_v) float32 tensors, one per view.
        """
        return [view(images, generator) for view in self.views]


# ----------------------------------------------------------------------------------------------------------
# Device-resident loaders
# ----------------------------------------------------------------------------------------------------------


class DeviceDataset:
    """A dataset held on a device: uint8 images (N, 3, H, W) and int64 labels (N,).

    Args:
        images: (N, H, W, 3) uint8 images, numpy array or tensor (as torchvision's CIFAR ``.data``).
        targets: (N,) integer labels (sequence, array or tensor).
        device: where to hold them.

    Raises:
        ValueError: on wrong shapes or dtype.
    """

    def __init__(
        self,
        images: np.ndarray | Tensor,
        targets: Sequence[int] | np.ndarray | Tensor,
        device: torch.device | str = "cpu",
    ) -> None:
        imgs = torch.as_tensor(images)
        if imgs.dtype != torch.uint8 or imgs.dim() != 4 or imgs.shape[-1] != 3:
            raise ValueError(
                f"expected uint8 images of shape (N, H, W, 3), got {imgs.dtype} {tuple(imgs.shape)}"
            )
        tgts = torch.as_tensor(np.asarray(targets) if not isinstance(targets, Tensor) else targets).long()
        if tgts.shape != (imgs.shape[0],):
            raise ValueError(f"expected {imgs.shape[0]} targets, got shape {tuple(tgts.shape)}")
        self.device = torch.device(device)
        self.images = imgs.to(self.device).permute(0, 3, 1, 2).contiguous()
        self.targets = tgts.to(self.device)

    def __len__(self) -> int:
        return self.images.shape[0]


def _as_index_tensor(indices: Sequence[int] | np.ndarray | Tensor | None, n: int) -> Tensor:
    if indices is None:
        return torch.arange(n)
    idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices).long().flatten()
    if idx.numel() and (idx.min() < 0 or idx.max() >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    return idx.cpu()


class DeviceTaskLoader:
    """Shuffled, augmented batches of a task's images, all on the dataset's device.

    Yields ``(indexes, [X1, X2], targets)`` (the official training batch format; ``indexes`` are positions in
    the full dataset). With a :class:`BatchViewAugment` instead of a :class:`TwoViewBatchAugment` the middle
    item is a single tensor. Each ``iter()`` starts a new epoch: the order comes from a CPU generator seeded
    with ``seed + epoch`` and the augmentation draws from a device generator seeded from the same pair.

    Args:
        dataset: the device-resident dataset.
        indices: dataset positions of the task (None: all).
        batch_size: images per batch.
        augment: the augmentation module.
        seed: base seed.
        shuffle: reshuffle every epoch (otherwise the order of ``indices``).
        drop_last: drop the last incomplete batch.
    """

    #: Offset separating the augmentation stream's seed from the shuffle seed.
    _AUGMENT_SALT = 0x5EED_0000_0001

    def __init__(
        self,
        dataset: DeviceDataset,
        indices: Sequence[int] | np.ndarray | Tensor | None,
        batch_size: int,
        augment: torch.nn.Module,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.indices = _as_index_tensor(indices, len(dataset))
        self.batch_size = int(batch_size)
        self.augment = augment.to(dataset.device)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    @classmethod
    def from_arrays(
        cls,
        images: np.ndarray | Tensor,
        targets: Sequence[int] | np.ndarray | Tensor,
        indices: Sequence[int] | np.ndarray | Tensor | None,
        batch_size: int,
        augment: torch.nn.Module,
        device: torch.device | str = "cpu",
        **kwargs,
    ) -> "DeviceTaskLoader":
        """Builds the loader from (N, H, W, 3) uint8 images and labels, moving them to ``device``."""
        return cls(DeviceDataset(images, targets, device), indices, batch_size, augment, **kwargs)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch used by the next ``iter()``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def _order(self, epoch: int) -> Tensor:
        if not self.shuffle:
            return self.indices
        gen = torch.Generator().manual_seed(self.seed + epoch)
        return self.indices[torch.randperm(len(self.indices), generator=gen)]

    def __iter__(self) -> Iterator[tuple[Tensor, list[Tensor] | Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        dev = self.dataset.device
        order = self._order(epoch).to(dev)
        aug_gen = torch.Generator(device=dev).manual_seed(self.seed + epoch + self._AUGMENT_SALT)
        for b in range(len(self)):
            idx = order[b * self.batch_size : (b + 1) * self.batch_size]
            views = self.augment(self.dataset.images[idx], aug_gen)
            yield idx, views, self.dataset.targets[idx]


class DeviceEvalLoader(DeviceTaskLoader):
    """Single-view augmented stream, e.g. the online-eval loader over the full training set.

    Yields ``(indexes, X, targets)``. Same arguments as :class:`DeviceTaskLoader`, with ``augment`` a
    :class:`BatchViewAugment` (the official code uses the view-2 pipeline) and ``indices`` defaulting to all.
    """

    _AUGMENT_SALT = 0x5EED_0000_0002

    def __init__(
        self,
        dataset: DeviceDataset,
        batch_size: int,
        augment: BatchViewAugment,
        indices: Sequence[int] | np.ndarray | Tensor | None = None,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
    ) -> None:
        if not isinstance(augment, BatchViewAugment):
            raise TypeError("DeviceEvalLoader needs a single-view BatchViewAugment")
        super().__init__(dataset, indices, batch_size, augment, seed, shuffle, drop_last)


class DeviceValLoader:
    """Deterministic validation batches ``(X, targets)``: ToTensor + Normalize only, in order, no drop.

    Args:
        dataset: the device-resident dataset.
        batch_size: images per batch.
        mean: normalisation mean.
        std: normalisation std.
        indices: dataset positions to iterate (None: all).
        memory_format: memory format of the outputs.
    """

    def __init__(
        self,
        dataset: DeviceDataset,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        indices: Sequence[int] | np.ndarray | Tensor | None = None,
        memory_format: torch.memory_format = torch.contiguous_format,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.dataset = dataset
        self.indices = _as_index_tensor(indices, len(dataset)).to(dataset.device)
        self.batch_size = int(batch_size)
        self.mean = torch.tensor(mean, dtype=torch.float32, device=dataset.device).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32, device=dataset.device).view(1, 3, 1, 1)
        self.memory_format = memory_format

    def __len__(self) -> int:
        return -(-len(self.indices) // self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        for b in range(len(self)):
            idx = self.indices[b * self.batch_size : (b + 1) * self.batch_size]
            x = self.dataset.images[idx].float().div_(255.0)
            x = ((x - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield x, self.dataset.targets[idx]


# ----------------------------------------------------------------------------------------------------------
# Benchmark helper
# ----------------------------------------------------------------------------------------------------------


def views_per_second(
    augment: torch.nn.Module,
    images: Tensor,
    batch_size: int,
    steps: int,
    generator: torch.Generator | None = None,
) -> float:
    """Measures augmentation throughput in augmented views per second.

    Runs one untimed warm-up step, then ``steps`` timed steps on consecutive (wrapping) slices of ``images``,
    synchronising CUDA before reading the clock.

    Args:
        augment: a :class:`BatchViewAugment` or :class:`TwoViewBatchAugment`.
        images: (N, 3, H, W) uint8 images on the device to measure.
        batch_size: images per step.
        steps: number of timed steps (>= 1).
        generator: optional random generator.

    Returns:
        ``batch_size * steps * views / seconds``.
    """
    if steps < 1 or batch_size < 1:
        raise ValueError("steps and batch_size must be positive")
    n = images.shape[0]
    views = getattr(augment, "num_views", 1)

    def batch(step: int) -> Tensor:
        idx = (torch.arange(batch_size, device=images.device) + step * batch_size) % n
        return images[idx]

    def sync() -> None:
        if images.device.type == "cuda":
            torch.cuda.synchronize(images.device)

    with torch.no_grad():
        augment(batch(0), generator)
        sync()
        start = time.perf_counter()
        for step in range(steps):
            augment(batch(step + 1), generator)
        sync()
        elapsed = time.perf_counter() - start
    return batch_size * steps * views / max(elapsed, 1e-12)
