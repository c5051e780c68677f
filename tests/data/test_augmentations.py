"""Augmentation pipelines: order, shapes, per-view parameters, normalisation, evaluation transforms."""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import transforms as T

from cassle.data.augmentations import (
    MultiViewTransform,
    blur_kernel_size,
    build_linear_train_transform,
    build_val_transform,
    build_view_transform,
    expand_view_configs,
)
from cassle.data.info import DATASET_INFO
from cassle.errors import CassleError

CIFAR = DATASET_INFO["cifar100"]
IMNET = DATASET_INFO["imagenet100"]


def random_image(w=40, h=36, seed=0):
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 256, size=(h, w, 3), dtype=np.uint8))


def cifar_view(**over):
    cfg = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, gaussian_prob=0.0,
               solarization_prob=0.0, min_scale=0.08, size=32)
    cfg.update(over)
    return build_view_transform(cfg, CIFAR["mean"], CIFAR["std"])


def test_pipeline_order_and_parameters():
    t = build_view_transform(dict(brightness=0.4, contrast=0.3, saturation=0.2, hue=0.1, gaussian_prob=0.7,
                                  solarization_prob=0.2, min_scale=0.2, size=224),
                             IMNET["mean"], IMNET["std"])
    steps = t.transforms
    assert [type(s) for s in steps] == [T.RandomResizedCrop, T.RandomApply, T.RandomGrayscale, T.RandomApply,
                                        T.RandomSolarize, T.RandomHorizontalFlip, T.ToTensor, T.Normalize]
    crop = steps[0]
    assert crop.size == (224, 224) and crop.scale == (0.2, 1.0)
    assert crop.interpolation == T.InterpolationMode.BICUBIC
    jitter = steps[1].transforms[0]
    assert isinstance(jitter, T.ColorJitter) and steps[1].p == 0.8
    assert jitter.brightness == (0.6, 1.4) and jitter.contrast == (0.7, 1.3) and jitter.hue == (-0.1, 0.1)
    assert steps[2].p == 0.2
    blur = steps[3].transforms[0]
    assert isinstance(blur, T.GaussianBlur) and steps[3].p == 0.7
    assert blur.kernel_size == (23, 23) and blur.sigma == (0.1, 2.0)
    assert steps[4].threshold == 128 and steps[4].p == 0.2
    assert steps[5].p == 0.5
    assert tuple(steps[7].mean) == (0.485, 0.456, 0.406) and tuple(steps[7].std) == (0.228, 0.224, 0.225)


def test_blur_kernel_size():
    assert blur_kernel_size(224) == 23
    assert blur_kernel_size(32) == 3
    assert blur_kernel_size(16) == 3
    assert blur_kernel_size(96) == 9
    assert all(blur_kernel_size(s) % 2 == 1 for s in range(1, 300))


def test_view_output_shape_and_dtype():
    torch.manual_seed(0)
    mv = MultiViewTransform([cifar_view(gaussian_prob=1.0), cifar_view(solarization_prob=0.2, min_scale=0.5)])
    views = mv(random_image())
    assert isinstance(views, list) and len(views) == 2
    for v in views:
        assert v.shape == (3, 32, 32) and v.dtype == torch.float32
    assert not torch.equal(views[0], views[1])
    other = MultiViewTransform([cifar_view(size=32), cifar_view(size=24)])(random_image())
    assert other[0].shape == (3, 32, 32) and other[1].shape == (3, 24, 24)


def test_views_use_their_own_solarization():
    """Constant grey 200 image, every other step neutral: solarisation maps 200 -> 255 - 200 = 55."""
    neutral = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, gaussian_prob=0.0, min_scale=1.0)
    mv = MultiViewTransform([cifar_view(solarization_prob=1.0, **neutral),
                             cifar_view(solarization_prob=0.0, **neutral)])
    img = Image.new("RGB", (40, 40), (200, 200, 200))
    mean = torch.tensor(CIFAR["mean"]).view(3, 1, 1)
    std = torch.tensor(CIFAR["std"]).view(3, 1, 1)
    for _ in range(5):
        v1, v2 = mv(img)
        assert torch.allclose(v1, (torch.full((3, 32, 32), 55 / 255) - mean) / std, atol=1e-5)
        assert torch.allclose(v2, (torch.full((3, 32, 32), 200 / 255) - mean) / std, atol=1e-5)


def test_solarization_below_threshold_untouched():
    neutral = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, gaussian_prob=0.0, min_scale=1.0)
    t = cifar_view(solarization_prob=1.0, **neutral)
    out = t(Image.new("RGB", (32, 32), (100, 100, 100)))
    mean = torch.tensor(CIFAR["mean"]).view(3, 1, 1)
    std = torch.tensor(CIFAR["std"]).view(3, 1, 1)
    assert torch.allclose(out * std + mean, torch.full((3, 32, 32), 100 / 255), atol=1e-5)


def test_flip_probability_zero_and_one():
    neutral = dict(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0, gaussian_prob=0.0, min_scale=1.0)
    arr = np.zeros((32, 32, 3), dtype=np.uint8)
    arr[:, :16] = 255  # left half white
    img = Image.fromarray(arr)
    # min_scale 1 on a square image: every accepted crop (and the fallback) is the whole image.
    keep = cifar_view(horizontal_flip_prob=0.0, **neutral)(img)
    flip = cifar_view(horizontal_flip_prob=1.0, **neutral)(img)
    assert keep[0, 16, 2] > keep[0, 16, 29] and flip[0, 16, 2] < flip[0, 16, 29]


def test_normalisation_constants():
    t = build_val_transform("cifar100")
    out = t(Image.new("RGB", (32, 32), (255, 0, 128)))
    expect = [(1 - 0.4914) / 0.247, (0 - 0.4822) / 0.243, (128 / 255 - 0.4465) / 0.261]
    assert out.shape == (3, 32, 32)
    assert torch.allclose(out[:, 5, 5], torch.tensor(expect), atol=1e-5)


def test_val_transforms():
    small = build_val_transform("digits")
    assert [type(s) for s in small.transforms] == [T.ToTensor, T.Normalize]
    assert small(Image.new("RGB", (16, 16))).shape == (3, 16, 16)
    big = build_val_transform("imagenet100")
    assert [type(s) for s in big.transforms] == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert big.transforms[0].size == 256 and big.transforms[0].interpolation == T.InterpolationMode.BILINEAR
    assert big(random_image(300, 260)).shape == (3, 224, 224)
    dn = build_val_transform("domainnet", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert tuple(dn.transforms[-1].mean) == (0.5, 0.5, 0.5)
    assert tuple(big.transforms[-1].std) == (0.228, 0.224, 0.225)


def test_linear_train_transforms():
    t = build_linear_train_transform("cifar100", CIFAR["mean"], CIFAR["std"], 32)
    assert [type(s) for s in t.transforms] == [T.RandomResizedCrop, T.RandomHorizontalFlip, T.ToTensor,
                                               T.Normalize]
    # the official CIFAR probe crops with torchvision's default interpolation, bilinear
    assert t.transforms[0].scale == (0.08, 1.0) and t.transforms[0].interpolation == T.InterpolationMode.BILINEAR
    assert t(random_image()).shape == (3, 32, 32)
    d = build_linear_train_transform("digits")
    assert T.RandomHorizontalFlip not in [type(s) for s in d.transforms]
    assert d(Image.new("RGB", (16, 16))).shape == (3, 16, 16)
    assert build_linear_train_transform("imagenet100").transforms[0].size == (224, 224)


@pytest.mark.parametrize("dataset, interpolation", [
    ("cifar100", T.InterpolationMode.BILINEAR),     # torchvision path of the official probe
    ("digits", T.InterpolationMode.BILINEAR),
    ("imagenet100", T.InterpolationMode.BICUBIC),   # the official probe scripts pass --dali: DALI crops bicubic
    ("domainnet", T.InterpolationMode.BICUBIC),
])
def test_linear_train_crop_interpolates_as_the_official_loader(dataset, interpolation):
    assert build_linear_train_transform(dataset).transforms[0].interpolation == interpolation


def test_expand_view_configs():
    views = expand_view_configs({"solarization_prob": [0.0, 0.2], "gaussian_prob": [1.0, 0.1],
                                 "brightness": 0.4, "size": [32]})
    assert views == [
        {"solarization_prob": 0.0, "gaussian_prob": 1.0, "brightness": 0.4, "size": 32},
        {"solarization_prob": 0.2, "gaussian_prob": 0.1, "brightness": 0.4, "size": 32},
    ]
    with pytest.raises(CassleError) as exc:
        expand_view_configs({"min_scale": [0.1, 0.2, 0.3]})
    assert "--min_scale" in str(exc.value)
    with pytest.raises(ValueError):
        build_view_transform({"brightnes": 0.4}, CIFAR["mean"], CIFAR["std"])


def test_pipelines_of_the_new_datasets(tmp_path):
    from cassle.data.info import STL10_MEAN, resolve_dataset

    (tmp_path / "a").mkdir()
    small = resolve_dataset("custom", train_dir=str(tmp_path), small_stem=True, size=28, mean=(0.5, 0.5, 0.5))
    val = build_val_transform(small)
    assert [type(s) for s in val.transforms] == [T.Resize, T.CenterCrop, T.ToTensor, T.Normalize]
    assert val(random_image(37, 23)).shape == (3, 28, 28) and tuple(val.transforms[-1].mean) == (0.5, 0.5, 0.5)
    probe = build_linear_train_transform(small)
    assert probe.transforms[0].size == (28, 28) and probe(random_image(37, 23)).shape == (3, 28, 28)
    big = build_val_transform(resolve_dataset("custom", train_dir=str(tmp_path), size=64))
    assert big(random_image(37, 23)).shape == (3, 224, 224)  # as imagenet100, whatever --size
    stl = build_val_transform("stl10")
    assert [type(s) for s in stl.transforms] == [T.ToTensor, T.Normalize]
    assert tuple(stl.transforms[-1].mean) == STL10_MEAN
    assert build_linear_train_transform("stl10").transforms[0].size == (96, 96)
    assert build_linear_train_transform("cifar10").transforms[0].size == (32, 32)
