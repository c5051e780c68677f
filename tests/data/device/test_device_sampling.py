"""Random parameters of the device path against the faithful path's torchvision distributions.

Distribution checks compare binned histograms with a two-sample chi-square statistic against a bound at
z = 4 (false-alarm rate ~3e-5 per check); one test shows that the bound rejects plausible wrong samplers.
Rate checks use 4-sigma binomial bounds.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from cassle.data.device.sampling import sample_blur_params, sample_crop_boxes, sample_jitter_params
from tests.data.device.helpers import Z, binomial_ok, chi2_bound

RATIO = (3.0 / 4.0, 4.0 / 3.0)


def _chi2_two_sample(a: np.ndarray, b: np.ndarray, edges: np.ndarray) -> tuple[float, float]:
    """Two-sample chi-square statistic of equal-size samples over ``edges`` and its z=4 bound."""
    assert len(a) == len(b)
    ca, _ = np.histogram(a, edges)
    cb, _ = np.histogram(b, edges)
    assert ca.sum() == len(a) and cb.sum() == len(b), "samples fall outside the histogram range"
    keep = (ca + cb) > 0
    stat = float((((ca - cb) ** 2)[keep] / (ca + cb)[keep]).sum())
    return stat, chi2_bound(int(keep.sum()) - 1)


# ------------------------------------------------------------------------------------------------------
# Crop boxes
# ------------------------------------------------------------------------------------------------------


def _torchvision_crops(n: int, height: int, width: int, scale, seed: int) -> np.ndarray:
    img = torch.empty(3, height, width)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        return np.array([T.RandomResizedCrop.get_params(img, list(scale), list(RATIO)) for _ in range(n)])


def _ours(n: int, height: int, width: int, scale, seed: int) -> np.ndarray:
    g = torch.Generator().manual_seed(seed)
    top, left, h, w = sample_crop_boxes(n, height, width, scale, RATIO, generator=g)
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
    top, left, h, w = (t.double() for t in sample_crop_boxes(n, height, width, (min_scale, 1.0), RATIO,
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
        top, left, h, w = sample_crop_boxes(64, height, width, (1.5, 2.0), RATIO,
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
    u = np.sort((x.double().numpy() - low) / (high - low))
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
    assert binomial_ok(int(p["apply"].sum()), n, 0.8)
    order = p["order"]
    assert (order.sort(1).values == torch.arange(4)).all()  # every row is a permutation
    codes = (order * torch.tensor([64, 16, 4, 1])).sum(1).numpy()
    counts = np.unique(codes, return_counts=True)[1]
    assert len(counts) == 24
    chi2 = float(((counts - n / 24) ** 2 / (n / 24)).sum())
    assert chi2 < chi2_bound(23)
    # Brightness range is clamped at 0; a zero strength disables an operation (identity factor).
    q = sample_jitter_params(1000, 1.5, 0.0, 0.0, 0.0, generator=torch.Generator().manual_seed(8))
    assert q["brightness"].min() >= 0 and q["brightness"].max() <= 2.5 and q["brightness"].min() < 0.1
    assert (q["contrast"] == 1).all() and (q["saturation"] == 1).all() and (q["hue"] == 0).all()


def test_blur_params_distribution() -> None:
    n = 20000
    apply, sigma = sample_blur_params(n, 0.5, (0.1, 2.0), generator=torch.Generator().manual_seed(9))
    assert sigma.min() >= 0.1 and sigma.max() <= 2.0
    assert _ks_uniform(sigma, 0.1, 2.0) < 1.95 / math.sqrt(n)
    assert binomial_ok(int(apply.sum()), n, 0.5)


# ------------------------------------------------------------------------------------------------------
# One crop sampler for equal sizes and for decoded images of different sizes
# ------------------------------------------------------------------------------------------------------


def test_per_image_sizes_equal_to_one_size_give_the_same_boxes() -> None:
    def boxes(heights, widths):
        return sample_crop_boxes(2, heights, widths, (0.08, 1.0), generator=torch.Generator().manual_seed(3))

    one = sample_crop_boxes(64, 30, 50, (0.08, 1.0), generator=torch.Generator().manual_seed(3))
    per_image = sample_crop_boxes(64, torch.full((64,), 30), torch.full((64,), 50), (0.08, 1.0),
                                  generator=torch.Generator().manual_seed(3))
    assert all(torch.equal(x, y) for x, y in zip(one, per_image))
    # the draws do not depend on the sizes: in a mixed batch each image gets the box of its slot
    mixed = boxes(torch.tensor([30, 40]), torch.tensor([50, 36]))
    assert [int(b[0]) for b in mixed] == [int(b[0]) for b in boxes(30, 50)]
    assert [int(b[1]) for b in mixed] == [int(b[1]) for b in boxes(40, 36)]


def test_crop_boxes_per_image_sizes() -> None:
    rng = np.random.RandomState(1)
    heights = torch.tensor(rng.randint(8, 200, size=500))
    widths = torch.tensor(rng.randint(8, 200, size=500))
    in_range = ((widths / heights) >= 0.75) & ((widths / heights) <= 4 / 3)  # no clamped fallback crops
    for min_scale in (0.08, 0.5):
        top, left, h, w = sample_crop_boxes(500, heights, widths, (min_scale, 1.0),
                                            generator=torch.Generator().manual_seed(0))
        assert (top >= 0).all() and (left >= 0).all() and (h >= 1).all() and (w >= 1).all()
        assert (top + h <= heights).all() and (left + w <= widths).all()
        # h and w are the rounded sides of a box of area U(min_scale, 1) * H * W and ratio in [3/4, 4/3]
        hf, wf, area = h.double(), w.double(), (heights * widths).double()
        ok_area = ((hf + 0.5) * (wf + 0.5) >= min_scale * area) & ((hf - 0.5) * (wf - 0.5) <= area)
        ok_ratio = ((wf + 0.5) / (hf - 0.5).clamp(min=1e-9) >= 0.75) & ((wf - 0.5) / (hf + 0.5) <= 4 / 3)
        assert (ok_area & ok_ratio)[in_range].all()
    # an extreme aspect ratio never fits: the central crop, clamped to ratio 4/3
    top, left, h, w = sample_crop_boxes(1, torch.tensor([10]), torch.tensor([200]), (0.9, 1.0),
                                        generator=torch.Generator().manual_seed(0))
    assert (h.item(), w.item(), top.item(), left.item()) == (10, 13, 0, (200 - 13) // 2)
