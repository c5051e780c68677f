"""The shared base of every SSL method: encoder, online classifier, optimiser, schedule, metrics.

A method subclasses :class:`BaseMethod` (or :class:`BaseMomentumMethod`) and provides

* ``self.projector`` (the base computes ``feats`` and ``z``; extend ``forward`` for more, e.g. BYOL's
  predictor output);
* ``ssl_loss(outs)``: the method's objective on the two-view outputs, ``(loss, logs)``;
* ``learnable_params()``: its extra parameter groups (predictor, ...), if any.

Its hyperparameters arrive in ``cfg.params`` (the dataclass its registry entry declares). Regularisers
(cassle/distillers) are mixins over a method that extend ``multiview_forward`` (teacher outputs),
``regularizer_loss`` (added terms) or ``ssl_loss`` itself (SimCLR and MoCo PNR replace it).
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.backbones import build_backbone
from cassle.config import ModelConfig
from cassle.errors import NonFiniteLossError
from cassle.utils.knn import WeightedKNNClassifier
from cassle.utils.lars import LARS
from cassle.utils.metrics import AccuracyAccumulator, accuracy_at_k, class_to_task
from cassle.utils.momentum import ema_schedule_for_step, ema_update, initialize_momentum_params
from cassle.utils.schedulers import lr_at_epoch


class BaseMethod(pl.LightningModule):
    """Encoder + online linear classifier, trained by an SSL objective on two augmented views.

    Args:
        cfg: the model's section of the resolved configuration.
        task_idx: the task this model trains (selects ``batch["task<t>"]``).
    """

    #: What the distill predictor g of a regulariser receives: the raw projection ``z`` (MoCo: ``q``).
    distill_input_key = "z"
    #: What a checkpoint says about itself (``checkpoint["cassle"]``: method, dataset, task, split...); the
    #: driver sets it (``cassle.train.checkpoint_metadata``), the probe and the loaders read it.
    checkpoint_metadata: dict[str, Any] | None = None

    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__()
        self.cfg = cfg
        self.encoder = build_backbone(cfg.encoder, cfg.small_images, cfg.zero_init_residual)
        self.features_dim = self.encoder.num_features
        self.classifier = nn.Linear(self.features_dim, cfg.num_classes)
        self.freeze_if_unused(self.classifier)
        self.current_task_idx = task_idx
        self.tasks = cfg.split.classes
        self.online_eval = cfg.online_eval
        self.knn = WeightedKNNClassifier(k=cfg.knn_k) if cfg.knn_eval else None
        self._val_acc: dict[str, AccuracyAccumulator] = {}
        if cfg.compile:
            self.encoder.compile()

    # ------------------------------------------------------------------ parameters and optimiser
    def freeze_if_unused(self, classifier: nn.Module | None) -> None:
        """Without online evaluation a classifier gets no gradient: it is left out of the optimiser (and so
        out of DDP's gradient reduction, which refuses parameters without a gradient). The weights are
        the same as under the official Lightning 1.5, which kept it and searched for unused parameters
        (``--strategy ddp_find_unused_parameters_true`` does that here too, with the same result)."""
        if classifier is not None and not self.cfg.online_eval and not self.cfg.keep_unused_parameters:
            classifier.requires_grad_(False)

    def learnable_params(self) -> list[dict[str, Any]]:
        """Parameter groups; a group without ``lr`` uses the batch-scaled ``--lr``."""
        return [
            {"name": "backbone", "params": self.encoder.parameters()},
            {"name": "projector", "params": self.projector.parameters()},
            {"name": "classifier", "params": self.classifier.parameters(),
             "lr": self.cfg.optim.classifier_lr, "weight_decay": 0.0},
        ]

    def configure_optimizers(self) -> torch.optim.Optimizer:
        opt = self.cfg.optim
        groups = self.learnable_params()
        for group in groups:
            group["params"] = [p for p in group["params"] if p.requires_grad]
            group.setdefault("lr", opt.lr_scaled)
            group["base_lr"] = group["lr"]
        if opt.optimizer == "sgd":
            if opt.lars:
                return LARS(groups, lr=opt.lr_scaled, momentum=0.9, weight_decay=opt.weight_decay,
                            eta=opt.eta_lars, clip_lr=opt.grad_clip_lars,
                            exclude_bias_n_norm=opt.exclude_bias_n_norm)
            return torch.optim.SGD(groups, lr=opt.lr_scaled, momentum=0.9, weight_decay=opt.weight_decay)
        optimizer_cls = torch.optim.Adam if opt.optimizer == "adam" else torch.optim.AdamW
        return optimizer_cls(groups, lr=opt.lr_scaled, weight_decay=opt.weight_decay)

    def on_train_epoch_start(self) -> None:
        # The schedule is a function of the epoch (stepped once per epoch, docs/official.md §3); setting it here
        # rather than through a stateful scheduler keeps it right after a mid-task resume.
        opt = self.cfg.optim
        for group in self.trainer.optimizers[0].param_groups:
            group["lr"] = lr_at_epoch(
                opt.scheduler, self.current_epoch, group["base_lr"], warmup_epochs=opt.warmup_epochs,
                max_epochs=opt.max_epochs, warmup_start_lr=opt.warmup_start_lr, eta_min=opt.min_lr,
                milestones=opt.lr_decay_steps, gamma=0.1,
            )

    # ------------------------------------------------------------------ forward passes
    def to_device_format(self, X: torch.Tensor) -> torch.Tensor:
        return X.contiguous(memory_format=torch.channels_last) if self.cfg.channels_last else X

    def forward(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        """Encoder features and the projection ``z`` (every method defines ``self.projector``)."""
        feats = self.encoder(self.to_device_format(X))
        return {"feats": feats, "z": self.projector(feats)}

    def multiview_forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
        """Forward each view on its own (BatchNorm statistics per view, as officially). With multi-crop,
        ``views`` holds the ``cfg.num_large_crops`` large crops first, then the small ones."""
        outs: dict[str, list] = {}
        for X in views:
            for key, value in self(X).items():
                outs.setdefault(key, []).append(value)
        return outs

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        raise NotImplementedError

    def regularizer_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor | float, dict[str, torch.Tensor]]:
        """Terms a regulariser adds to the SSL loss; none for plain fine-tuning."""
        return 0.0, {}

    # ------------------------------------------------------------------ online classifier
    def online_classifier_loss(self, X: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
        """Cross-entropy of the online classifier on detached features (docs/official.md §2.7).

        The encoder stays in train mode here, so its BatchNorm running statistics see images of all
        classes: the official behaviour (docs/official.md §2.7 QUIRK).
        """
        with torch.no_grad():
            feats = self.encoder(self.to_device_format(X))
        logits = self.classifier(feats.detach())
        loss = F.cross_entropy(logits, targets)
        acc1, acc5 = accuracy_at_k(logits, targets, topk=(1, 5))
        return loss, {"train_online_eval_loss": loss, "train_online_eval_acc1": acc1,
                      "train_online_eval_acc5": acc5}

    # ------------------------------------------------------------------ training
    def training_losses(self, batch: dict[str, Any]) -> tuple[torch.Tensor, dict[str, Any], dict[str, Any]]:
        """The total loss of one step, its logged parts, and the forward outputs.

        total = SSL objective (``ssl_loss``) + regulariser (``regularizer_loss``) + online classifier
        cross-entropy (when the batch has an ``online_eval`` stream).
        """
        _, views, targets = batch[f"task{self.current_task_idx}"]
        outs = self.multiview_forward(list(views))
        outs["targets"] = targets  # supervised SimCLR's positives
        ssl, logs = self.ssl_loss(outs)
        reg, reg_logs = self.regularizer_loss(outs)
        logs.update(reg_logs)
        loss = ssl + reg
        if self.online_eval and "online_eval" in batch:
            _, X_eval, y_eval = batch["online_eval"]
            cls_loss, cls_logs = self.online_classifier_loss(X_eval, y_eval)
            loss = loss + cls_loss
            logs.update(cls_logs)
        return loss, logs, outs

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> dict[str, Any]:
        loss, logs, outs = self.training_losses(batch)
        targets = outs["targets"]
        if not torch.isfinite(loss.detach()).all():
            raise NonFiniteLossError(
                f"task {self.current_task_idx}: the loss became {loss.item()} at epoch {self.current_epoch}, "
                f"step {self.global_step} (try a lower --lr, or --precision 32)"
            )
        if self.knn is not None:
            self.knn.update(train_features=outs["feats"][0].detach().float(), train_targets=targets)
        logs["lr"] = self.trainer.optimizers[0].param_groups[0]["lr"]
        # Epoch means over every rank's batches (equal batch sizes: the mean over the global batch).
        sync = self.trainer.world_size > 1
        self.log_dict({k: (v.detach() if torch.is_tensor(v) else v) for k, v in logs.items()},
                      on_epoch=True, on_step=False, sync_dist=sync, batch_size=targets.shape[0])
        self.log("train_loss", loss.detach(), on_epoch=True, on_step=False, prog_bar=True,
                 sync_dist=sync, batch_size=targets.shape[0])
        return {"loss": loss, "z": outs["z"], "feats": outs["feats"]}

    # ------------------------------------------------------------------ validation (online eval)
    def _new_val_accumulator(self) -> AccuracyAccumulator:
        """Sums of the online classifier's validation metrics, with accuracy per task (class split: the
        task of each target's class) or per domain (DomainNet: the tag that comes with each sample)."""
        split = self.cfg.split
        if split.classes is not None:
            return AccuracyAccumulator(split.names, class_to_group=class_to_task(split.classes, self.cfg.num_classes),
                                       device=self.device)
        if split.strategy == "domain":
            return AccuracyAccumulator(split.names, device=self.device)
        return AccuracyAccumulator(device=self.device)

    def on_validation_epoch_start(self) -> None:
        self._val_acc = {"": self._new_val_accumulator()}
        if getattr(self, "momentum_classifier", None) is not None:
            self._val_acc["momentum_"] = self._new_val_accumulator()

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        X, targets = batch[0], batch[1]
        domains = batch[2] if len(batch) > 2 and self.tasks is None else None
        feats = self.encoder(self.to_device_format(X))
        self._val_acc[""].update(self.classifier(feats), targets, domains)
        if self.knn is not None:
            self.knn.update(test_features=feats.float(), test_targets=targets)
        if "momentum_" in self._val_acc:
            momentum_feats = self.momentum_encoder(self.to_device_format(X))
            self._val_acc["momentum_"].update(self.momentum_classifier(momentum_feats), targets, domains)

    def on_validation_epoch_end(self) -> None:
        # Sums over every process's share of the validation set: the metrics of the whole set. Accuracies
        # in percent, per-task ones too (the official code logged those as fractions).
        metrics: dict[str, float] = {}
        for prefix, acc in self._val_acc.items():
            acc.reduce(lambda sums: self.trainer.strategy.reduce(sums, reduce_op="sum"))  # every rank calls it
            if acc.sums[0] > 0:
                metrics.update(acc.compute(prefix=f"{prefix}val_"))
        if self.knn is not None:
            acc1, acc5 = self.knn.compute()
            metrics["knn_acc1"], metrics["knn_acc5"] = acc1, acc5
        if metrics:
            self.log_dict(metrics, sync_dist=False)


    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.checkpoint_metadata is not None:
            checkpoint["cassle"] = dict(self.checkpoint_metadata)


class BaseMomentumMethod(BaseMethod):
    """Adds the momentum encoder + projector updated by EMA, and the momentum classifier (docs/official.md §3)."""

    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.momentum_encoder = build_backbone(cfg.encoder, cfg.small_images, cfg.zero_init_residual)
        initialize_momentum_params(self.encoder, self.momentum_encoder)
        self.momentum_classifier = (
            nn.Linear(self.features_dim, cfg.num_classes) if cfg.params.momentum_classifier else None
        )
        self.freeze_if_unused(self.momentum_classifier)

    def build_momentum_projector(self) -> None:
        """Called by subclasses once ``self.projector`` exists."""
        self.momentum_projector = _copy_module(self.projector)
        initialize_momentum_params(self.projector, self.momentum_projector)

    def learnable_params(self) -> list[dict[str, Any]]:
        params = super().learnable_params()
        if self.momentum_classifier is not None:
            params.append({"name": "momentum_classifier", "params": self.momentum_classifier.parameters(),
                           "lr": self.cfg.optim.classifier_lr, "weight_decay": 0.0})
        return params

    @torch.no_grad()
    def momentum_forward(self, X: torch.Tensor) -> dict[str, torch.Tensor]:
        feats = self.momentum_encoder(self.to_device_format(X))
        return {"momentum_feats": feats, "momentum_z": self.momentum_projector(feats)}

    def multiview_forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
        outs = super().multiview_forward(views)
        for X in views[: self.cfg.num_large_crops]:  # the momentum branch sees the large crops only
            for key, value in self.momentum_forward(X).items():
                outs.setdefault(key, []).append(value)
        return outs

    def online_classifier_loss(self, X: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, dict]:
        loss, logs = super().online_classifier_loss(X, targets)
        if self.momentum_classifier is not None:
            with torch.no_grad():
                feats = self.momentum_encoder(self.to_device_format(X))
            logits = self.momentum_classifier(feats)
            momentum_loss = F.cross_entropy(logits, targets)
            acc1, acc5 = accuracy_at_k(logits, targets, topk=(1, 5))
            logs.update({"train_momentum_online_eval_loss": momentum_loss,
                         "train_momentum_online_eval_acc1": acc1,
                         "train_momentum_online_eval_acc5": acc5})
            loss = loss + momentum_loss
        return loss, logs

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        # Official order (docs/official.md §3): after optimiser step k of a task, no EMA at k = 1; from k = 2 the
        # EMA uses tau(k - 2). global_step counts this task's optimiser steps (fresh Trainer per task).
        params = self.cfg.params
        tau = ema_schedule_for_step(self.trainer.global_step, self.trainer.estimated_stepping_batches,
                                    params.base_tau_momentum, params.final_tau_momentum)
        if tau is not None:
            ema_update(self.encoder, self.momentum_encoder, tau)
            ema_update(self.projector, self.momentum_projector, tau)
            self.log("tau", tau, on_step=False, on_epoch=True)


def _copy_module(module: nn.Module) -> nn.Module:
    import copy

    return copy.deepcopy(module)
