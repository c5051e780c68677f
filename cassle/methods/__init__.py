"""SSL methods: one LightningModule each on a shared base; ``cassle/registry.py`` names them."""

from cassle.methods.base import BaseMethod, BaseMomentumMethod

__all__ = ["BaseMethod", "BaseMomentumMethod"]
