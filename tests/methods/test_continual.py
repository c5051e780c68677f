"""The task-by-task driver on real digits: every method and regulariser, carried state, teacher."""

from __future__ import annotations

import os

import pytest
import pytorch_lightning as pl
import torch

import cassle.train as train
from cassle.args.pretrain import parse_args
from cassle.distillers import RegularizerMixin
from cassle.errors import CassleError
from cassle.utils.checkpoint import load_checkpoint
from cassle.utils.manifest import RunManifest
from tests.helpers import tiny_argv

torch.set_num_threads(2)

PNR = {"simclr": "simclr_pnr", "mocov2plus": "mocov2plus_pnr", "byol": "byol_pnr",
       "barlow_twins": "barlow_pnr", "vicreg": "vicreg_pnr"}
CASSLE = {"simclr": "contrastive", "mocov2plus": "contrastive", "byol": "predictive",
          "barlow_twins": "decorrelative", "vicreg": "predictive_mse"}


def run(argv: list[str]) -> RunManifest:
    return train.run_continual(parse_args(argv))


def encoder_state(state: dict, prefix: str = "encoder.") -> dict:
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class Recorder(pl.Callback):
    """Records, per task, what the model looks like when training starts and ends."""

    def __init__(self, log: dict):
        self.records = log

    def on_train_start(self, trainer, model):
        optimizer = trainer.optimizers[0]
        self.records[model.current_task_idx] = {
            "optimizer_state_at_start": len(optimizer.state),
            "model_class": type(model),
            "start": {k: v.detach().clone() for k, v in model.state_dict().items()},
            "optimised": {id(p) for group in optimizer.param_groups for p in group["params"]},
            "teacher_params": [p for m in (getattr(model, "frozen_encoder", None),
                                           getattr(model, "frozen_projector", None)) if m is not None
                               for p in m.parameters()],
            "teacher_training": [m.training for m in model.frozen_encoder.modules()]
            if getattr(model, "frozen_encoder", None) is not None else None,
        }

    def on_train_end(self, trainer, model):
        self.records[model.current_task_idx]["end"] = {k: v.detach().clone() for k, v in model.state_dict().items()}


@pytest.fixture
def recorded(monkeypatch):
    log: dict = {}
    original = train.make_callbacks
    monkeypatch.setattr(train, "make_callbacks", lambda *a: original(*a) + [Recorder(log)])
    return log


# Fine-tuning is the plain method at every task (each method's task 0 runs in the tests below too).
@pytest.mark.parametrize("method", ["simclr", "byol"])
def test_finetune_two_tasks(tmp_path, method):
    manifest = run(tiny_argv(tmp_path, method, num_tasks=2))
    assert manifest.finished_tasks() == [0, 1]
    for task in (0, 1):
        metrics = manifest.metrics(task)
        assert 0.0 <= metrics["val_acc1"] <= 100.0
        assert {"val_acc1_task0", "val_acc1_task1", "val_loss"} <= set(metrics)
        assert os.path.isfile(manifest.checkpoint(task))


# Two tasks show each regulariser switched on at task 1; one method runs the five class-incremental tasks of
# the benchmarks; three tasks (test_state_carried_between_tasks) show every carry-over path (task 0 -> 1: a
# fresh g and teacher queue; 1 -> 2: both carried).
TWO_TASKS = ["--split_strategy", "data", "--num_tasks", "2"]
THREE_TASKS = ["--split_strategy", "data", "--num_tasks", "3"]


@pytest.mark.parametrize("regulariser", ["pnr", "cassle"])
@pytest.mark.parametrize("method", list(PNR))
def test_regularised_tasks(tmp_path, recorded, method, regulariser):
    distiller = (PNR if regulariser == "pnr" else CASSLE)[method]
    five = (method, regulariser) == ("simclr", "pnr")
    manifest = run(tiny_argv(tmp_path, method, distiller, extra=[] if five else TWO_TASKS))
    num_tasks = 5 if five else 2
    assert manifest.finished_tasks() == list(range(num_tasks))
    # Task 0 is plain SSL; from task 1 on the regulariser is on.
    assert not issubclass(recorded[0]["model_class"], RegularizerMixin)
    assert recorded[0]["teacher_params"] == []
    for task in range(1, num_tasks):
        info = recorded[task]
        assert issubclass(info["model_class"], RegularizerMixin)
        assert info["model_class"].regularizer_name == distiller
        assert info["teacher_params"], task
        previous = encoder_state(load_checkpoint(manifest.checkpoint(task - 1))["state_dict"])
        for key, value in encoder_state(info["start"], "frozen_encoder.").items():
            # The teacher is the previous task's final encoder, and does not move during the task.
            assert torch.equal(value, previous[key]), key
            assert torch.equal(info["end"][f"frozen_encoder.{key}"], value), key
        assert not any(p.requires_grad for p in info["teacher_params"])
        assert not any(id(p) in info["optimised"] for p in info["teacher_params"])
        assert not any(info["teacher_training"])  # eval mode (BatchNorm statistics frozen)
    logged = manifest.metrics(num_tasks - 1)
    expected_key = {
        "simclr_pnr": "train_simlr_pnr_loss", "mocov2plus_pnr": "train_moco_pnr_loss",
        "byol_pnr": "train_byol_pnr_negative_loss", "barlow_pnr": "train_negative_loss",
        "vicreg_pnr": "train_predictive_negative_loss", "contrastive": "train_contrastive_distill_loss",
        "predictive": "train_predictive_distill_loss", "decorrelative": "train_decorrelative_distill_loss",
        "predictive_mse": "train_predictive_mse_distill_loss",
    }[distiller]
    assert expected_key in logged


@pytest.mark.parametrize("method", ["mocov2plus", "byol"])
def test_state_carried_between_tasks(tmp_path, recorded, method):
    manifest = run(tiny_argv(tmp_path, method, PNR[method], extra=["--limit_train_batches", "2", *THREE_TASKS]))
    task0 = load_checkpoint(manifest.checkpoint(0))["state_dict"]
    start1 = recorded[1]["start"]
    carried = [k for k in task0 if k.split(".")[0] in (
        "encoder", "projector", "predictor", "momentum_encoder", "momentum_projector", "classifier",
        "momentum_classifier", "queue", "queue_ptr")]
    assert carried
    for key in carried:
        assert torch.equal(start1[key], task0[key]), key
    if method == "mocov2plus":
        assert int(task0["queue_ptr"]) == 2 * 16 % 64  # two steps of 16 keys were enqueued in task 0
        # The teacher queue appears at task 1 and is then carried from task 1 to task 2.
        task1 = load_checkpoint(manifest.checkpoint(1))["state_dict"]
        assert torch.equal(recorded[2]["start"]["queue2"], task1["queue2"])
        assert torch.equal(recorded[2]["start"]["distill_predictor.0.weight"], task1["distill_predictor.0.weight"])
    for task in range(3):
        assert recorded[task]["optimizer_state_at_start"] == 0  # a fresh optimiser every task


def test_load_task0_equals_continuous_run(tmp_path):
    continuous = run(tiny_argv(tmp_path / "a", "byol", "byol_pnr", num_tasks=2, extra=["--limit_train_batches", "2"]))
    task0 = continuous.checkpoint(0)
    resumed = run(tiny_argv(tmp_path / "b", "byol", "byol_pnr", num_tasks=2,
                            extra=["--limit_train_batches", "2", "--task_idx", "1", "--pretrained_model", task0]))
    assert resumed.finished_tasks() == [1]
    a = load_checkpoint(continuous.checkpoint(1))["state_dict"]
    b = load_checkpoint(resumed.checkpoint(1))["state_dict"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_teacher_bn_train_flag_reproduces_the_official_quirk(tmp_path, monkeypatch):
    modes = []
    original = train.build_model

    def build(args, task):
        model = original(args, task)
        if task == 1:
            forward = model.multiview_forward

            def spy(views):
                outs = forward(views)
                modes.append(model.frozen_encoder.bn1.training)
                return outs

            model.multiview_forward = spy
        return model

    monkeypatch.setattr(train, "build_model", build)
    run(tiny_argv(tmp_path, "simclr", "simclr_pnr", num_tasks=2,
                  extra=["--max_epochs", "2", "--teacher_bn_train"]))
    # Epoch 1: eval mode; after the first validation: train mode, as the official CIFAR runs.
    assert modes == [False, True]


def test_non_finite_loss_stops_the_task_and_keeps_earlier_ones(tmp_path, monkeypatch):
    from cassle.methods.simclr import SimCLR

    original = SimCLR.ssl_loss

    def nan_at_task1(self, outs):
        loss, logs = original(self, outs)
        return (loss * float("nan") if self.current_task_idx == 1 else loss), logs

    monkeypatch.setattr(SimCLR, "ssl_loss", nan_at_task1)
    with pytest.raises(CassleError, match="task 1: the loss became nan"):
        run(tiny_argv(tmp_path, "simclr", num_tasks=2))
    manifest = RunManifest(str(tmp_path / "run"))
    assert manifest.finished_tasks() == [0]
    assert os.path.isfile(manifest.checkpoint(0))
    assert not os.path.exists(tmp_path / "run" / "task1" / "final.ckpt")
