"""Per-crop settings (torch-free), multi-crop pipelines and loaders on both data paths."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torchvision import transforms as T

from cassle.data.augmentations import build_view_transform
from cassle.data.datasets import ArrayImageDataset
from cassle.data.device import TwoViewBatchAugment
from cassle.data.info import DATASET_INFO
from cassle.data.loaders import build_train_loaders
from cassle.data.views import pretrain_view_configs
from cassle.errors import CassleError
from tests.helpers import ROOT

CIFAR = DATASET_INFO["cifar100"]
COLOUR = dict(brightness=[0.4], contrast=[0.4], saturation=[0.2], hue=[0.1], gaussian_prob=[0.5],
              solarization_prob=[0.0])


def configs(dataset="imagenet100", **over):
    return pretrain_view_configs(dataset, **{**COLOUR, **over})


def test_is_torch_free():
    code = "import sys, cassle.data.views; print(sorted(m for m in ('torch', 'numpy') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.strip() == "[]", out.stderr


def test_two_views_as_before():
    """No small crops: the two official views, with the keys and values the scripts always had."""
    got = configs("cifar100", gaussian_prob=[0.0], solarization_prob=[0.0, 0.2], size=[224])
    common = dict(brightness=0.4, contrast=0.4, saturation=0.2, hue=0.1, gaussian_prob=0.0)
    assert got == [
        {**common, "solarization_prob": 0.0, "min_scale": 0.08, "size": 32, "horizontal_flip_prob": 0.5},
        {**common, "solarization_prob": 0.2, "min_scale": 0.08, "size": 32, "horizontal_flip_prob": 0.5},
    ]
    assert [list(c) for c in got] == [list(got[0])] * 2 == [[
        "brightness", "contrast", "saturation", "hue", "gaussian_prob", "solarization_prob", "min_scale",
        "size", "horizontal_flip_prob"]] * 2
    digits = configs("digits")
    assert [(c["size"], c["min_scale"], c["horizontal_flip_prob"]) for c in digits] == [(16, 0.4, 0.0)] * 2
    imagenet = configs(size=[224, 160], min_scale=[0.2])
    assert [(c["size"], c["min_scale"]) for c in imagenet] == [(224, 0.2), (160, 0.2)]


def test_multicrop_large_then_small():
    got = configs(num_crops=2, num_small_crops=3, multicrop=True, gaussian_prob=[1.0, 0.1, 0.5, 0.5, 0.3],
                  solarization_prob=[0.0, 0.2, 0.0, 0.0, 0.0], min_scale=[0.14])
    assert len(got) == 5
    assert [c["size"] for c in got] == [224, 224, 96, 96, 96]
    assert [c["gaussian_prob"] for c in got] == [1.0, 0.1, 0.5, 0.5, 0.3]
    assert [c["solarization_prob"] for c in got] == [0.0, 0.2, 0.0, 0.0, 0.0]
    assert [c["min_scale"] for c in got] == [0.14, 0.14, 0.05, 0.05, 0.05]
    assert ["max_scale" in c for c in got] == [False, False, True, True, True]
    assert {c["max_scale"] for c in got[2:]} == {0.14}
    per_small = configs(num_crops=3, num_small_crops=2, multicrop=True, small_size=[96, 64],
                        small_min_scale=[0.05, 0.1], small_max_scale=[0.2, 0.3])
    assert [(c["size"], c["min_scale"], c.get("max_scale")) for c in per_small] == [
        (224, 0.08, None), (224, 0.08, None), (224, 0.08, None), (96, 0.05, 0.2), (64, 0.1, 0.3)]


@pytest.mark.parametrize("dataset, small", [("cifar100", 24), ("digits", 12), ("imagenet100", 96),
                                            ("domainnet", 96)])
def test_default_small_size(dataset, small):
    got = configs(dataset, num_small_crops=2, multicrop=True)
    assert [c["size"] for c in got] == [DATASET_INFO[dataset]["size"]] * 2 + [small] * 2
    assert configs("cifar100", num_small_crops=1, multicrop=True, small_size=[20])[-1]["size"] == 20


@pytest.mark.parametrize(
    "over, fragment",
    [
        (dict(num_crops=1), "--num_crops"),
        (dict(num_small_crops=2), "--multicrop"),
        (dict(multicrop=True), "--num_small_crops"),
        (dict(num_small_crops=2, multicrop=True, gaussian_prob=[1.0, 0.1]),
         "--gaussian_prob takes 1 value or 4"),
        (dict(num_small_crops=2, multicrop=True, min_scale=[0.1, 0.2, 0.3]), "--min_scale"),
        (dict(num_small_crops=2, multicrop=True, small_size=[96, 64, 32]), "--small_size"),
        (dict(num_small_crops=1, multicrop=True, small_min_scale=[0.3], small_max_scale=[0.2]),
         "--small_max_scale"),
        (dict(num_small_crops=1, multicrop=True, small_max_scale=[1.5]), "--small_max_scale"),
        (dict(min_scale=[0.0]), "--min_scale"),
        (dict(solarization_prob=[0.0, 0.2, 0.1]), "--solarization_prob"),
    ],
)
def test_bad_values_name_the_flag(over, fragment):
    with pytest.raises(CassleError) as exc:
        configs(**over)
    assert fragment in str(exc.value)


# ------------------------------------------------------------------------------- pipelines


def test_small_crop_pipeline_uses_its_area_range():
    small = configs(num_small_crops=1, multicrop=True)[-1]
    crop = build_view_transform(small, CIFAR["mean"], CIFAR["std"]).transforms[0]
    assert isinstance(crop, T.RandomResizedCrop)
    assert crop.size == (96, 96) and crop.scale == (0.05, 0.14)
    large = build_view_transform(configs()[0], CIFAR["mean"], CIFAR["std"]).transforms[0]
    assert large.scale == (0.08, 1.0)


def test_small_crops_cover_a_small_area():
    """The boxes a small crop draws cover 5-14% of the image (up to pixel rounding)."""
    small = configs(num_small_crops=1, multicrop=True)[-1]
    crop = build_view_transform(small, CIFAR["mean"], CIFAR["std"]).transforms[0]
    torch.manual_seed(0)
    areas = []
    for _ in range(200):
        i, j, h, w = crop.get_params(torch.zeros(3, 100, 100), crop.scale, crop.ratio)
        areas.append(h * w / 100 / 100)
    assert max(areas) <= 0.14 + 0.01 and min(areas) >= 0.05 - 0.01


def fake_images(n=12, size=32, seed=0):
    rng = np.random.RandomState(seed)
    return ArrayImageDataset(rng.randint(0, 256, size=(n, size, size, 3), dtype=np.uint8),
                             [i % 3 for i in range(n)])


def test_faithful_loader_returns_every_crop_large_first():
    cfgs = configs("cifar100", num_crops=2, num_small_crops=3, multicrop=True)
    loaders = build_train_loaders(fake_images(), list(range(12)), cfgs, CIFAR["mean"], CIFAR["std"], batch_size=4,
                                  num_workers=0, seed=0, task=0, online_eval_view=cfgs[1])
    indexes, crops, targets = next(iter(loaders["task0"]))
    assert len(crops) == 5
    assert [tuple(c.shape) for c in crops] == [(4, 3, 32, 32)] * 2 + [(4, 3, 24, 24)] * 3
    assert indexes.shape == (4,) and targets.tolist() == [i % 3 for i in indexes.tolist()]
    _, x, _ = next(iter(loaders["online_eval"]))
    assert tuple(x.shape) == (4, 3, 32, 32)


def test_fast_data_augments_every_crop():
    """--fast_data: the on-device pipelines read the same settings, small-crop area range included."""
    cfgs = configs("cifar100", num_crops=2, num_small_crops=2, multicrop=True)
    augment = TwoViewBatchAugment(cfgs, CIFAR["mean"], CIFAR["std"])
    assert [v.scale for v in augment.views] == [(0.08, 1.0)] * 2 + [(0.05, 0.14)] * 2
    images = torch.randint(0, 256, (5, 3, 32, 32), dtype=torch.uint8)
    out = augment(images, torch.Generator().manual_seed(0))
    assert [tuple(v.shape) for v in out] == [(5, 3, 32, 32)] * 2 + [(5, 3, 24, 24)] * 2

