"""Regularisers by their official CLI names: ``DISTILLERS[name](METHODS[method])`` is a model class.

No distiller = fine-tuning (the lower bound).
"""

from cassle.distillers.baselines import (
    contrastive_wrapper,
    decorrelative_wrapper,
    predictive_mse_wrapper,
    predictive_wrapper,
)
from cassle.distillers.base import IGNORED_ON_LOAD, OPTIONAL_AT_TASK_START, distill_wrapper
from cassle.distillers.pnr import (
    barlow_pnr_wrapper,
    byol_pnr_wrapper,
    mocov2plus_pnr_wrapper,
    simclr_pnr_wrapper,
    vicreg_pnr_wrapper,
)

DISTILLERS = {
    "simclr_pnr": simclr_pnr_wrapper,
    "mocov2plus_pnr": mocov2plus_pnr_wrapper,
    "byol_pnr": byol_pnr_wrapper,
    "barlow_pnr": barlow_pnr_wrapper,
    "vicreg_pnr": vicreg_pnr_wrapper,
    "contrastive": contrastive_wrapper,
    "predictive": predictive_wrapper,
    "decorrelative": decorrelative_wrapper,
    "predictive_mse": predictive_mse_wrapper,
}

__all__ = ["DISTILLERS", "distill_wrapper", "OPTIONAL_AT_TASK_START", "IGNORED_ON_LOAD"]
