"""ResNet trunks from torchvision, with the official small-image stem for 32 px data."""

from __future__ import annotations

import torch.nn as nn
from torchvision.models import resnet18, resnet50

BACKBONES = {"resnet18": resnet18, "resnet50": resnet50}


def build_backbone(name: str, small_images: bool, zero_init_residual: bool = False) -> nn.Module:
    """A torchvision ResNet without its classification head (``fc`` = Identity).

    Args:
        name: ``resnet18`` (512-d features) or ``resnet50`` (2048-d).
        small_images: use the official CIFAR stem: a 3x3 convolution with stride 1 and padding 2
            (padding 2 as in CaSSLe, docs/official.md §3) and no max-pool. The new convolution keeps
            PyTorch's default initialisation, as the official code (which replaces ``conv1`` after
            torchvision's Kaiming fan-out initialisation and does not initialise it again).
        zero_init_residual: torchvision's option (off in the official runs).

    Returns:
        The trunk, with ``num_features`` set to its output width.
    """
    model = BACKBONES[name](weights=None, zero_init_residual=zero_init_residual)
    model.num_features = model.fc.in_features
    model.fc = nn.Identity()
    if small_images:
        model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=2, bias=False)
        model.maxpool = nn.Identity()
    return model
