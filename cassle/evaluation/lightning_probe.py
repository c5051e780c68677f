"""The linear probe as a LightningModule (docs/official.md §6), the official path of ``main_linear.py``.

The backbone is frozen (no gradient) and always in eval mode, so its BatchNorm statistics never
change: ``train()`` is overridden and eval mode is forced again at every epoch and step, because
Lightning calls ``.train()`` on the whole module. Only ``classifier = Linear(features, num_classes)``
is optimised: cross-entropy, SGD (``--lr``, ``--momentum``, ``--weight_decay``) and the per-epoch
schedule of :meth:`cassle.evaluation.config.LinearConfig.lr_factor`. Validation metrics come from
:class:`cassle.utils.metrics.AccuracyAccumulator`, the same code as the cached-feature path.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.config import lightning_batch_limit
from cassle.evaluation.config import LinearConfig
from cassle.utils.metrics import AccuracyAccumulator, accuracy_at_k


class LinearModel(pl.LightningModule):
    """Frozen backbone + trainable linear classifier.

    Args:
        backbone: the trunk (its ``fc`` is Identity); frozen here.
        classifier: the linear head.
        config: the probe's configuration (``lr``, ``momentum``, ``weight_decay`` and the schedule).
        make_metrics: returns a fresh accumulator for each validation.
    """

    def __init__(self, backbone: nn.Module, classifier: nn.Module, config: LinearConfig,
                 make_metrics: Callable[[], AccuracyAccumulator]):
        super().__init__()
        self.backbone = backbone
        self.classifier = classifier
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        self.backbone.eval()
        self.config = config
        self.make_metrics = make_metrics
        self._metrics: AccuracyAccumulator | None = None
        self.final_metrics: dict[str, float] | None = None
        self.validated_epoch: int | None = None

    # ------------------------------------------------------------------ frozen backbone
    def train(self, mode: bool = True) -> LinearModel:
        super().train(mode)
        self.backbone.eval()
        return self

    def on_train_epoch_start(self) -> None:
        self.backbone.eval()

    def forward(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        """``feats`` (B, D) of the frozen backbone and the classifier's ``logits`` (B, C)."""
        with torch.no_grad():
            feats = self.backbone(X)
        return {"feats": feats, "logits": self.classifier(feats)}

    # ------------------------------------------------------------------ optimisation
    def configure_optimizers(self) -> dict[str, Any]:
        config = self.config
        optimizer = torch.optim.SGD(self.classifier.parameters(), lr=config.lr, momentum=config.momentum,
                                    weight_decay=config.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, config.lr_factor)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}

    def training_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> torch.Tensor:
        self.backbone.eval()  # Lightning may have called .train(): BN statistics stay fixed
        X, targets = batch[0], batch[1]
        logits = self(X)["logits"]
        loss = F.cross_entropy(logits, targets)
        acc1, acc5 = accuracy_at_k(logits.detach(), targets, (1, 5))
        self.log_dict({"train_loss": loss.detach(), "train_acc1": acc1, "train_acc5": acc5},
                      on_step=False, on_epoch=True, batch_size=targets.size(0))
        return loss

    # ------------------------------------------------------------------ evaluation
    def on_validation_epoch_start(self) -> None:
        self._metrics = self.make_metrics()

    def validation_step(self, batch: tuple[torch.Tensor, ...], batch_idx: int) -> None:
        logits = self(batch[0])["logits"]
        self._metrics.update(logits, batch[1], batch[2] if len(batch) > 2 else None)

    def on_validation_epoch_end(self) -> None:
        self._metrics.reduce(lambda sums: self.trainer.strategy.reduce(sums, reduce_op="sum"))
        metrics = self._metrics.compute()
        self.final_metrics = metrics
        self.validated_epoch = self.current_epoch
        finite = {k: v for k, v in metrics.items() if v == v}
        if finite:
            self.log_dict(finite, on_epoch=True)


def fit_linear_probe(backbone: nn.Module, head: nn.Module, train_loader: Any, val_loader: Any,
                     config: LinearConfig, make_metrics: Callable[[], AccuracyAccumulator], accelerator: str,
                     devices: Any, precision: str, logger: Any = None) -> tuple[dict[str, float], nn.Module]:
    """Train the probe with Lightning (validating every ``--check_val_every_n_epoch`` epochs).

    Returns:
        The metrics of the final epoch's validation and the trained head.
    """
    import logging
    import warnings

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")

    model = LinearModel(backbone, head, config, make_metrics)
    trainer = pl.Trainer(
        max_epochs=config.max_epochs,
        accelerator=accelerator,
        devices=devices,
        precision=precision,
        logger=logger if logger is not None else False,
        enable_checkpointing=False,
        enable_progress_bar=config.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=config.check_val_every_n_epoch,
        limit_train_batches=lightning_batch_limit(config.limit_train_batches),
        limit_val_batches=lightning_batch_limit(config.limit_val_batches),
        log_every_n_steps=1,
    )
    trainer.fit(model, train_dataloaders=train_loader, val_dataloaders=val_loader)
    if trainer.interrupted:
        raise KeyboardInterrupt
    if model.validated_epoch != config.max_epochs - 1:
        trainer.validate(model, dataloaders=val_loader, verbose=False)
    return dict(model.final_metrics), model.classifier
