"""Barlow Twins (spec 4.4)."""

from __future__ import annotations

import argparse
from typing import Any

import torch
import torch.nn as nn

from cassle.losses.barlow import barlow_loss_func
from cassle.methods.base import BaseMethod


def three_layer_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear-BN-ReLU-Linear: the Barlow Twins and VICReg projector."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


class BarlowTwins(BaseMethod):
    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.projector = three_layer_projector(self.features_dim, args.proj_hidden_dim, args.output_dim)



    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z1, z2 = outs["z"]
        loss = barlow_loss_func(z1, z2, lamb=self.args.lamb, scale_loss=self.args.scale_loss)
        return loss, {"train_barlow_loss": loss}
