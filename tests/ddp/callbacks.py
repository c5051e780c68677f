"""Callbacks the DDP tests add to every Trainer of a run (``$CASSLE_CALLBACKS``, cassle.train.extra_callbacks)."""

from __future__ import annotations

import hashlib
import json
import os

import pytorch_lightning as pl


class WeightDigest(pl.Callback):
    """At the end of each task, every rank writes ``$CASSLE_DIGEST_DIR/task<t>-rank<r>.json``: a SHA-256 of its
    model's weights and buffers (the frozen teacher included), and its number of optimised parameters."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        digest = hashlib.sha256()
        for key, value in sorted(pl_module.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
        optimised = sum(p.numel() for group in trainer.optimizers[0].param_groups for p in group["params"])
        name = f"task{pl_module.current_task_idx}-rank{trainer.global_rank}.json"
        out = os.path.join(os.environ["CASSLE_DIGEST_DIR"], name)
        with open(out, "w") as handle:
            json.dump({"sha256": digest.hexdigest(), "optimised": optimised, "pid": os.getpid(),
                       "world_size": trainer.world_size}, handle)
