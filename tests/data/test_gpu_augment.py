"""The batched on-device augmentation draws from the faithful (torchvision/PIL) path's distributions.

Distribution checks compare binned histograms with a two-sample chi-square statistic against a bound at
z = 4 (false-alarm rate ~3e-5 per check); one test shows that the bound rejects plausible wrong samplers.
Rate checks use 4-sigma binomial bounds. Deterministic checks compare each operation with torchvision's
functional ops (or PIL) for fixed parameters.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms as T

from cassle.data.gpu_augment import (
    PIL_GRAY_WEIGHTS,
    BatchViewAugment,
    DeviceDataset,
    DeviceEvalLoader,
    DeviceTaskLoader,
    DeviceValLoader,
    TwoViewBatchAugment,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    blur_kernel_size,
    gaussian_blur,
    gaussian_kernels,
    resized_crop,
    rgb_to_grayscale,
    sample_blur_params,
    sample_crop_params,
    sample_jitter_params,
    solarize,
    views_per_second,
)

TV_GRAY = (0.2989, 0.587, 0.114)  # torchvision's tensor luma weights
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.247, 0.243, 0.261)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
Z = 4.0


def _identity_cfg(size: int, **overrides) -> dict:
    """A config with every random operation switched off (crop = whole square image)."""
    cfg = dict(
        brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, gaussian_prob=0.0, solarization_prob=0.0,
        min_scale=1.0, size=size, horizontal_flip_prob=0.0, color_jitter_prob=0.0, gray_scale_prob=0.0,
    )
    cfg.update(overrides)
    return cfg


def _cifar_cfg(**overrides) -> dict:
    cfg = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, gaussian_prob=0.0,
               solarization_prob=0.2, min_scale=0.08, size=32)
    cfg.update(overrides)
    return cfg


def _normalise(x_uint8: torch.Tensor) -> torch.Tensor:
    mean = torch.tensor(MEAN).view(1, 3, 1, 1)
    std = torch.tensor(STD).view(1, 3, 1, 1)
    return (x_uint8.float() / 255.0 - mean) / std


def _random_uint8(n: int, h: int, w: int, seed: int = 0, low: int = 0, high: int = 256) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (n, 3, h, w), generator=g, dtype=torch.uint8)


def _chi2_bound(df: int, z: float = Z) -> float:
    """Upper z-quantile of chi-square(df) (Wilson-Hilferty)."""
    c = 2.0 / (9.0 * df)
    return df * (1.0 - c + z * math.sqrt(c)) ** 3


def _chi2_two_sample(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Two-sample chi-square statistic of equal-size samples over ``edges`` and its z=4 bound."""
    assert len(a) == len(b)
    ca, _ = np.histogram(a, edges)
    cb, _ = np.histogram(b, edges)
    assert ca.sum() == len(a) and cb.sum() == len(b), "samples fall outside the histogram range"
    keep = (ca + cb) > 0
    stat = float((((ca - cb) ** 2)[keep] / (ca + cb)[keep]).sum())
    return stat, _chi2_bound(int(keep.sum()) - 1)


def _binomial_ok(count: int, n: int, p: float) -> bool:
    return abs(count / n - p) <= Z * math.sqrt(p * (1 - p) / n)


# ------------------------------------------------------------------------------------------------------
# Crop parameters
# ------------------------------------------------------------------------------------------------------


def _torchvision_crops(n: int, height: int, width: int, scale, seed: int) -> np.ndarray:
    img = torch.empty(3, height, width)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return np.array([T.RandomResizedCrop.get_params(img, list(scale), list(RATIO)) for _ in range(n)])


def _ours(n: int, height: int, width: int, scale, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    top, left, h, w = sample_crop_params(n, height, width, scale, RATIO, generator=g)
    return torch.stack([top, left, h, w], 1).numpy()


def _crop_stats(boxes: np.ndarray, height: int, width: int) -> dict[str, np.ndarray]:
    top, left, h, w = boxes.T.astype(np.float64)
    return {
        "area": h * w / (height * width),
        "log_ratio": np.log(w / h),
        "rel_top": np.where(h < height, top / np.maximum(height - h, 1), 0.5),
        "rel_left": np.where(w < width, left / np.maximum(width - w, 1), 0.5),
    }


_EDGES = {
    "area": np.linspace(0.0, 1.0 + 1e-9, 21),
    "log_ratio": np.linspace(math.log(0.70), math.log(1.0 / 0.70), 15),
    "rel_top": np.linspace(0.0, 1.0 + 1e-9, 11),
    "rel_left": np.linspace(0.0, 1.0 + 1e-9, 11),
}

N_CROPS = 20000


@pytest.fixture(scope="module")
def reference_crops_224() -> np.ndarray:
    return _torchvision_crops(N_CROPS, 224, 224, (0.08, 1.0), seed=1)


def test_crop_params_ranges() -> None:
    n, height, width, min_scale = N_CROPS, 224, 224, 0.08
    top, left, h, w = (t.double() for t in sample_crop_params(n, height, width, (min_scale, 1.0), RATIO,
                                                              generator=torch.Generator().manual_seed(3)))
    assert ((h >= 1) & (h <= height) & (w >= 1) & (w <= width)).all()
    assert ((top >= 0) & (top + h <= height) & (left >= 0) & (left + w <= width)).all()
    area = h * w / (height * width)
    assert area.max() <= 1.0
    # Integer rounding moves each side by at most 0.5 from the sampled real box.
    assert ((h + 0.5) * (w + 0.5) >= min_scale * height * width).all()
    assert ((w - 0.5) / (h + 0.5) <= RATIO[1]).all() and ((w + 0.5) / (h - 0.5) >= RATIO[0]).all()
    # The whole range is used: small and large areas, both extreme ratios, offsets reaching both edges.
    assert area.min() < min_scale + 0.01 and area.max() > 0.99
    assert (w / h).min() < 0.76 and (w / h).max() > 1.32
    assert (top == 0).any() and (top + h == height).sum() > 0 and (left == 0).any()


@pytest.mark.parametrize("stat", ["area", "log_ratio", "rel_top", "rel_left"])
def test_crop_distribution_matches_torchvision(reference_crops_224: np.ndarray, stat: str) -> None:
    ours = _crop_stats(_ours(N_CROPS, 224, 224, (0.08, 1.0), seed=2), 224, 224)[stat]
    ref = _crop_stats(reference_crops_224, 224, 224)[stat]
    value, bound = _chi2_two_sample(ours, ref, _EDGES[stat])
    assert value < bound, f"{stat}: chi2 {value:.1f} >= {bound:.1f}"


def test_crop_distribution_with_fallback_matches_torchvision() -> None:
    # A wide image (W/H = 4 > 4/3) makes many draws fall back to the clamped central crop.
    n, height, width, scale = 10000, 48, 192, (0.2, 1.0)
    ours, ref = _ours(n, height, width, scale, seed=4), _torchvision_crops(n, height, width, scale, seed=5)
    fb_w = int(round(height * RATIO[1]))
    fallback = np.array([0, (width - fb_w) // 2, height, fb_w])
    k_ours, k_ref = int((ours == fallback).all(1).sum()), int((ref == fallback).all(1).sum())
    assert k_ref > 0.05 * n  # the branch is exercised
    pooled = (k_ours + k_ref) / (2 * n)
    assert abs(k_ours - k_ref) / n <= Z * math.sqrt(2 * pooled * (1 - pooled) / n)
    for stat in ("area", "log_ratio", "rel_left"):
        a, b = _crop_stats(ours, height, width)[stat], _crop_stats(ref, height, width)[stat]
        value, bound = _chi2_two_sample(a, b, _EDGES[stat])
        assert value < bound, f"{stat}: chi2 {value:.1f} >= {bound:.1f}"


def test_crop_fallback_is_torchvisions_exact_box() -> None:
    # Areas above the image's: no candidate can fit, so both always return the clamped central box.
    for height, width in ((8, 12), (12, 8), (10, 10), (7, 30)):
        ref = T.RandomResizedCrop.get_params(torch.empty(3, height, width), [1.5, 2.0], list(RATIO))
        top, left, h, w = sample_crop_params(64, height, width, (1.5, 2.0), RATIO,
                                             generator=torch.Generator().manual_seed(0))
        for got, want in zip((top, left, h, w), ref):
            assert (got == want).all(), (height, width, ref)


def _wrong_sampler(n: int, height: int, width: int, scale, seed: int, mode: str) -> np.ndarray:
    """Plausible mistakes: uniform (not log-uniform) ratio, or a single attempt before the fallback."""
    rng = np.random.default_rng(seed)
    attempts = 1 if mode == "one_try" else 10
    out = []
    for _ in range(n):
        for _ in range(attempts):
            area = height * width * rng.uniform(*scale)
            r = rng.uniform(*RATIO) if mode == "uniform_ratio" else math.exp(rng.uniform(*np.log(RATIO)))
            w, h = int(round(math.sqrt(area * r))), int(round(math.sqrt(area / r)))
            if 0 < w <= width and 0 < h <= height:
                out.append((rng.integers(0, height - h + 1), rng.integers(0, width - w + 1), h, w))
                break
        else:
            out.append(((height - height) // 2, 0, height, width))
    return np.array(out)


@pytest.mark.parametrize("mode, stat", [("uniform_ratio", "log_ratio"), ("one_try", "area")])
def test_crop_bound_rejects_wrong_distributions(reference_crops_224: np.ndarray, mode: str, stat: str) -> None:
    wrong = _crop_stats(_wrong_sampler(N_CROPS, 224, 224, (0.08, 1.0), 6, mode), 224, 224)[stat]
    ref = _crop_stats(reference_crops_224, 224, 224)[stat]
    value, bound = _chi2_two_sample(wrong, ref, _EDGES[stat])
    assert value > 2 * bound, f"{mode}: chi2 {value:.1f} not above {bound:.1f}"


# ------------------------------------------------------------------------------------------------------
# Other parameters
# ------------------------------------------------------------------------------------------------------


def _ks_uniform(x: torch.Tensor, low: float, high: float) -> float:
    u = np.sort(((x.double().numpy() - low) / (high - low)))
    n = len(u)
    grid = np.arange(1, n + 1) / n
    return float(max(np.abs(grid - u).max(), np.abs(grid - 1.0 / n - u).max()))


def test_jitter_params_distribution() -> None:
    n = 20000
    p = sample_jitter_params(n, 0.4, 0.4, 0.2, 0.1, p=0.8, generator=torch.Generator().manual_seed(7))
    ks_bound = 1.95 / math.sqrt(n)  # 0.1% Kolmogorov-Smirnov critical value
    for name, (low, high) in {"brightness": (0.6, 1.4), "contrast": (0.6, 1.4),
                              "saturation": (0.8, 1.2), "hue": (-0.1, 0.1)}.items():
        v = p[name]
        assert v.dtype == torch.float32 and v.shape == (n,)
        assert v.min() >= low and v.max() <= high, name
        assert _ks_uniform(v, low, high) < ks_bound, name
    assert _binomial_ok(int(p["apply"].sum()), n, 0.8)
    order = p["order"]
    assert (order.sort(1).values == torch.arange(4)).all()  # every row is a permutation
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(1).numpy()
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    chi2 = float(((counts - n / 24) ** 2 / (n / 24)).sum())
    assert chi2 < _chi2_bound(23)
    # Brightness range is clamped at 0; a zero strength disables an operation (identity factor).
    q = sample_jitter_params(1000, 1.5, 0.0, 0.0, 0.0, generator=torch.Generator().manual_seed(8))
    assert q["brightness"].min() >= 0 and q["brightness"].max() <= 2.5 and q["brightness"].min() < 0.1
    assert (q["contrast"] == 1).all() and (q["saturation"] == 1).all() and (q["hue"] == 0).all()


def test_blur_params_distribution() -> None:
    n = 20000
    apply, sigma = sample_blur_params(n, 0.5, (0.1, 2.0), generator=torch.Generator().manual_seed(9))
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert _ks_uniform(sigma, 0.1, 2.0) < 1.95 / math.sqrt(n)
    assert _binomial_ok(int(apply.sum()), n, 0.5)
    assert [blur_kernel_size(s) for s in (16, 32, 64, 96, 224)] == [3, 3, 7, 9, 23]


# ------------------------------------------------------------------------------------------------------
# Rates of the random operations, measured on the outputs
# ------------------------------------------------------------------------------------------------------

N_RATE = 3000


@pytest.fixture(scope="module")
def tiny_images() -> torch.Tensor:
    return _random_uint8(N_RATE, 8, 8, seed=11)


def _changed_fraction(cfg: dict, images: torch.Tensor, seed: int) -> tuple[int, torch.Tensor]:
    out = BatchViewAugment(cfg, MEAN, STD)(images, torch.Generator().manual_seed(seed))
    changed = (out - _normalise(images)).abs().amax(dim=(1, 2, 3)) > 1e-5
    return int(changed.sum()), out


@pytest.mark.parametrize(
    "overrides, p",
    [
        ({"gray_scale_prob": None}, 0.2),  # default of RandomGrayscale
        ({"color_jitter_prob": None, "brightness": 0.4, "contrast": 0.4, "saturation": 0.2, "hue": 0.1}, 0.8),
        ({"solarization_prob": 0.2}, 0.2),
        ({"horizontal_flip_prob": None}, 0.5),  # default
        ({"gaussian_prob": 0.5, "blur_sigma": (1.0, 2.0)}, 0.5),
        ({"gaussian_prob": 0.1, "blur_sigma": (1.0, 2.0)}, 0.1),
    ],
)
def test_operation_rates(tiny_images: torch.Tensor, overrides: dict, p: float) -> None:
    cfg = _identity_cfg(8, **overrides)
    cfg = {k: v for k, v in cfg.items() if v is not None}  # None: use the module's default
    count, _ = _changed_fraction(cfg, tiny_images, seed=12)
    assert _binomial_ok(count, N_RATE, p), f"{count / N_RATE:.3f} vs {p}"


def test_views_are_independent_and_per_view_configs(tiny_images: torch.Tensor) -> None:
    aug = TwoViewBatchAugment([_identity_cfg(8, horizontal_flip_prob=0.5),
                               _identity_cfg(8, horizontal_flip_prob=0.5, solarization_prob=1.0)], MEAN, STD)
    v1, v2 = aug(tiny_images, torch.Generator().manual_seed(13))
    ref = _normalise(tiny_images)
    flipped1 = (v1 - ref.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert ((v1 - ref).abs().amax(dim=(1, 2, 3)) < 1e-5).logical_xor(flipped1).all()  # view 1: flip only
    sol = _normalise(torch.where(tiny_images >= 128, 255 - tiny_images, tiny_images))
    flipped2 = (v2 - sol.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert ((v2 - sol).abs().amax(dim=(1, 2, 3)) < 1e-5).logical_xor(flipped2).all()  # view 2: always solarised
    both = int((flipped1 & flipped2).sum())
    assert _binomial_ok(both, N_RATE, 0.25)  # independent draws per view


# ------------------------------------------------------------------------------------------------------
# Deterministic operations against torchvision / PIL
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def float_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(21)
    return torch.rand((4, 3, 12, 12), generator=g)


def test_brightness_contrast_saturation_match_torchvision(float_images: torch.Tensor) -> None:
    factors = torch.tensor([0.0, 0.6, 1.0, 1.4])
    out_b = adjust_brightness(float_images, factors)
    out_c = adjust_contrast(float_images, factors, TV_GRAY)
    out_s = adjust_saturation(float_images, factors, TV_GRAY)
    for i, f in enumerate(factors.tolist()):
        torch.testing.assert_close(out_b[i], TF.adjust_brightness(float_images[i], f), atol=1e-6, rtol=0)
        torch.testing.assert_close(out_c[i], TF.adjust_contrast(float_images[i], f), atol=1e-5, rtol=0)
        torch.testing.assert_close(out_s[i], TF.adjust_saturation(float_images[i], f), atol=1e-5, rtol=0)


def test_hue_matches_torchvision(float_images: torch.Tensor) -> None:
    factors = torch.tensor([-0.5, -0.1, 0.05, 0.37])
    out = adjust_hue(float_images, factors)
    for i, f in enumerate(factors.tolist()):
        torch.testing.assert_close(out[i], TF.adjust_hue(float_images[i], f), atol=1e-4, rtol=0)
    # Grey pixels and the zero shift are left alone.
    grey = torch.full((1, 3, 4, 4), 0.3)
    torch.testing.assert_close(adjust_hue(grey, 0.25), grey, atol=1e-6, rtol=0)
    torch.testing.assert_close(adjust_hue(float_images, 0.0), float_images, atol=1e-5, rtol=0)


def test_grayscale_matches_torchvision_and_pil(float_images: torch.Tensor) -> None:
    torch.testing.assert_close(rgb_to_grayscale(float_images, TV_GRAY).expand(-1, 3, -1, -1),
                               TF.rgb_to_grayscale(float_images, num_output_channels=3), atol=1e-6, rtol=0)
    # Default weights are PIL's convert("L") (the faithful path), which rounds to the nearest integer.
    img = _random_uint8(1, 16, 16, seed=22)
    pil = np.asarray(Image.fromarray(img[0].permute(1, 2, 0).numpy()).convert("L")).astype(np.float64)
    ours = rgb_to_grayscale(img.double() / 255.0, PIL_GRAY_WEIGHTS)[0, 0].numpy() * 255.0
    assert np.abs(ours - pil).max() <= 0.5 + 1e-3


def test_solarize_matches_torchvision_uint8() -> None:
    values = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16).expand(1, 3, 16, 16).contiguous()
    ref = TF.solarize(values, 128)
    ours = torch.round(solarize(values.float() / 255.0) * 255.0).to(torch.uint8)
    assert torch.equal(ours, ref)
    assert torch.equal(TF.solarize(values.float() / 255.0, 128 / 255.0), solarize(values.float() / 255.0))


@pytest.mark.parametrize("kernel_size, side", [(3, 12), (7, 16)])
def test_blur_matches_torchvision(kernel_size: int, side: int) -> None:
    x = torch.rand((4, 3, side, side), generator=torch.Generator().manual_seed(23))
    sigmas = torch.tensor([0.1, 0.7, 1.3, 2.0])
    out = gaussian_blur(x, gaussian_kernels(sigmas, kernel_size))
    for i, s in enumerate(sigmas.tolist()):
        ref = TF.gaussian_blur(x[i], [kernel_size, kernel_size], [s, s])
        torch.testing.assert_close(out[i], ref, atol=1e-5, rtol=0)
    delta = torch.zeros(4, kernel_size)
    delta[:, kernel_size // 2] = 1.0
    assert torch.equal(gaussian_blur(x, delta), x)


def test_resized_crop_matches_pil_bicubic() -> None:
    # Mid-range content, so PIL's clipping between its two passes never triggers; PIL also rounds to uint8
    # after each pass, hence the ~1 level tolerance.
    imgs = _random_uint8(12, 40, 40, seed=24, low=64, high=192)
    boxes = sample_crop_params(12, 40, 40, (0.08, 1.0), RATIO, generator=torch.Generator().manual_seed(25))
    boxes = [torch.cat([b, t]) for b, t in zip(boxes, (torch.tensor([0, 3]), torch.tensor([0, 1]),
                                                      torch.tensor([40, 37]), torch.tensor([40, 33])))]
    imgs = torch.cat([imgs, imgs[:2]])
    for size in (32, 40, 24):
        ours = resized_crop(imgs.float() / 255.0, *boxes, size) * 255.0
        diffs = []
        for i in range(imgs.shape[0]):
            top, left, h, w = (int(b[i]) for b in boxes)
            pil = TF.resized_crop(Image.fromarray(imgs[i].permute(1, 2, 0).numpy()), top, left, h, w,
                                  [size, size], T.InterpolationMode.BICUBIC)
            diffs.append((ours[i] - torch.from_numpy(np.array(pil)).permute(2, 0, 1).float()).abs())
        d = torch.stack(diffs)
        assert d.max() <= 1.5 and d.mean() <= 0.4, (size, d.max().item(), d.mean().item())
    # The whole image at its own size is the exact identity.
    x = imgs.float() / 255.0
    full = [torch.zeros(14, dtype=torch.long)] * 2 + [torch.full((14,), 40)] * 2
    assert torch.equal(resized_crop(x, *full, 40), x)


def test_jitter_applies_each_images_own_order(float_images: torch.Tensor) -> None:
    aug = BatchViewAugment(_cifar_cfg(size=12, min_scale=1.0, solarization_prob=0.0, gray_scale_prob=0.0,
                                      horizontal_flip_prob=0.0), (0.0, 0.0, 0.0), (1.0, 1.0, 1.0),
                           gray_weights=TV_GRAY)
    params = aug.sample_params(4, 12, 12, torch.Generator().manual_seed(26))
    params.update(
        jitter_apply=torch.tensor([True, True, True, False]),
        jitter_order=torch.tensor([[0, 1, 2, 3], [3, 2, 1, 0], [2, 0, 3, 1], [0, 1, 2, 3]]),
        brightness=torch.full((4,), 1.3), contrast=torch.full((4,), 0.7),
        saturation=torch.full((4,), 1.2), hue=torch.full((4,), 0.08),
    )
    out = aug.apply_params(float_images, params)
    ops = [lambda im: TF.adjust_brightness(im, 1.3), lambda im: TF.adjust_contrast(im, 0.7),
           lambda im: TF.adjust_saturation(im, 1.2), lambda im: TF.adjust_hue(im, 0.08)]
    for i in range(4):
        ref = float_images[i]
        if params["jitter_apply"][i]:
            for op in params["jitter_order"][i].tolist():
                ref = ops[op](ref)
        torch.testing.assert_close(out[i], ref, atol=1e-4, rtol=0)
    # The order matters for these factors, so the comparison above would notice a fixed order.
    same_image = aug.apply_params(float_images[:1].expand(2, -1, -1, -1),
                                  {**params, **{k: v[:2] for k, v in params.items()}})
    assert (same_image[0] - same_image[1]).abs().max() > 1e-2


# ------------------------------------------------------------------------------------------------------
# Whole module
# ------------------------------------------------------------------------------------------------------


def test_identity_pipeline_is_to_tensor_and_normalize() -> None:
    imgs = _random_uint8(6, 32, 32, seed=31)
    aug = BatchViewAugment(_identity_cfg(32), MEAN, STD, memory_format=torch.channels_last)
    out = aug(imgs, torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref = torch.stack([TF.normalize(TF.to_tensor(Image.fromarray(im.permute(1, 2, 0).numpy())), MEAN, STD)
                       for im in imgs])
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # A non-square input gets torchvision's fallback crop (8 x 11 at the left for 8 x 12), then the resize.
    wide = _random_uint8(2, 8, 12, seed=32)
    out = BatchViewAugment(_identity_cfg(8), MEAN, STD)(wide)
    assert out.shape == (2, 3, 8, 8)
    expected = resized_crop(wide.float() / 255.0, torch.zeros(2), torch.zeros(2), torch.full((2,), 8),
                            torch.full((2,), 11), 8)
    torch.testing.assert_close(out, (expected - torch.tensor(MEAN).view(1, 3, 1, 1))
                               / torch.tensor(STD).view(1, 3, 1, 1), atol=1e-6, rtol=0)


def test_full_pipeline_shape_range_and_reproducibility() -> None:
    imgs = _random_uint8(16, 32, 32, seed=33)
    aug = TwoViewBatchAugment([_cifar_cfg(solarization_prob=0.0), _cifar_cfg(gaussian_prob=0.5)], MEAN, STD)
    a = aug(imgs, torch.Generator().manual_seed(1))
    b = aug(imgs, torch.Generator().manual_seed(1))
    c = aug(imgs, torch.Generator().manual_seed(2))
    assert len(a) == 2 and aug.num_views == 2
    for x, y, z in zip(a, b, c):
        assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
        assert torch.equal(x, y) and not torch.equal(x, z)
        pixel = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
        assert pixel.min() >= -1e-5 and pixel.max() <= 1 + 1e-5
    assert not torch.equal(a[0], a[1])
    small = BatchViewAugment(_cifar_cfg(size=16), MEAN, STD)(imgs)
    assert small.shape == (16, 3, 16, 16)


def test_config_validation() -> None:
    cfg = _cifar_cfg()
    del cfg["min_scale"]
    with pytest.raises(ValueError, match="min_scale"):
        BatchViewAugment(cfg, MEAN, STD)
    with pytest.raises(ValueError):
        BatchViewAugment(_cifar_cfg(solarization_prob=1.5), MEAN, STD)
    with pytest.raises(ValueError):
        BatchViewAugment(_cifar_cfg(hue=0.7), MEAN, STD)


# ------------------------------------------------------------------------------------------------------
# Loaders
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def device_data() -> DeviceDataset:
    rng = np.random.default_rng(41)
    images = rng.integers(0, 256, (50, 8, 8, 3), dtype=np.uint8)
    return DeviceDataset(images, [i % 5 for i in range(50)], device="cpu")


def test_task_loader_batches(device_data: DeviceDataset) -> None:
    task = [i for i in range(50) if i % 5 in (1, 3)]
    aug = TwoViewBatchAugment([_identity_cfg(8), _identity_cfg(8, horizontal_flip_prob=1.0)], MEAN, STD)
    loader = DeviceTaskLoader(device_data, task, 6, aug, seed=5)
    assert len(loader) == 3
    epoch0 = list(loader)
    assert len(epoch0) == 3
    seen = []
    for idx, views, y in epoch0:
        assert isinstance(views, list) and len(views) == 2 and idx.shape == (6,) and y.shape == (6,)
        assert set(idx.tolist()) <= set(task) and torch.equal(y, idx % 5)
        ref = _normalise(device_data.images[idx])
        torch.testing.assert_close(views[0], ref, atol=1e-6, rtol=0)  # views belong to the indexed images
        torch.testing.assert_close(views[1], ref.flip(-1), atol=1e-6, rtol=0)
        seen += idx.tolist()
    assert len(set(seen)) == 18  # no repeats within an epoch; the last 2 images dropped
    epoch1 = [b[0] for b in loader]
    assert not all(torch.equal(a[0], b) for a, b in zip(epoch0, epoch1))  # reshuffled
    again = DeviceTaskLoader(device_data, task, 6, aug, seed=5)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(epoch0, again))  # seed + epoch reproducible
    rand_aug = TwoViewBatchAugment(_cifar_cfg(size=8), MEAN, STD)
    r1 = next(iter(DeviceTaskLoader(device_data, task, 6, rand_aug, seed=5)))
    r2 = next(iter(DeviceTaskLoader(device_data, task, 6, rand_aug, seed=5)))
    assert torch.equal(r1[1][0], r2[1][0]) and torch.equal(r1[1][1], r2[1][1])
    loose = DeviceTaskLoader(device_data, task, 6, aug, drop_last=False)
    assert len(loose) == 4 and sum(b[0].numel() for b in loose) == 20


def test_eval_and_val_loaders(device_data: DeviceDataset) -> None:
    ev = DeviceEvalLoader(device_data, 6, BatchViewAugment(_cifar_cfg(size=8), MEAN, STD), seed=1)
    assert len(ev) == 8
    idx, x, y = next(iter(ev))
    assert isinstance(x, torch.Tensor) and x.shape == (6, 3, 8, 8) and torch.equal(y, device_data.targets[idx])
    val = DeviceValLoader(device_data, 16, MEAN, STD)
    assert len(val) == 4
    batches = list(val)
    assert [b[0].shape[0] for b in batches] == [16, 16, 16, 2]
    torch.testing.assert_close(torch.cat([b[0] for b in batches]), _normalise(device_data.images),
                               atol=1e-6, rtol=0)
    assert torch.equal(torch.cat([b[1] for b in batches]), device_data.targets)
    with pytest.raises(TypeError):
        DeviceEvalLoader(device_data, 6, TwoViewBatchAugment(_cifar_cfg(size=8), MEAN, STD))


def test_loaders_inside_lightning_combined_loader(device_data: DeviceDataset) -> None:
    try:
        from lightning.pytorch.utilities import CombinedLoader
    except ImportError:
        from pytorch_lightning.utilities.combined_loader import CombinedLoader
    task = DeviceTaskLoader.from_arrays(device_data.images.permute(0, 2, 3, 1).numpy(), device_data.targets,
                                        list(range(0, 50, 2)), 8, TwoViewBatchAugment(_cifar_cfg(size=8), MEAN, STD))
    online = DeviceEvalLoader(device_data, 8, BatchViewAugment(_cifar_cfg(size=8), MEAN, STD))
    combined = CombinedLoader({"task0": task, "online_eval": online}, mode="min_size")
    iter(combined)
    assert len(combined) == 3 == min(len(task), len(online))
    steps = 0
    for batch, batch_idx, _ in combined:
        idx, (x1, x2), y = batch["task0"]
        assert x1.shape == x2.shape == (8, 3, 8, 8) and (idx % 2 == 0).all() and y.shape == (8,)
        oidx, ox, oy = batch["online_eval"]
        assert ox.shape == (8, 3, 8, 8) and torch.equal(oy, device_data.targets[oidx])
        assert batch_idx == steps
        steps += 1
    assert steps == 3


def test_views_per_second() -> None:
    imgs = _random_uint8(20, 32, 32, seed=51)
    vps = views_per_second(TwoViewBatchAugment(_cifar_cfg(), MEAN, STD), imgs, batch_size=8, steps=2)
    assert math.isfinite(vps) and vps > 0
