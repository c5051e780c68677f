"""The ResNet trunks: the small-image stem and its initialisation."""

import math

import pytest
import torch
import torch.nn as nn

from cassle.backbones import build_backbone

# PyTorch's default Conv2d initialisation is kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), 1/sqrt(fan_in)),
# fan_in = 3 * 3 * 3 = 27, so std = 1/sqrt(3 * 27) = 0.111. torchvision's Kaiming fan-out normal would give
# std = sqrt(2 / (64 * 9)) = 0.059 and values beyond the uniform bound.
DEFAULT_BOUND = 1 / math.sqrt(27)
DEFAULT_STD = DEFAULT_BOUND / math.sqrt(3)


def test_small_stem_shape():
    model = build_backbone("resnet18", small_images=True)
    conv = model.conv1
    shape = (conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding)
    assert shape == (3, 64, (3, 3), (1, 1), (2, 2))
    assert conv.bias is None and isinstance(model.maxpool, nn.Identity) and isinstance(model.fc, nn.Identity)
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 512) and model.num_features == 512
    imagenet = build_backbone("resnet18", small_images=False)
    assert imagenet.conv1.kernel_size == (7, 7) and isinstance(imagenet.maxpool, nn.MaxPool2d)


def test_small_stem_keeps_pytorch_default_initialisation():
    stds = []
    for seed in range(5):
        torch.manual_seed(seed)
        weight = build_backbone("resnet18", small_images=True).conv1.weight.detach()
        assert weight.abs().max() <= DEFAULT_BOUND + 1e-7  # uniform, within PyTorch's bound
        stds.append(float(weight.std()))
    # 1,728 weights per draw: the std of a draw is within about 2% of the expected value
    assert sum(stds) / len(stds) == pytest.approx(DEFAULT_STD, rel=0.03)
    assert len(set(stds)) == len(stds)  # a fresh draw per seed, not a fixed tensor
