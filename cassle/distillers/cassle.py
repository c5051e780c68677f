"""The CaSSLe regularisers, the baselines of every table: predict the past, no pseudo-negatives.

Each adds ``distill_lamb * L_dist(g(x), f)`` to the method's own loss from task 1 on (docs/official.md
§4.1-4.5, "CaSSLe ... distiller"), and comes with the concrete classes of the methods it supports.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cassle.distillers.base import RegularizerMixin
from cassle.losses.barlow import barlow_loss_func
from cassle.losses.byol import byol_loss_func
from cassle.losses.distill import contrastive_distill_loss_func, negative_cosine_loss_func
from cassle.methods.barlow_twins import BarlowTwins
from cassle.methods.byol import BYOL
from cassle.methods.mocov2plus import MoCoV2Plus
from cassle.methods.simclr import SimCLR
from cassle.methods.vicreg import VICReg


class CaSSLeMixin(RegularizerMixin):
    """``distill_lamb * distill_loss(p1, p2, f1, f2)`` added to the SSL loss, logged under ``log_key``."""

    log_key = ""

    def distill_loss(self, p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        if not self.has_teacher:
            return 0.0, {}
        distill = self.distill_loss(*self.regularizer_terms(outs))
        return self.cfg.regularizer.distill_lamb * distill, {self.log_key: distill}


class ContrastiveMixin(CaSSLeMixin):
    """``1/2 [C(q->v) + C(v->q)]`` with only teacher rows as negatives (docs/official.md §4.1)."""

    regularizer_name = "contrastive"
    log_key = "train_contrastive_distill_loss"

    def distill_loss(self, p1, p2, f1, f2):
        return contrastive_distill_loss_func(p1, p2, f1, f2, self.cfg.regularizer.distill_temperature)


class PredictiveMixin(CaSSLeMixin):
    """BYOL-style prediction of the teacher (docs/official.md §4.3), mean of the two views.

    ``--distill_type byol`` (default) uses ``2 - 2 cos``, any other value ``-cos``; g trains at
    ``lr / distill_lamb`` when ``distill_lamb < 1``, as officially.
    """

    regularizer_name = "predictive"
    log_key = "train_predictive_distill_loss"
    scale_predictor_lr = True

    def distill_loss(self, p1, p2, f1, f2):
        loss = byol_loss_func if self.cfg.regularizer.distill_type == "byol" else negative_cosine_loss_func
        return 0.5 * (loss(p1, f1) + loss(p2, f2))


class DecorrelativeMixin(CaSSLeMixin):
    """Barlow Twins loss between g(z_a) and the teacher's f_a (docs/official.md §4.4), mean of the views."""

    regularizer_name = "decorrelative"
    log_key = "train_decorrelative_distill_loss"

    def distill_loss(self, p1, p2, f1, f2):
        reg = self.cfg.regularizer
        terms = [barlow_loss_func(p, f.detach(), lamb=reg.distill_barlow_lamb, scale_loss=reg.distill_scale_loss)
                 for p, f in ((p1, f1), (p2, f2))]
        return 0.5 * (terms[0] + terms[1])


class PredictiveMSEMixin(CaSSLeMixin):
    """MSE between g(z_a) and the teacher's f_a (docs/official.md §4.5), mean of the views."""

    regularizer_name = "predictive_mse"
    log_key = "train_predictive_mse_distill_loss"

    def distill_loss(self, p1, p2, f1, f2):
        return 0.5 * (F.mse_loss(p1, f1.detach()) + F.mse_loss(p2, f2.detach()))


class SimCLRContrastive(ContrastiveMixin, SimCLR):
    """SimCLR regularised by CaSSLe's ``contrastive``."""


class MoCoV2PlusContrastive(ContrastiveMixin, MoCoV2Plus):
    """MoCo V2+ regularised by CaSSLe's ``contrastive`` (g receives the normalised query)."""


class BYOLPredictive(PredictiveMixin, BYOL):
    """BYOL regularised by CaSSLe's ``predictive``."""


class BarlowTwinsDecorrelative(DecorrelativeMixin, BarlowTwins):
    """Barlow Twins regularised by CaSSLe's ``decorrelative``."""


class VICRegPredictiveMSE(PredictiveMSEMixin, VICReg):
    """VICReg regularised by CaSSLe's ``predictive_mse``."""
