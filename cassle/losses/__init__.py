"""Loss functions: pure functions of tensors and floats, computed in float32 even under autocast."""

from cassle.losses.barlow import barlow_loss_func, barlow_multicrop_loss_func
from cassle.losses.byol import byol_loss_func, byol_multicrop_loss_func
from cassle.losses.distill import (
    contrastive_distill_loss_func,
    negative_cosine_loss_func,
    simclr_distill_loss_func,
    simclr_distill_reverse_loss_func,
)
from cassle.losses.moco import moco_loss_func, moco_multicrop_loss_func
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
from cassle.losses.simclr import simclr_loss_func, simclr_multicrop_loss_func
from cassle.losses.vicreg import (
    covariance_loss,
    invariance_loss,
    variance_loss,
    vicreg_loss_func,
    vicreg_multicrop_loss_func,
)

__all__ = [
    "barlow_loss_func",
    "barlow_multicrop_loss_func",
    "barlow_pnr_loss_func",
    "barlow_pnr_terms",
    "byol_loss_func",
    "byol_multicrop_loss_func",
    "byol_pnr_loss_func",
    "byol_pnr_terms",
    "contrastive_distill_loss_func",
    "covariance_loss",
    "invariance_loss",
    "moco_loss_func",
    "moco_multicrop_loss_func",
    "negative_cosine_loss_func",
    "moco_pnr_loss_func",
    "moco_pnr_terms",
    "simclr_distill_loss_func",
    "simclr_distill_reverse_loss_func",
    "simclr_loss_func",
    "simclr_multicrop_loss_func",
    "simclr_pnr_loss_func",
    "simclr_pnr_terms",
    "variance_loss",
    "vicreg_loss_func",
    "vicreg_multicrop_loss_func",
    "vicreg_pnr_loss_func",
    "vicreg_pnr_terms",
]
