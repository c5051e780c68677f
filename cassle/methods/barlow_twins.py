"""Barlow Twins (docs/official.md §4.4)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from cassle.config import ModelConfig
from cassle.losses.barlow import barlow_loss_func, barlow_multicrop_loss_func
from cassle.methods.base import BaseMethod


def three_layer_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear-BN-ReLU-Linear-BN-ReLU-Linear: the Barlow Twins and VICReg projector."""
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        nn.Linear(hidden_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
        nn.Linear(hidden_dim, out_dim),
    )


class BarlowTwins(BaseMethod):
    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.projector = three_layer_projector(self.features_dim, cfg.proj_hidden_dim, cfg.output_dim)

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z, params = outs["z"], self.cfg.params
        if len(z) == 2:
            loss = barlow_loss_func(z[0], z[1], lamb=params.lamb, scale_loss=params.scale_loss)
        else:  # the mean over the pairs of crops with at least one large crop
            loss = barlow_multicrop_loss_func(z, self.cfg.num_large_crops, params.lamb, params.scale_loss)
        return loss, {"train_barlow_loss": loss}
