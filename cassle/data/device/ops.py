"""Deterministic image operations on batches of float images in [0, 1], one parameter per image.

Colour (grayscale, brightness, contrast, saturation, hue through HSV), solarisation, separable Gaussian blur,
and two resized crops with PIL's bicubic filter: :func:`resized_crop` for a batch of equal-size images
(per-image resampling matrices, batched) and :func:`crop_resize` for images of different sizes (one
``F.interpolate`` per image). The random parameters come from :mod:`cassle.data.device.sampling`.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = [
    "PIL_GRAY_WEIGHTS",
    "adjust_brightness",
    "adjust_contrast",
    "adjust_hue",
    "adjust_saturation",
    "crop_resize",
    "gaussian_blur",
    "gaussian_kernels",
    "hsv_to_rgb",
    "resized_crop",
    "rgb_to_grayscale",
    "rgb_to_hsv",
    "solarize",
]

#: Luma weights of PIL's ``convert("L")`` (ITU-R 601-2), which the faithful path uses.
#: (torchvision's tensor functions use 0.2989 for red.)
PIL_GRAY_WEIGHTS: tuple[float, float, float] = (0.299, 0.587, 0.114)


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


def crop_resize(
    images: Sequence[Tensor], top: Tensor, left: Tensor, h: Tensor, w: Tensor, size: int
) -> Tensor:
    """Cuts a box out of each image and resizes it to ``size x size``, image by image.

    Resampling: ``F.interpolate(mode="bicubic", antialias=True)``, PyTorch's port of PIL's bicubic filter
    (a = -0.5, kernel stretched when down-sampling), as the faithful path's ``RandomResizedCrop(..., BICUBIC)``
    on PIL images; values stay in float (PIL rounds to uint8 between its two passes) and are clamped to
    [0, 1].

    Args:
        images: (3, H_i, W_i) uint8 images, all on one device.
        top: (n,) int crop rows (read on the CPU: any device works, a CPU tensor avoids a copy).
        left: (n,) int crop columns.
        h: (n,) int crop heights.
        w: (n,) int crop widths.
        size: output side.

    Returns:
        (n, 3, size, size) float32 images in [0, 1] on the images' device.
    """
    if len(images) == 0:
        raise ValueError("no images to crop")
    out = torch.empty((len(images), 3, size, size), dtype=torch.float32, device=images[0].device)
    boxes = zip(top.tolist(), left.tolist(), h.tolist(), w.tolist())
    for k, (img, (y0, x0, hh, ww)) in enumerate(zip(images, boxes)):
        crop = img[:, y0 : y0 + hh, x0 : x0 + ww].unsqueeze(0).float().div_(255.0)
        if (hh, ww) == (size, size):
            out[k] = crop[0]
        else:
            out[k] = F.interpolate(crop, size=(size, size), mode="bicubic", align_corners=False,
                                   antialias=True)[0]
    return out.clamp_(0.0, 1.0)

