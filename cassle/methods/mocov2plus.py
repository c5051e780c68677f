"""MoCo V2+ (docs/official.md §4.2): symmetric InfoNCE against momentum keys and two FIFO key queues."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from cassle.config import ModelConfig
from cassle.losses.moco import moco_loss_func, moco_multicrop_loss_func
from cassle.methods.base import BaseMomentumMethod
from cassle.methods.simclr import relu_projector
from cassle.utils.gather import gather


class MoCoV2Plus(BaseMomentumMethod):
    """Queue ``queue[v]`` holds past keys of large crop v (2 x D x K with two crops); keys are gathered
    from all devices before they are enqueued, so the queue matches one device with the global batch."""

    # A regulariser's g receives the normalised query q (and normalises its output again).
    distill_input_key = "q"

    def __init__(self, cfg: ModelConfig, task_idx: int = 0):
        super().__init__(cfg, task_idx)
        self.projector = relu_projector(self.features_dim, cfg.proj_hidden_dim, cfg.output_dim)
        self.build_momentum_projector()
        queue = torch.randn(cfg.num_large_crops, cfg.output_dim, cfg.params.queue_size)
        self.register_buffer("queue", F.normalize(queue, dim=1))
        self.register_buffer("queue_ptr", torch.zeros(1, dtype=torch.long))

    @staticmethod
    def enqueue(queue: torch.Tensor, ptr: torch.Tensor, items: list[torch.Tensor]) -> None:
        """Write ``items[v]`` (B, D) into ``queue[v]`` at the pointer (FIFO), gathered over devices."""
        batch = [gather(item.detach()) for item in items]
        size = batch[0].shape[0]
        capacity = queue.shape[-1]
        if capacity % size != 0:
            raise ValueError(f"--queue_size ({capacity}) must be a multiple of the global batch ({size})")
        start = int(ptr)
        for v, keys in enumerate(batch):
            queue[v, :, start:start + size] = keys.to(queue.dtype).T
        ptr[0] = (start + size) % capacity

    def multiview_forward(self, views: list[torch.Tensor]) -> dict[str, Any]:
        outs = super().multiview_forward(views)
        outs["q"] = [F.normalize(z, dim=-1) for z in outs["z"]]
        outs["k"] = [F.normalize(z, dim=-1) for z in outs["momentum_z"]]
        # The losses use a copy taken before this step's keys are enqueued (docs/decisions.md §D3.4).
        outs["queue"] = self.queue.clone().detach()
        self.enqueue(self.queue, self.queue_ptr, outs["k"])
        return outs

    def ssl_loss(self, outs: dict[str, Any]) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        q, k, queue = outs["q"], outs["k"], outs["queue"]
        T = self.cfg.params.temperature
        if len(q) == 2:
            loss = 0.5 * (moco_loss_func(q[0], k[1], queue[1], T) + moco_loss_func(q[1], k[0], queue[0], T))
        else:  # each crop's query against the keys (and queues) of the other large crops
            loss = moco_multicrop_loss_func(q, k, queue, T)
        return loss, {"train_nce_loss": loss}
