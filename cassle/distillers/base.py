"""The regulariser base: a frozen teacher from the previous task and the distill predictor g.

:class:`RegularizerMixin` goes before a method class (``class SimCLRPNR(SimCLRPNRMixin, SimCLR)``). Once
:meth:`build_teacher` has been called (the driver does so from task 1 on, after loading the previous task's
final weights), ``multiview_forward``'s outputs also hold

* ``frozen_z``: [f1, f2], the teacher's projections of the two views (no gradient);
* ``distill_p``: [g(x1), g(x2)], the current model's projections mapped into the old space by g, where x
  is the method's ``distill_input_key`` output (the raw projection z; MoCo: the normalised query q).

The PNR and CaSSLe regularisers (pnr.py, cassle.py) derive from it and define the loss. Checkpoints never
hold the teacher: it is rebuilt from the previous task's final checkpoint.
"""

from __future__ import annotations

import copy
from typing import Any, ClassVar

import torch
import torch.nn as nn

from cassle.config import ModelConfig
from cassle.methods.byol import mlp_bn

#: Keys a checkpoint of the previous task may lack: the distill predictor and the teacher queue are
#: created at task 1 (docs/official.md §1.5).
OPTIONAL_AT_TASK_START = ("distill_predictor.", "queue2", "queue2_ptr")
#: Keys that are never loaded: the teacher, which official task >= 1 checkpoints carry; it is rebuilt.
TEACHER_PREFIXES = ("frozen_encoder.", "frozen_projector.")


class RegularizerMixin:
    """Teacher + distill predictor g; the regularisers derive from it (mixed in before a method class)."""

    #: The ``--distiller`` name (set by each regulariser mixin).
    regularizer_name: ClassVar[str] = ""
    #: Train g at ``lr / distill_lamb`` when ``distill_lamb < 1`` (the official BYOL-PNR and CaSSLe
    #: predictive rule), else at the batch-scaled ``--lr``.
    scale_predictor_lr: ClassVar[bool] = False

    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)  # type: ignore[call-arg]
        self.distill_predictor = mlp_bn(cfg.output_dim, cfg.regularizer.distill_proj_hidden_dim, cfg.output_dim)
        self.frozen_encoder: nn.Module | None = None
        self.frozen_projector: nn.Module | None = None
        # Official CIFAR quirk (docs/official.md §1.4 step 9), only with --teacher_bn_train: after the first
        # validation the teacher's BatchNorm runs in train mode.
        self._teacher_bn_train_active = False

    @property
    def has_teacher(self) -> bool:
        return self.frozen_encoder is not None

    @torch.no_grad()
    def build_teacher(self) -> None:
        """Freeze a copy of the current online encoder + projector (the previous task's final
        weights, loaded just before): no gradient, not in the optimiser, eval mode."""
        self.frozen_encoder = copy.deepcopy(self.encoder)
        self.frozen_projector = copy.deepcopy(self.projector)
        for module in (self.frozen_encoder, self.frozen_projector):
            module.requires_grad_(False)
            module.eval()

    def learnable_params(self) -> list[dict[str, Any]]:
        group: dict[str, Any] = {"name": "distill_predictor", "params": self.distill_predictor.parameters()}
        lamb = self.cfg.regularizer.distill_lamb
        if self.scale_predictor_lr and lamb < 1:
            group["lr"] = self.cfg.optim.lr_scaled / lamb
        return super().learnable_params() + [group]

    def predict_past(self, x: torch.Tensor) -> torch.Tensor:
        """g applied to the method's ``distill_input_key`` output of one view."""
        return self.distill_predictor(x)

    def multiview_forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
        outs = super().multiview_forward(views)
        if not self.has_teacher:
            return outs
        bn_train = self._teacher_bn_train_active
        self.frozen_encoder.train(bn_train)
        self.frozen_projector.train(bn_train)
        # The regularisers see the first two (large) crops, also with multi-crop.
        with torch.no_grad():
            outs["frozen_z"] = [self.frozen_projector(self.frozen_encoder(self.to_device_format(X))) for X in views[:2]]
        key = self.distill_input_key
        outs["distill_p"] = [self.predict_past(outs[key][v]) for v in range(2)]
        return outs

    def regularizer_terms(self, outs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(p1, p2, f1, f2)``: g's predictions and the teacher's projections of both views."""
        (p1, p2), (f1, f2) = outs["distill_p"], outs["frozen_z"]
        return p1, p2, f1, f2

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        if self.cfg.teacher_bn_train and not self.trainer.sanity_checking:
            self._teacher_bn_train_active = True

    # ------------------------------------------------------------------ checkpoints without the teacher
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["teacher_bn_train_active"] = self._teacher_bn_train_active  # --teacher_bn_train, for a resume
        state = checkpoint.get("state_dict", {})
        for key in [k for k in state if k.startswith(TEACHER_PREFIXES)]:
            del state[key]

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        # Resuming a task mid-way: the checkpoint has no teacher; keep the one built from the previous
        # task's final weights (the official resume rebuilt it from the half-trained ones: a bug).
        super().on_load_checkpoint(checkpoint)
        self._teacher_bn_train_active = bool(checkpoint.get("teacher_bn_train_active", False))
        if self.has_teacher:
            state = checkpoint["state_dict"]
            teacher = (("frozen_encoder.", self.frozen_encoder), ("frozen_projector.", self.frozen_projector))
            for prefix, module in teacher:
                for key, value in module.state_dict().items():
                    state.setdefault(prefix + key, value)
