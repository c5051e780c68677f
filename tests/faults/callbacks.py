"""Lightning callbacks that the fault tests add to the driver's Trainers through ``$CASSLE_CALLBACKS``."""

from __future__ import annotations

import os
import signal

import pytorch_lightning as pl


class SignalAtTrainEnd(pl.Callback):
    """Sends ``$CASSLE_TEST_SIGNAL`` (a name such as ``SIGINT``) to this process when task
    ``$CASSLE_TEST_SIGNAL_TASK`` ends its training: the signal arrives while the task's final checkpoint is
    still to be written, so the run stops between two tasks."""

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if pl_module.current_task_idx == int(os.environ["CASSLE_TEST_SIGNAL_TASK"]):
            os.kill(os.getpid(), getattr(signal, os.environ["CASSLE_TEST_SIGNAL"]))


class SignalAtBatchEnd(pl.Callback):
    """Sends ``$CASSLE_TEST_SIGNAL`` to this process at the end of one training batch, given as
    ``$CASSLE_TEST_SIGNAL_AT`` = ``<task>:<epoch>:<batch>`` (0-based): a signal in the middle of an epoch."""

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs, batch,
                           batch_idx: int) -> None:
        task, epoch, index = (int(part) for part in os.environ["CASSLE_TEST_SIGNAL_AT"].split(":"))
        if (pl_module.current_task_idx, trainer.current_epoch, batch_idx) == (task, epoch, index):
            os.kill(os.getpid(), getattr(signal, os.environ["CASSLE_TEST_SIGNAL"]))


class WaitForRelease(pl.Callback):
    """Holds the first task's training at its start until the file ``$CASSLE_TEST_RELEASE`` exists: the
    run keeps its folder (and lock) while a test runs a second job on it."""

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        import time

        while not os.path.exists(os.environ["CASSLE_TEST_RELEASE"]):
            time.sleep(0.05)
