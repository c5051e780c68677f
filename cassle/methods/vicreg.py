"""VICReg (spec 4.5)."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from cassle.losses.vicreg import vicreg_loss_func
from cassle.methods.barlow_twins import three_layer_projector
from cassle.methods.base import BaseMethod


class VICReg(BaseMethod):
    def __init__(self, args: argparse.Namespace):
        super().__init__(args)
        self.projector = three_layer_projector(self.features_dim, args.proj_hidden_dim, args.output_dim)



    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z1, z2 = outs["z"]
        args = self.args
        loss = vicreg_loss_func(z1, z2, sim_loss_weight=args.sim_loss_weight,
                                var_loss_weight=args.var_loss_weight, cov_loss_weight=args.cov_loss_weight)
        return loss, {"train_vicreg_loss": loss}
