"""The device path's deterministic operations against torchvision's functional ops and PIL."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchvision.transforms.functional as TF
from PIL import Image
from torchvision import transforms as T

from cassle.data.device.ops import (
    PIL_GRAY_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    crop_resize,
    gaussian_blur,
    gaussian_kernels,
    resized_crop,
    rgb_to_grayscale,
    solarize,
)
from cassle.data.device.sampling import sample_crop_boxes
from tests.data.device.helpers import random_uint8, smooth_image

TV_GRAY = (0.2989, 0.587, 0.114)  # torchvision's tensor luma weights
RATIO = (3.0 / 4.0, 4.0 / 3.0)
SIZE = 16


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
    img = random_uint8(1, 16, 16, seed=22)
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
    imgs = random_uint8(12, 40, 40, seed=24, low=64, high=192)
    boxes = sample_crop_boxes(12, 40, 40, (0.08, 1.0), RATIO, generator=torch.Generator().manual_seed(25))
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


def test_crop_resize_matches_pil_bicubic():
    rng = np.random.RandomState(2)
    pil = smooth_image(rng, 40, 50)
    img = torch.from_numpy(np.array(pil)).permute(2, 0, 1).contiguous()
    boxes = [(5, 7, 30, 36), (0, 0, 40, 50), (10, 12, 9, 11), (3, 4, SIZE, SIZE)]
    t, left, h, w = (torch.tensor(v) for v in zip(*boxes))
    out = crop_resize([img] * 4, t, left, h, w, SIZE)
    assert out.shape == (4, 3, SIZE, SIZE) and out.dtype == torch.float32
    for k, (tt, ll, hh, ww) in enumerate(boxes):
        ref = np.asarray(pil.resize((SIZE, SIZE), Image.BICUBIC, box=(ll, tt, ll + ww, tt + hh))) / 255.0
        diff = np.abs(out[k].permute(1, 2, 0).numpy() - ref)
        # PIL rounds to uint8 and clips between its two passes: close on average, a few levels at worst
        assert diff.mean() < 1.0 / 255 and diff.max() < 10.0 / 255
