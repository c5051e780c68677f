"""Random parameters of the device augmentation, drawn for a whole batch at once.

Every function draws from ``generator`` (on the generator's device) or, without one, from the global
generator of ``device``. The distributions are those of the faithful path's torchvision transforms:
:func:`sample_crop_boxes` (``RandomResizedCrop``, for equal-size batches and for decoded images of different
sizes alike), :func:`sample_jitter_params` (``RandomApply(ColorJitter)``), :func:`sample_blur_params`
(``RandomApply(GaussianBlur)``) and :func:`sample_mask` (every other ``Random*`` decision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = [
    "JITTER_OPS",
    "jitter_ranges",
    "sample_blur_params",
    "sample_crop_boxes",
    "sample_jitter_params",
    "sample_mask",
]

#: Names of the colour-jitter operations, in the index order used by the sampled permutations.
JITTER_OPS: tuple[str, str, str, str] = ("brightness", "contrast", "saturation", "hue")


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


def sample_crop_boxes(
    n: int,
    height: int | Tensor,
    width: int | Tensor,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    attempts: int = 10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random-resized-crop boxes for ``n`` images with torchvision's algorithm, vectorised.

    For image ``i`` of size ``H_i x W_i``, ``attempts`` candidates are drawn at once: area
    ``H_i W_i * U(scale)``, aspect ratio log-uniform in ``ratio``, ``w = round(sqrt(area * r))``,
    ``h = round(sqrt(area / r))``. The first candidate with ``0 < w <= W_i`` and ``0 < h <= H_i`` is kept,
    with integer offsets drawn uniformly; images without a valid candidate get the central crop clamped to
    the ratio range (torchvision's fallback). The draws do not depend on the sizes, so a batch of equal
    sizes given as ints or as (n,) tensors gets the same boxes from the same generator state.

    Args:
        n: number of images.
        height: image height, one for all (int) or one per image ((n,) tensor).
        width: image width, likewise.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio w / h.
        generator: random generator; its device is used for the draws.
        device: device of the draws when ``generator`` is None.
        attempts: number of candidates per image (torchvision: 10).

    Returns:
        ``(top, left, h, w)``, int64 tensors of shape (n,) on the sampling device.
    """
    dev = generator.device if generator is not None else torch.device(device or "cpu")
    hgt = torch.as_tensor(height, dtype=torch.float64, device=dev).flatten().expand(n)
    wid = torch.as_tensor(width, dtype=torch.float64, device=dev).flatten().expand(n)
    area = (hgt * wid).unsqueeze(1)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target = area * _uniform((n, attempts), scale[0], scale[1], generator, dev)
    aspect = torch.exp(_uniform((n, attempts), log_lo, log_hi, generator, dev))
    cand_w = torch.round(torch.sqrt(target * aspect))
    cand_h = torch.round(torch.sqrt(target / aspect))
    valid = (cand_w > 0) & (cand_w <= wid.unsqueeze(1)) & (cand_h > 0) & (cand_h <= hgt.unsqueeze(1))
    tries = torch.arange(attempts, device=dev).expand(n, attempts)
    first = torch.where(valid, tries, attempts).min(dim=1, keepdim=True).values  # attempts if none
    found = first.squeeze(1) < attempts
    first = first.clamp(max=attempts - 1)
    w = torch.gather(cand_w, 1, first).squeeze(1)
    h = torch.gather(cand_h, 1, first).squeeze(1)

    # torchvision's fallback: the central crop, clamped to the ratio range.
    in_ratio = wid / hgt
    lo, hi = min(ratio), max(ratio)
    fb_w = torch.where(in_ratio > hi, torch.round(hgt * hi), wid)
    fb_h = torch.where(in_ratio < lo, torch.round(wid / lo), hgt)
    w = torch.where(found, w, fb_w)
    h = torch.where(found, h, fb_h)

    u_top = _uniform((n,), 0.0, 1.0, generator, dev)
    u_left = _uniform((n,), 0.0, 1.0, generator, dev)
    top = torch.minimum(torch.floor(u_top * (hgt - h + 1)), hgt - h)
    left = torch.minimum(torch.floor(u_left * (wid - w + 1)), wid - w)
    top = torch.where(found, top, torch.div(hgt - fb_h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(wid - fb_w, 2, rounding_mode="floor"))
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

