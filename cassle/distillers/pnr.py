"""PNR regularisers: pseudo-negatives from the frozen teacher and the current model (docs/official.md §4).

SimCLR and MoCo: the PNR objective replaces the method's own loss (``ssl_loss``). BYOL, Barlow Twins and
VICReg: ``distill_lamb * P - negative_lamb * Nn`` is added (``regularizer_loss``). Each mixin comes with
the concrete class of the one method it supports (the registry names them).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cassle.config import ModelConfig
from cassle.distillers.base import RegularizerMixin
from cassle.losses.pnr import (
    barlow_pnr_loss_func,
    barlow_pnr_terms,
    byol_pnr_loss_func,
    byol_pnr_terms,
    moco_pnr_loss_func,
    moco_pnr_terms,
    simclr_pnr_loss_func,
    simclr_pnr_terms,
    vicreg_pnr_loss_func,
    vicreg_pnr_terms,
)
from cassle.methods.barlow_twins import BarlowTwins
from cassle.methods.byol import BYOL
from cassle.methods.mocov2plus import MoCoV2Plus
from cassle.methods.simclr import SimCLR
from cassle.methods.vicreg import VICReg

Logs = dict[str, torch.Tensor]


class SimCLRPNRMixin(RegularizerMixin):
    """SimCLR-PNR (docs/official.md §4.1): from task 1 on, the PNR objective replaces SimCLR's own."""

    regularizer_name = "simclr_pnr"

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, Logs]:
        if not self.has_teacher:
            return super().ssl_loss(outs)
        z1, z2 = outs["z"]
        p1, p2, f1, f2 = self.regularizer_terms(outs)
        T = self.cfg.regularizer.distill_temperature  # both terms use --distill_temperature
        loss = simclr_pnr_loss_func(z1, z2, p1, p2, f1, f2, T)
        with torch.no_grad():
            main, reg = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, T)
        # "simlr" [sic]: the official log key, kept so that dashboards stay comparable.
        return loss, {"train_simlr_pnr_loss": loss, "train_pnr_main_loss": main, "train_pnr_reg_loss": reg}


class MoCoV2PlusPNRMixin(RegularizerMixin):
    """MoCo-PNR (docs/official.md §4.2): adds ``queue2`` (2 x D x K), the queue of teacher projections
    n(f_a) of view a, and replaces MoCo's loss from task 1 on.

    At task 1 the teacher queue starts as normalised noise, from task 2 on it is loaded, stale, from the
    previous task (docs/official.md §8 item 7, kept).
    """

    regularizer_name = "mocov2plus_pnr"

    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        queue = F.normalize(torch.randn(2, cfg.output_dim, cfg.params.queue_size), dim=1)
        self.register_buffer("queue2", queue)
        self.register_buffer("queue2_ptr", torch.zeros(1, dtype=torch.long))

    def predict_past(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.distill_predictor(x), dim=-1)

    def multiview_forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
        outs = super().multiview_forward(views)
        if self.has_teacher:
            outs["v"] = [F.normalize(f, dim=-1) for f in outs["frozen_z"]]
            # Snapshot, then enqueue this step's teacher projections (the loss uses the snapshot).
            outs["frozen_queue"] = self.queue2.clone().detach()
            self.enqueue(self.queue2, self.queue2_ptr, outs["v"])
        return outs

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, Logs]:
        if not self.has_teacher:
            return super().ssl_loss(outs)
        (q1, q2), (k1, k2) = outs["q"], outs["k"]
        (p1, p2), (v1, v2) = outs["distill_p"], outs["v"]
        queue, frozen_queue = outs["queue"], outs["frozen_queue"]
        T, Td = self.cfg.params.temperature, self.cfg.regularizer.distill_temperature
        # Direction a -> b uses view b's key and both of view b's queues.
        directions = ((q1, k2, p1, v1, queue[1], frozen_queue[1]), (q2, k1, p2, v2, queue[0], frozen_queue[0]))
        loss = 0.5 * sum(moco_pnr_loss_func(*d, T, Td) for d in directions)
        with torch.no_grad():
            terms = [moco_pnr_terms(*d, T, Td) for d in directions]
        main = 0.5 * (terms[0][0] + terms[1][0])
        reg = 0.5 * (terms[0][1] + terms[1][1])
        return loss, {"train_moco_pnr_loss": loss, "train_pnr_main_loss": main, "train_pnr_reg_loss": reg}


class BYOLPNRMixin(RegularizerMixin):
    """BYOL-PNR (docs/official.md §4.3): ``distill_lamb * P - negative_lamb * Nn`` added to BYOL's loss."""

    regularizer_name = "byol_pnr"
    scale_predictor_lr = True

    def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, Logs]:
        if not self.has_teacher:
            return 0.0, {}
        terms = self.regularizer_terms(outs)
        reg = self.cfg.regularizer
        loss = byol_pnr_loss_func(*terms, reg.distill_lamb, reg.negative_lamb)
        with torch.no_grad():
            positive, negative = byol_pnr_terms(*terms)
        return loss, {"train_byol_pnr_positive_loss": positive, "train_byol_pnr_negative_loss": negative}


class BarlowPNRMixin(RegularizerMixin):
    """Barlow-PNR (docs/official.md §4.4): ``distill_lamb * P - negative_lamb * Nn`` added to the Barlow loss."""

    regularizer_name = "barlow_pnr"

    def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, Logs]:
        if not self.has_teacher:
            return 0.0, {}
        terms = self.regularizer_terms(outs)
        reg = self.cfg.regularizer
        loss = barlow_pnr_loss_func(*terms, reg.distill_lamb, reg.negative_lamb, reg.distill_barlow_lamb,
                                    reg.distill_scale_loss)
        with torch.no_grad():
            positive, negative = barlow_pnr_terms(*terms, reg.distill_barlow_lamb, reg.distill_scale_loss)
        return loss, {"train_decorrelative_distill_loss": positive, "train_negative_loss": negative}


class VICRegPNRMixin(RegularizerMixin):
    """VICReg-PNR (docs/official.md §4.5): ``distill_lamb * P - negative_lamb * Nn`` added to VICReg's loss."""

    regularizer_name = "vicreg_pnr"

    def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, Logs]:
        if not self.has_teacher:
            return 0.0, {}
        terms = self.regularizer_terms(outs)
        reg = self.cfg.regularizer
        loss = vicreg_pnr_loss_func(*terms, reg.distill_lamb, reg.negative_lamb)
        with torch.no_grad():
            positive, negative = vicreg_pnr_terms(*terms)
        return loss, {"train_predictive_distill_loss": positive, "train_predictive_negative_loss": negative}


class SimCLRPNR(SimCLRPNRMixin, SimCLR):
    """SimCLR regularised by ``simclr_pnr``."""


class MoCoV2PlusPNR(MoCoV2PlusPNRMixin, MoCoV2Plus):
    """MoCo V2+ regularised by ``mocov2plus_pnr``."""


class BYOLPNR(BYOLPNRMixin, BYOL):
    """BYOL regularised by ``byol_pnr``."""


class BarlowTwinsPNR(BarlowPNRMixin, BarlowTwins):
    """Barlow Twins regularised by ``barlow_pnr``."""


class VICRegPNR(VICRegPNRMixin, VICReg):
    """VICReg regularised by ``vicreg_pnr``."""
