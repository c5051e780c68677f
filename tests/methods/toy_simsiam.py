"""A sixth method added through the registry alone (used by test_registry.py): a small SimSiam.

Everything a new method needs is here: its hyperparameters, its loss (a pure function), the method
class, and the class of each regulariser pair it supports. The test registers it with one
``register_method`` call; nothing else in the package changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

from cassle.config import ModelConfig
from cassle.distillers.cassle import PredictiveMixin
from cassle.methods.base import BaseMethod
from cassle.methods.byol import mlp_bn
from cassle.registry import param


@dataclass(frozen=True)
class ToySimSiamParams:
    pred_hidden_dim: int = param(16, "hidden width of the predictor")


def simsiam_loss_func(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``-mean_n cos(p_n, z_n)`` with the target z detached (stop-gradient)."""
    return -F.cosine_similarity(p, z.detach(), dim=1).mean()


class ToySimSiam(BaseMethod):
    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.projector = mlp_bn(self.features_dim, cfg.proj_hidden_dim, cfg.output_dim)
        self.predictor = mlp_bn(cfg.output_dim, cfg.params.pred_hidden_dim, cfg.output_dim)

    def learnable_params(self) -> list[dict[str, Any]]:
        return super().learnable_params() + [{"name": "predictor", "params": self.predictor.parameters()}]

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        z1, z2 = outs["z"]
        p1, p2 = self.predictor(z1), self.predictor(z2)
        loss = 0.5 * (simsiam_loss_func(p1, z2) + simsiam_loss_func(p2, z1))
        return loss, {"train_simsiam_loss": loss}


class ToySimSiamPredictive(PredictiveMixin, ToySimSiam):
    """ToySimSiam regularised by CaSSLe's ``predictive``."""
