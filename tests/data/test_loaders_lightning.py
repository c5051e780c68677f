"""A real Trainer sets the loaders' epochs; a run resumed at epoch 1 sees the batches and augmentations of
the uninterrupted run's epoch 1 (both data paths, CPU workers on the faithful one)."""

import numpy as np
import pytest
import pytorch_lightning as pl
import torch
from pytorch_lightning.utilities import CombinedLoader

from cassle.data.datasets import ArrayImageDataset
from cassle.data.info import DATASET_INFO
from cassle.data.loaders import build_train_loaders

CIFAR = DATASET_INFO["cifar100"]
VIEWS = [dict(size=8, gaussian_prob=0.0, solarization_prob=0.0), dict(size=8, gaussian_prob=0.0,
                                                                       solarization_prob=0.2)]


class Recorder(pl.LightningModule):
    """Records, at every step, the epochs the loaders were set to and a fingerprint of each batch."""

    def __init__(self, loaders):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.loaders = loaders
        self.seen = []

    def training_step(self, batch, batch_idx):
        idx, (x1, x2), _ = batch["task0"]
        oidx, ox, _ = batch["online_eval"]
        self.seen.append((
            self.current_epoch,
            {name: loader.epoch for name, loader in self.loaders.items()},
            idx.tolist(), oidx.tolist(),
            [round(float(x.double().sum()), 6) for x in (x1, x2, ox)],
        ))
        return (self.weight - 1.0).pow(2).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SaveAfterFirstEpoch(pl.Callback):
    def __init__(self, path):
        self.path = path

    def on_train_epoch_end(self, trainer, pl_module):
        if trainer.current_epoch == 0:
            trainer.save_checkpoint(self.path)


def fit(base, fast, ckpt_path=None, save_to=None):
    loaders = build_train_loaders(base, list(range(12)), VIEWS, CIFAR["mean"], CIFAR["std"], batch_size=4,
                                  num_workers=0 if fast else 1, seed=5, task=0, online_eval_view=VIEWS[-1],
                                  fast=fast)
    model = Recorder(loaders)
    trainer = pl.Trainer(max_epochs=2, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[SaveAfterFirstEpoch(save_to)] if save_to else [])
    trainer.fit(model, train_dataloaders=CombinedLoader(loaders, mode="min_size"), ckpt_path=ckpt_path)
    return model.seen


@pytest.mark.parametrize("fast", [False, True], ids=["faithful", "device"])
def test_trainer_sets_epochs_and_a_resumed_run_repeats_epoch_1(tmp_path, fast):
    rng = np.random.default_rng(0)
    base = ArrayImageDataset(rng.integers(0, 256, (16, 8, 8, 3), dtype=np.uint8), [i % 4 for i in range(16)])
    ckpt = str(tmp_path / "epoch0.ckpt")
    full = fit(base, fast, save_to=ckpt)
    assert [step[0] for step in full] == [0, 0, 0, 1, 1, 1]  # min_size: 12 // 4 task batches per epoch
    assert all(step[1] == {"task0": step[0], "online_eval": step[0]} for step in full)
    assert [step[2:] for step in full[:3]] != [step[2:] for step in full[3:]]  # a new order and new views

    resumed = fit(base, fast, ckpt_path=ckpt)
    assert resumed == full[3:]
