"""The regulariser base: a frozen teacher from the previous task and the distill predictor g.

``distill_wrapper(Method)`` returns a subclass of any SSL method that, once :meth:`build_teacher`
has been called (the driver does so from task 1 on, after loading the previous task's weights),
adds to ``multiview_forward``'s outputs

* ``frozen_z``: [f1, f2], the teacher's projections of the two views (no gradient);
* ``distill_p``: [g(z1), g(z2)], the current projections mapped into the old space by g.

The PNR and CaSSLe regularisers (pnr.py, baselines.py) subclass it and define the loss.
"""

from __future__ import annotations

import argparse
import copy
from typing import Any

import torch
import torch.nn as nn

from cassle.methods.byol import mlp_bn

# Keys a checkpoint of the previous task may lack: the distill predictor and the teacher queue are
# created at task 1 (spec 1.5).
OPTIONAL_AT_TASK_START = ("distill_predictor.", "queue2", "queue2_ptr")
# Keys of official task >= 1 checkpoints that are ignored: the teacher is rebuilt from encoder/projector.
IGNORED_ON_LOAD = ("frozen_encoder.", "frozen_projector.")


def distill_wrapper(Method: type) -> type:
    class DistillWrapper(Method):
        distiller_name: str = ""

        def __init__(self, args: argparse.Namespace):
            super().__init__(args)
            self.distill_predictor = mlp_bn(args.output_dim, args.distill_proj_hidden_dim, args.output_dim)
            self.frozen_encoder: nn.Module | None = None
            self.frozen_projector: nn.Module | None = None
            # Official CIFAR quirk (spec 1.4 step 9), only with --teacher_bn_train: after the first
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
            return super().learnable_params() + [
                {"name": "distill_predictor", "params": self.distill_predictor.parameters()}
            ]

        def distill_input(self, outs: dict[str, Any], view: int) -> torch.Tensor:
            """What g receives (DECISIONS.md): MoCo's normalised query q, else the raw projection z."""
            return outs["q"][view] if "q" in outs else outs["z"][view]

        def predict_past(self, x: torch.Tensor) -> torch.Tensor:
            return self.distill_predictor(x)

        def multiview_forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
            outs = super().multiview_forward(views)
            if not self.has_teacher:
                return outs
            bn_train = self._teacher_bn_train_active
            self.frozen_encoder.train(bn_train)
            self.frozen_projector.train(bn_train)
            with torch.no_grad():
                outs["frozen_z"] = [
                    self.frozen_projector(self.frozen_encoder(self.to_device_format(X))) for X in views
                ]
            outs["distill_p"] = [self.predict_past(self.distill_input(outs, v)) for v in range(len(views))]
            return outs

        def on_validation_epoch_end(self) -> None:
            super().on_validation_epoch_end()
            if self.args.teacher_bn_train and not self.trainer.sanity_checking:
                self._teacher_bn_train_active = True

    return DistillWrapper
