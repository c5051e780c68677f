"""PNR regularisers (spec 4.1-4.5): pseudo-negatives from the frozen teacher and the current model.

SimCLR and MoCo: the PNR objective replaces the method's own loss (``ssl_loss``). BYOL, Barlow Twins
and VICReg: ``distill_lamb * P - negative_lamb * Nn`` is added (``regularizer_loss``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cassle.distillers.base import distill_wrapper
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
from cassle.methods.mocov2plus import MoCoV2Plus

Logs = dict[str, torch.Tensor]


def _views(outs: dict[str, Any]) -> tuple[torch.Tensor, ...]:
    (p1, p2), (f1, f2) = outs["distill_p"], outs["frozen_z"]
    return p1, p2, f1, f2


def simclr_pnr_wrapper(Method: type) -> type:
    class SimCLRPNR(distill_wrapper(Method)):
        distiller_name = "simclr_pnr"

        def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, Logs]:
            if not self.has_teacher:
                return super().ssl_loss(outs)
            z1, z2 = outs["z"]
            p1, p2, f1, f2 = _views(outs)
            T = self.args.distill_temperature  # both terms use --distill_temperature (spec 4.1)
            loss = simclr_pnr_loss_func(z1, z2, p1, p2, f1, f2, T)
            with torch.no_grad():
                main, reg = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, T)
            # "simlr" [sic]: the official log key, kept so dashboards stay comparable.
            return loss, {"train_simlr_pnr_loss": loss, "train_pnr_main_loss": main, "train_pnr_reg_loss": reg}

    return SimCLRPNR


def mocov2plus_pnr_wrapper(Method: type) -> type:
    if not issubclass(Method, MoCoV2Plus):
        raise TypeError("mocov2plus_pnr wraps MoCoV2Plus")

    class MoCoV2PlusPNR(distill_wrapper(Method)):
        """Adds ``queue2`` (2 x D x K), the queue of teacher projections n(f_a) of view a (spec 4.2).

        At task 1 it starts as normalised noise, from task 2 on it is loaded, stale, from the
        previous task (spec 8 item 7, kept).
        """

        distiller_name = "mocov2plus_pnr"

        def __init__(self, args):
            super().__init__(args)
            self.register_buffer("queue2", F.normalize(torch.randn(2, args.output_dim, args.queue_size), dim=1))
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
            T, Td = self.args.temperature, self.args.distill_temperature
            # Direction a -> b uses view b's key and both of view b's queues (spec 4.2).
            directions = ((q1, k2, p1, v1, queue[1], frozen_queue[1]), (q2, k1, p2, v2, queue[0], frozen_queue[0]))
            loss = 0.5 * sum(moco_pnr_loss_func(*d, T, Td) for d in directions)
            with torch.no_grad():
                terms = [moco_pnr_terms(*d, T, Td) for d in directions]
            main = 0.5 * (terms[0][0] + terms[1][0])
            reg = 0.5 * (terms[0][1] + terms[1][1])
            return loss, {"train_moco_pnr_loss": loss, "train_pnr_main_loss": main, "train_pnr_reg_loss": reg}

    return MoCoV2PlusPNR


def byol_pnr_wrapper(Method: type) -> type:
    class BYOLPNR(distill_wrapper(Method)):
        distiller_name = "byol_pnr"

        def learnable_params(self) -> list[dict[str, Any]]:
            params = super().learnable_params()
            lamb = self.args.distill_lamb
            # Official: g trains at lr if distill_lamb >= 1, else at lr / distill_lamb (spec 3).
            params[-1]["lr"] = self.args.lr_scaled if lamb >= 1 else self.args.lr_scaled / lamb
            return params

        def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, Logs]:
            if not self.has_teacher:
                return 0.0, {}
            views = _views(outs)
            loss = byol_pnr_loss_func(*views, self.args.distill_lamb, self.args.negative_lamb)
            with torch.no_grad():
                positive, negative = byol_pnr_terms(*views)
            return loss, {"train_byol_pnr_positive_loss": positive, "train_byol_pnr_negative_loss": negative}

    return BYOLPNR


def barlow_pnr_wrapper(Method: type) -> type:
    class BarlowPNR(distill_wrapper(Method)):
        distiller_name = "barlow_pnr"

        def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, Logs]:
            if not self.has_teacher:
                return 0.0, {}
            a = self.args
            views = _views(outs)
            loss = barlow_pnr_loss_func(*views, a.distill_lamb, a.negative_lamb, a.distill_barlow_lamb,
                                        a.distill_scale_loss)
            with torch.no_grad():
                positive, negative = barlow_pnr_terms(*views, a.distill_barlow_lamb, a.distill_scale_loss)
            return loss, {"train_decorrelative_distill_loss": positive, "train_negative_loss": negative}

    return BarlowPNR


def vicreg_pnr_wrapper(Method: type) -> type:
    class VICRegPNR(distill_wrapper(Method)):
        distiller_name = "vicreg_pnr"

        def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, Logs]:
            if not self.has_teacher:
                return 0.0, {}
            views = _views(outs)
            loss = vicreg_pnr_loss_func(*views, self.args.distill_lamb, self.args.negative_lamb)
            with torch.no_grad():
                positive, negative = vicreg_pnr_terms(*views)
            return loss, {"train_predictive_distill_loss": positive, "train_predictive_negative_loss": negative}

    return VICRegPNR
