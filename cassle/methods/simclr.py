"""SimCLR (docs/official.md §4.1): per-device NT-Xent on two views."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from cassle.config import ModelConfig
from cassle.losses.simclr import simclr_loss_func, simclr_multicrop_loss_func
from cassle.methods.base import BaseMethod


def relu_projector(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear - ReLU - Linear, no BatchNorm: the SimCLR and MoCo V2+ projector."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.ReLU(), nn.Linear(hidden_dim, out_dim))


class SimCLR(BaseMethod):
    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.projector = relu_projector(self.features_dim, cfg.proj_hidden_dim, cfg.output_dim)

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        params, z = self.cfg.params, outs["z"]
        if len(z) == 2 and not params.supervised:
            loss = simclr_loss_func(z[0], z[1], params.temperature)
        else:  # every other crop of the image (supervised: of every image of its class) is a positive
            labels = outs["targets"] if params.supervised else None
            loss = simclr_multicrop_loss_func(list(z), params.temperature, labels=labels)
        return loss, {"train_nce_loss": loss}
