"""VICReg (docs/official.md §4.5)."""

from __future__ import annotations

from typing import Any

import torch

from cassle.config import ModelConfig
from cassle.losses.vicreg import vicreg_loss_func, vicreg_multicrop_loss_func
from cassle.methods.barlow_twins import three_layer_projector
from cassle.methods.base import BaseMethod


class VICReg(BaseMethod):
    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.projector = three_layer_projector(self.features_dim, cfg.proj_hidden_dim, cfg.output_dim)

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z, p = outs["z"], self.cfg.params
        if len(z) == 2:
            loss = vicreg_loss_func(z[0], z[1], sim_loss_weight=p.sim_loss_weight,
                                    var_loss_weight=p.var_loss_weight, cov_loss_weight=p.cov_loss_weight)
        else:  # the mean over the pairs of crops with at least one large crop
            loss = vicreg_multicrop_loss_func(z, self.cfg.num_large_crops, p.sim_loss_weight, p.var_loss_weight,
                                              p.cov_loss_weight)
        return loss, {"train_vicreg_loss": loss}
