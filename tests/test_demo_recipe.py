"""The Makefile's CPU recipes: what `make demo` and `make gpu-check` run, and why the demo has no warm-up.

The demo's epochs have 4 steps. Its former recipe warmed up for 2 epochs, which with the per-epoch schedule
(the (W - 1) divisor) is one jump of the learning rate from 0.003 to the base rate. SGD's momentum buffer
holds the gradients of the small-rate epoch, which LARS left unscaled (its clipped trust ratio is 1 at a
rate that small), and the jump applies that whole buffer at the full rate: the online classifier's first
full-rate step was 30 times the previous ones and its loss went from 2.35 to 17.5.
"""

from __future__ import annotations

import shlex
import subprocess

import pytest
import torch

from cassle.args.pretrain import parse_args
from cassle.utils.lars import LARS
from cassle.utils.schedulers import lr_at_epoch
from tests.helpers import ROOT


def make_dry(target: str) -> list[str]:
    """The commands `make <target>` would run (nothing runs)."""
    # --no-print-directory: run from another make (CI's `make test`), make prints "Entering directory" lines
    out = subprocess.run(["make", "--no-print-directory", "-n", target, "VENV=/nonexistent-venv"], cwd=ROOT,
                         capture_output=True, text=True, check=True).stdout
    return out.splitlines()


def demo_config():
    line = next(line for line in make_dry("demo") if "main_pretrain.py" in line)
    argv = shlex.split(line)
    return parse_args(argv[argv.index("main_pretrain.py") + 1:] + ["--dry_run"])


def test_demo_uses_the_machines_precision_and_a_schedule_without_jumps():
    cfg = demo_config()
    assert cfg.trainer.precision is None and cfg.trainer.accelerator == "cpu"  # never bf16 hard-coded on a CPU
    opt = cfg.optim
    lrs = [lr_at_epoch(opt.scheduler, e, opt.lr_scaled, warmup_epochs=opt.warmup_epochs,
                       max_epochs=opt.max_epochs, warmup_start_lr=opt.warmup_start_lr, eta_min=opt.min_lr)
           for e in range(opt.max_epochs)]
    assert all(later <= earlier for earlier, later in zip(lrs, lrs[1:])), lrs
    assert cfg.model.online_eval is False and cfg.run.eval_every_task


def test_gpu_check_target_uses_the_python_it_finds():
    lines = make_dry("gpu-check")
    assert lines == ["python3 -m cassle.gpu_check "], lines  # no .venv, no pip


def _classifier_steps(warmup_epochs: int) -> list[float]:
    """Norms of the weight updates of a 10-way linear classifier on post-ReLU features of norm ~20, under the
    demo's optimiser (LARS eta 0.02 with clipping, biases excluded, momentum 0.9, classifier lr 0.1) and
    per-epoch schedule (4 steps per epoch, 8 epochs)."""
    torch.manual_seed(0)
    dim, classes, batch = 512, 10, 64
    mean, protos = torch.rand(dim) * 1.2, torch.randn(classes, dim) * 0.3
    classifier = torch.nn.Linear(dim, classes)
    optimizer = LARS([{"params": classifier.parameters(), "lr": 0.1, "weight_decay": 0.0}], lr=0.1, momentum=0.9,
                     eta=0.02, clip_lr=True, exclude_bias_n_norm=True)
    steps = []
    for epoch in range(8):
        for group in optimizer.param_groups:
            group["lr"] = lr_at_epoch("warmup_cosine", epoch, 0.1, warmup_epochs=warmup_epochs, max_epochs=8,
                                      warmup_start_lr=0.003, eta_min=0.0)
        for _ in range(4):
            y = torch.randint(0, classes, (batch,))
            x = torch.relu(mean + protos[y] + 0.5 * torch.randn(batch, dim))
            loss = torch.nn.functional.cross_entropy(classifier(x), y)
            optimizer.zero_grad()
            loss.backward()
            before = classifier.weight.detach().clone()
            optimizer.step()
            steps.append(float((classifier.weight - before).norm()))
    return steps


@pytest.mark.parametrize("warmup_epochs, blows_up", [(2, True), (0, False)])
def test_a_one_jump_warm_up_throws_the_momentum_buffer_at_the_full_rate(warmup_epochs, blows_up):
    steps = _classifier_steps(warmup_epochs)
    # Under LARS a step is at most eta x |W| (about 0.04 here) times the momentum's accumulation.
    jump = steps[4] / max(steps[:4])
    assert (jump > 10) is blows_up, (jump, steps[:6])
    assert (max(steps) > 0.5) is blows_up, max(steps)
