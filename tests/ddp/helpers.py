"""Running the real command line under DDP on the CPU (gloo): two processes started by Lightning or torchrun."""

from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
from collections import Counter

from tests.helpers import ROOT, tiny_argv

DDP = ["--devices", "2", "--strategy", "ddp"]


def ddp_env(tmp_path) -> dict[str, str]:
    digests = tmp_path / "digests"
    digests.mkdir(exist_ok=True)
    return dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="disabled", OMP_NUM_THREADS="1",
                CASSLE_CALLBACKS="tests.ddp.callbacks:WeightDigest", CASSLE_DIGEST_DIR=str(digests),
                CASSLE_WRITE_LOG=str(tmp_path / "writes.log"), PYTHONPATH=ROOT)


def run_ddp(tmp_path, argv: list[str], launcher: list[str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    command = [sys.executable, *(launcher or []), os.path.join(ROOT, "main_pretrain.py"), *argv]
    return subprocess.run(command, capture_output=True, text=True, env=ddp_env(tmp_path), cwd=ROOT,
                          timeout=kwargs.pop("timeout", 900), **kwargs)


def digests(tmp_path) -> dict[tuple[int, int], dict]:
    """{(task, rank): what WeightDigest wrote}."""
    out = {}
    for path in glob.glob(str(tmp_path / "digests" / "task*-rank*.json")):
        name = os.path.basename(path)[4:-5]
        task, rank = name.split("-rank")
        out[(int(task), int(rank))] = json.load(open(path))
    return out


def writes(tmp_path) -> list[tuple[int, str]]:
    """(pid, path) of every file written (cassle.utils.files.log_write), in order."""
    path = tmp_path / "writes.log"
    if not path.exists():
        return []
    return [(int(pid), p) for pid, p in (line.split(" ", 1) for line in path.read_text().splitlines())]


def tiny_ddp_argv(tmp_path, method, distiller, num_tasks=2, extra=None):
    return tiny_argv(tmp_path / "runs", method, distiller, num_tasks=num_tasks,
                     extra=DDP + ["--limit_train_batches", "2", *(extra or [])])


def write_counts(tmp_path) -> Counter:
    return Counter(path for _, path in writes(tmp_path))
