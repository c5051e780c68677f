"""`make test-ddp`: every regulariser under DDP, the official unused-parameter semantics, a killed DDP run
resumed, and a torchrun launch (2 CPU processes each; several minutes in all)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import torch

from cassle.registry import METHODS
from cassle.utils.checkpoint import load_checkpoint
from cassle.utils.manifest import RunManifest
from tests.ddp.helpers import ddp_env, digests, run_ddp, tiny_ddp_argv, writes
from tests.helpers import ROOT, tiny_argv

pytestmark = pytest.mark.ddp
PAIRS = [(m, r) for m, spec in METHODS.items() for r in spec.regularizers]


@pytest.mark.parametrize("method, regularizer", PAIRS, ids=[f"{m}-{r}" for m, r in PAIRS])
def test_every_regulariser_under_ddp(tmp_path, method, regularizer):
    result = run_ddp(tmp_path, tiny_ddp_argv(tmp_path, method, regularizer))
    assert result.returncode == 0, result.stderr[-3000:]
    assert RunManifest(str(tmp_path / "runs" / "run")).finished_tasks() == [0, 1]
    seen = digests(tmp_path)
    assert seen[(1, 0)]["sha256"] == seen[(1, 1)]["sha256"]
    assert {pid for pid, _ in writes(tmp_path)} == {seen[(0, 0)]["pid"]}


def test_online_evaluation_off_trains_as_with_the_official_unused_parameter_search(tmp_path):
    """Without online evaluation the classifiers get no gradient. Here they are left out of the optimiser
    (plain `ddp`); the official Lightning 1.5 kept them and searched for unused parameters
    (`ddp_find_unused_parameters_true`). The weights are the same either way."""
    states, optimised = {}, {}
    for strategy in ("ddp", "ddp_find_unused_parameters_true"):
        out = tmp_path / strategy
        out.mkdir()
        argv = tiny_argv(out / "runs", "byol", "byol_pnr", num_tasks=2,
                         extra=["--devices", "2", "--strategy", strategy, "--limit_train_batches", "2",
                                "--no_online_eval"])
        result = run_ddp(out, argv)
        assert result.returncode == 0, result.stderr[-3000:]
        states[strategy] = load_checkpoint(str(out / "runs" / "run" / "task1" / "final.ckpt"))["state_dict"]
        optimised[strategy] = digests(out)[(1, 0)]["optimised"]
    a, b = states["ddp"], states["ddp_find_unused_parameters_true"]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    classifiers = sum(v.numel() for k, v in a.items() if k.split(".")[0] in ("classifier", "momentum_classifier"))
    assert optimised["ddp_find_unused_parameters_true"] - optimised["ddp"] == classifiers > 0


def test_ddp_run_killed_during_task1_resumes(tmp_path):
    argv = tiny_ddp_argv(tmp_path, "simclr", "simclr_pnr", extra=["--max_epochs", "3"])
    env = ddp_env(tmp_path)
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *argv], env=env, cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    last = tmp_path / "runs" / "run" / "task1" / "last.ckpt"
    deadline = time.time() + 600
    while not last.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    assert last.exists(), proc.stderr.read()[-3000:] if proc.poll() is not None else "no task-1 checkpoint"
    os.killpg(proc.pid, signal.SIGKILL)  # the whole job, as a scheduler kills it
    proc.wait()
    resumed = run_ddp(tmp_path, argv + ["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "task 0: finished earlier" in resumed.stderr and "task 1: continuing from" in resumed.stderr
    assert RunManifest(str(tmp_path / "runs" / "run")).finished_tasks() == [0, 1]


def test_torchrun_launch(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port)]
    result = run_ddp(tmp_path, tiny_ddp_argv(tmp_path, "byol", "byol_pnr"), launcher=launcher)
    assert result.returncode == 0, result.stderr[-3000:]
    assert RunManifest(str(tmp_path / "runs" / "run")).finished_tasks() == [0, 1]
    seen = digests(tmp_path)
    assert seen[(1, 0)]["sha256"] == seen[(1, 1)]["sha256"]
    assert {pid for pid, _ in writes(tmp_path)} == {seen[(0, 0)]["pid"]}
