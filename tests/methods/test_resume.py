"""A task resumed in the middle is the same task: the learning rate of every epoch, the teacher, the final
weights, the metrics and metrics.csv equal those of the uninterrupted run (epoch-exact resume, on the CPU)."""

from __future__ import annotations

import signal

import pytest
import pytorch_lightning as pl
import torch

import cassle.train as train
from cassle.args.pretrain import parse_args
from cassle.utils.checkpoint import load_checkpoint
from tests.helpers import tiny_argv

torch.set_num_threads(2)
ARGV_EXTRA = ["--max_epochs", "3", "--warmup_epochs", "2", "--split_strategy", "data", "--num_tasks", "2"]


class Observe(pl.Callback):
    """Records each epoch's learning rates (at its first batch, after the schedule set them) and the teacher
    at the start of each task; with ``stop_at=(task, epoch)`` it stops the run there as SIGTERM would."""

    def __init__(self, records: dict, stop_at: tuple[int, int] | None = None):
        self.records, self.stop_at = records, stop_at

    def on_train_start(self, trainer, module):
        if getattr(module, "frozen_encoder", None) is not None:
            teacher = module.frozen_encoder.state_dict()
            self.records[("teacher", module.current_task_idx)] = {k: v.clone() for k, v in teacher.items()}

    def on_train_batch_start(self, trainer, module, batch, batch_idx):
        if batch_idx == 0:
            self.records[("lr", module.current_task_idx, trainer.current_epoch)] = [
                g["lr"] for g in trainer.optimizers[0].param_groups]

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.stop_at == (module.current_task_idx, trainer.current_epoch):
            train.SIGNALS.received = signal.SIGTERM  # what the SIGTERM handler does
            train.SIGNALS.request_stop(trainer)


MAKE_CALLBACKS = train.make_callbacks  # the driver's own (each run below replaces it once more)


def run(tmp_path, monkeypatch, records, stop_at=None, resume=False):
    monkeypatch.setattr(train, "make_callbacks", lambda *a, **k: MAKE_CALLBACKS(*a, **k) + [Observe(records, stop_at)])
    argv = tiny_argv(tmp_path, "byol", "byol_pnr", extra=ARGV_EXTRA + (["--resume"] if resume else []))
    return train.run_continual(parse_args(argv))


def test_resume_in_the_middle_of_a_task_is_the_same_task(tmp_path, monkeypatch):
    whole: dict = {}
    reference = run(tmp_path / "whole", monkeypatch, whole)
    cut: dict = {}
    with pytest.raises(train.Interrupted) as stopped:
        run(tmp_path / "cut", monkeypatch, cut, stop_at=(1, 1))  # task 1, during epoch 2 of 3
    assert stopped.value.exit_code == 143 and "--resume" in str(stopped.value)
    assert (tmp_path / "cut" / "run" / "task1" / "last.ckpt").exists()
    resumed_log: dict = {}
    resumed = run(tmp_path / "cut", monkeypatch, resumed_log, resume=True)
    # The resumed task restarts at epoch 2 with the same learning rates as the uninterrupted one.
    assert ("lr", 1, 0) not in resumed_log and ("lr", 0, 0) not in resumed_log
    for epoch in (1, 2):
        assert resumed_log[("lr", 1, epoch)] == whole[("lr", 1, epoch)], epoch
    assert whole[("lr", 1, 0)] != whole[("lr", 1, 1)]  # the schedule moves: the comparison can fail
    # The teacher is rebuilt from task 0's final weights (the official code took the half-trained ones).
    task0 = load_checkpoint(str(tmp_path / "cut" / "run" / "task0" / "final.ckpt"))["state_dict"]
    for key, value in resumed_log[("teacher", 1)].items():
        assert torch.equal(value, task0[f"encoder.{key}"]), key
    # Same weights, metrics and metrics.csv as the run that was never interrupted.
    a = load_checkpoint(reference.checkpoint(1))["state_dict"]
    b = load_checkpoint(resumed.checkpoint(1))["state_dict"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert reference.metrics(1) == resumed.metrics(1)
    for task in (0, 1):
        whole_csv, cut_csv = (tmp_path / run / "run" / f"task{task}" / "metrics.csv" for run in ("whole", "cut"))
        assert whole_csv.read_text() == cut_csv.read_text(), task
