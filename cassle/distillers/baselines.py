"""The CaSSLe regularisers (the baselines of every table): predict the past, no pseudo-negatives."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cassle.distillers.base import distill_wrapper
from cassle.losses.barlow import barlow_loss_func
from cassle.losses.byol import byol_loss_func
from cassle.losses.distill import contrastive_distill_loss_func


def _cassle_wrapper(name: str, log_key: str, distill_loss) -> Any:
    """A CaSSLe regulariser: ``distill_lamb * distill_loss(p1, p2, f1, f2, args)`` added to the SSL loss."""

    def wrapper(Method: type) -> type:
        class CaSSLeDistiller(distill_wrapper(Method)):
            distiller_name = name

            def regularizer_loss(self, outs: dict[str, Any]):
                if not self.has_teacher:
                    return 0.0, {}
                (p1, p2), (f1, f2) = outs["distill_p"], outs["frozen_z"]
                distill = distill_loss(p1, p2, f1, f2, self.args)
                return self.args.distill_lamb * distill, {log_key: distill}

        CaSSLeDistiller.__name__ = CaSSLeDistiller.__qualname__ = f"{Method.__name__}_{name}"
        return CaSSLeDistiller

    return wrapper


def _contrastive(p1, p2, f1, f2, args) -> torch.Tensor:
    # 1/2 [C(q->v) + C(v->q)], teacher rows only as negatives (spec 4.1, CaSSLe baseline).
    return contrastive_distill_loss_func(p1, p2, f1, f2, args.distill_temperature)


def _predictive(p1, p2, f1, f2, args) -> torch.Tensor:
    return 0.5 * (byol_loss_func(p1, f1) + byol_loss_func(p2, f2))


def _decorrelative(p1, p2, f1, f2, args) -> torch.Tensor:
    bt = lambda p, f: barlow_loss_func(p, f.detach(), lamb=args.distill_barlow_lamb, scale_loss=args.distill_scale_loss)
    return 0.5 * (bt(p1, f1) + bt(p2, f2))


def _predictive_mse(p1, p2, f1, f2, args) -> torch.Tensor:
    return 0.5 * (F.mse_loss(p1, f1.detach()) + F.mse_loss(p2, f2.detach()))


contrastive_wrapper = _cassle_wrapper("contrastive", "train_contrastive_distill_loss", _contrastive)
predictive_wrapper = _cassle_wrapper("predictive", "train_predictive_distill_loss", _predictive)
decorrelative_wrapper = _cassle_wrapper("decorrelative", "train_decorrelative_distill_loss", _decorrelative)
predictive_mse_wrapper = _cassle_wrapper("predictive_mse", "train_predictive_mse_distill_loss", _predictive_mse)
