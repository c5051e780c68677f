"""SSL methods by their official CLI names."""

from cassle.methods.barlow_twins import BarlowTwins
from cassle.methods.base import BaseMethod, BaseMomentumMethod
from cassle.methods.byol import BYOL
from cassle.methods.mocov2plus import MoCoV2Plus
from cassle.methods.simclr import SimCLR
from cassle.methods.vicreg import VICReg

METHODS = {
    "simclr": SimCLR,
    "mocov2plus": MoCoV2Plus,
    "byol": BYOL,
    "barlow_twins": BarlowTwins,
    "vicreg": VICReg,
}

__all__ = ["METHODS", "BaseMethod", "BaseMomentumMethod", "SimCLR", "MoCoV2Plus", "BYOL", "BarlowTwins", "VICReg"]
