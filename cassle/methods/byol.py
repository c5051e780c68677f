"""BYOL (docs/official.md §4.3): predictor on the online branch, EMA target, sum of both directions."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.config import ModelConfig
from cassle.losses.byol import byol_loss_func, byol_multicrop_loss_func
from cassle.methods.base import BaseMomentumMethod


def mlp_bn(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    """Linear - BatchNorm - ReLU - Linear: BYOL's projector and predictor, and the distill predictor g."""
    return nn.Sequential(nn.Linear(in_dim, hidden_dim), nn.BatchNorm1d(hidden_dim), nn.ReLU(),
                         nn.Linear(hidden_dim, out_dim))


class BYOL(BaseMomentumMethod):
    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.projector = mlp_bn(self.features_dim, cfg.proj_hidden_dim, cfg.output_dim)
        self.build_momentum_projector()
        self.predictor = mlp_bn(cfg.output_dim, cfg.params.pred_hidden_dim, cfg.output_dim)

    def learnable_params(self) -> list[dict[str, Any]]:
        return super().learnable_params() + [{"name": "predictor", "params": self.predictor.parameters()}]

    def forward(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        out = super().forward(X)
        out["p"] = self.predictor(out["z"])
        return out

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        p, m = outs["p"], outs["momentum_z"]
        if len(p) == 2:  # the official BYOL sums its two directions (docs/decisions.md: keep it)
            loss = byol_loss_func(p[0], m[1]) + byol_loss_func(p[1], m[0])
        else:  # every crop's prediction against the momentum targets of the other large crops, summed
            loss = byol_multicrop_loss_func(p, m)
        with torch.no_grad():
            large = outs["z"][: self.cfg.num_large_crops]
            z_std = F.normalize(torch.stack(large), dim=-1).std(dim=1).mean()
        return loss, {"train_neg_cos_sim": loss, "train_z_std": z_std}
