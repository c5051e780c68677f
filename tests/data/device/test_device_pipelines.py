"""The view pipelines: rates of the random operations, per-image jitter order, the identity pipeline, and
the same pipeline on decoded images of different sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image

from cassle.data.device import pipelines
from cassle.data.device.decode import EncodedFiles, decode_images
from cassle.data.device.ops import resized_crop
from cassle.data.device.pipelines import BatchViewAugment, TwoViewBatchAugment
from tests.data.device.helpers import (
    FILES,
    MEAN,
    STD,
    binomial_ok,
    cifar_cfg,
    identity_cfg,
    normalise,
    random_uint8,
)

TV_GRAY = (0.2989, 0.587, 0.114)  # torchvision's tensor luma weights


# ------------------------------------------------------------------------------------------------------
# Rates of the random operations, measured on the outputs
# ------------------------------------------------------------------------------------------------------

N_RATE = 3000


@pytest.fixture(scope="module")
def tiny_images() -> torch.Tensor:
    return random_uint8(N_RATE, 8, 8, seed=11)


def _changed_fraction(cfg: dict, images: torch.Tensor, seed: int) -> tuple[int, torch.Tensor]:
    out = BatchViewAugment(cfg, MEAN, STD)(images, torch.Generator().manual_seed(seed))
    changed = (out - normalise(images)).abs().amax(dim=(1, 2, 3)) > 1e-5
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
    cfg = identity_cfg(8, **overrides)
    cfg = {k: v for k, v in cfg.items() if v is not None}  # None: use the module's default
    count, _ = _changed_fraction(cfg, tiny_images, seed=12)
    assert binomial_ok(count, N_RATE, p), f"{count / N_RATE:.3f} vs {p}"


def test_views_are_independent_and_per_view_configs(tiny_images: torch.Tensor) -> None:
    aug = TwoViewBatchAugment([identity_cfg(8, horizontal_flip_prob=0.5),
                               identity_cfg(8, horizontal_flip_prob=0.5, solarization_prob=1.0)], MEAN, STD)
    v1, v2 = aug(tiny_images, torch.Generator().manual_seed(13))
    ref = normalise(tiny_images)
    flipped1 = (v1 - ref.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert ((v1 - ref).abs().amax(dim=(1, 2, 3)) < 1e-5).logical_xor(flipped1).all()  # view 1: flip only
    sol = normalise(torch.where(tiny_images >= 128, 255 - tiny_images, tiny_images))
    flipped2 = (v2 - sol.flip(-1)).abs().amax(dim=(1, 2, 3)) < 1e-5
    assert ((v2 - sol).abs().amax(dim=(1, 2, 3)) < 1e-5).logical_xor(flipped2).all()  # view 2: always solarised
    both = int((flipped1 & flipped2).sum())
    assert binomial_ok(both, N_RATE, 0.25)  # independent draws per view


@pytest.fixture(scope="module")
def float_images() -> torch.Tensor:
    g = torch.Generator().manual_seed(21)
    return torch.rand((4, 3, 12, 12), generator=g)


def test_jitter_applies_each_images_own_order(float_images: torch.Tensor) -> None:
    aug = BatchViewAugment(cifar_cfg(size=12, min_scale=1.0, solarization_prob=0.0, gray_scale_prob=0.0,
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
    imgs = random_uint8(6, 32, 32, seed=31)
    aug = BatchViewAugment(identity_cfg(32), MEAN, STD, memory_format=torch.channels_last)
    out = aug(imgs, torch.Generator().manual_seed(0))
    assert out.shape == (6, 3, 32, 32) and out.dtype == torch.float32
    assert out.is_contiguous(memory_format=torch.channels_last)
    ref = torch.stack([TF.normalize(TF.to_tensor(Image.fromarray(im.permute(1, 2, 0).numpy())), MEAN, STD)
                       for im in imgs])
    torch.testing.assert_close(out, ref, atol=1e-6, rtol=0)
    # A non-square input gets torchvision's fallback crop (8 x 11 at the left for 8 x 12), then the resize.
    wide = random_uint8(2, 8, 12, seed=32)
    out = BatchViewAugment(identity_cfg(8), MEAN, STD)(wide)
    assert out.shape == (2, 3, 8, 8)
    expected = resized_crop(wide.float() / 255.0, torch.zeros(2), torch.zeros(2), torch.full((2,), 8),
                            torch.full((2,), 11), 8)
    torch.testing.assert_close(out, (expected - torch.tensor(MEAN).view(1, 3, 1, 1))
                               / torch.tensor(STD).view(1, 3, 1, 1), atol=1e-6, rtol=0)


def test_full_pipeline_shape_range_and_reproducibility() -> None:
    imgs = random_uint8(16, 32, 32, seed=33)
    aug = TwoViewBatchAugment([cifar_cfg(solarization_prob=0.0), cifar_cfg(gaussian_prob=0.5)], MEAN, STD)
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
    small = BatchViewAugment(cifar_cfg(size=16), MEAN, STD)(imgs)
    assert small.shape == (16, 3, 16, 16)


def test_config_validation() -> None:
    cfg = cifar_cfg()
    del cfg["min_scale"]
    with pytest.raises(ValueError, match="min_scale"):
        BatchViewAugment(cfg, MEAN, STD)
    with pytest.raises(ValueError):
        BatchViewAugment(cifar_cfg(solarization_prob=1.5), MEAN, STD)
    with pytest.raises(ValueError):
        BatchViewAugment(cifar_cfg(hue=0.7), MEAN, STD)


# ------------------------------------------------------------------------------------------------------
# Decoded images of different sizes
# ------------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def decoded(file_dataset) -> list[torch.Tensor]:
    files = EncodedFiles.from_dataset(file_dataset)
    return decode_images([files[i][1] for i in range(len(files))], "cpu")


def test_equal_sizes_as_a_batch_or_as_decoded_images_agree() -> None:
    # The same draws, then resampling matrices (batch) or one F.interpolate per image: both PIL's bicubic.
    imgs = random_uint8(6, 20, 28, seed=41)
    aug = TwoViewBatchAugment([cifar_cfg(size=16, gaussian_prob=0.5), cifar_cfg(size=12)], MEAN, STD)
    batch = aug(imgs, torch.Generator().manual_seed(4))
    listed = aug(list(imgs), torch.Generator().manual_seed(4))
    for a, b in zip(batch, listed):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=0)


def test_identity_pipeline_on_decoded_images_is_normalisation(decoded, file_dataset) -> None:
    """No jitter/blur/flip and a full, square crop: the output is the decoded image, normalised."""
    k = [name for _, name, *_ in FILES].index("h.JPEG")  # 30 x 30
    view = BatchViewAugment(identity_cfg(30, ratio=(1.0, 1.0)), MEAN, STD)
    x = view([decoded[k]], torch.Generator().manual_seed(0))
    ref = torch.from_numpy(np.asarray(Image.open(file_dataset.samples[k][0]).convert("RGB")).copy())
    torch.testing.assert_close(x, normalise(ref.permute(2, 0, 1)[None]), atol=1e-4, rtol=0)


def test_decoded_images_of_different_sizes(decoded, monkeypatch) -> None:
    drawn = []
    real = pipelines.crop_resize

    def spy(images, top, left, h, w, size):
        drawn.append(([tuple(i.shape[1:]) for i in images], h.clone(), w.clone()))
        return real(images, top, left, h, w, size)

    monkeypatch.setattr(pipelines, "crop_resize", spy)
    aug = TwoViewBatchAugment([cifar_cfg(size=16, min_scale=0.3), cifar_cfg(size=12, gaussian_prob=1.0)],
                              MEAN, STD)
    views = aug(decoded, torch.Generator().manual_seed(1))
    again = aug(decoded, torch.Generator().manual_seed(1))
    assert [v.shape for v in views] == [(9, 3, 16, 16), (9, 3, 12, 12)]
    assert all(torch.equal(a, b) for a, b in zip(views, again))
    for x in views:
        x01 = x * torch.tensor(STD).view(1, 3, 1, 1) + torch.tensor(MEAN).view(1, 3, 1, 1)
        assert torch.isfinite(x).all() and x01.min() >= -1e-5 and x01.max() <= 1 + 1e-5
    assert len(drawn) == 4  # two views, two calls each
    shapes, h, w = drawn[0]
    assert shapes == [(height, width) for *_, height, width, _ in FILES]
    for (height, width), hh, ww in zip(shapes, h.tolist(), w.tolist()):
        assert hh <= height and ww <= width
        if 0.75 <= width / height <= 4 / 3:  # otherwise a crop may be torchvision's clamped fallback
            assert (hh + 0.5) * (ww + 0.5) >= 0.3 * height * width  # area fraction >= min_scale,
            assert hh * ww <= height * width  # up to the rounding of the sides
