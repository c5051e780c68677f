"""Shared helpers for tests that run the real driver on the embedded digits data."""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small heads keep a step fast; the ResNet-18 trunk and the 16 px digits are the real ones.
METHOD_SIZES = {
    "simclr": ["--proj_hidden_dim", "32", "--output_dim", "16"],
    "mocov2plus": ["--proj_hidden_dim", "32", "--output_dim", "16", "--queue_size", "64",
                   "--momentum_classifier"],
    "byol": ["--proj_hidden_dim", "32", "--pred_hidden_dim", "32", "--output_dim", "16",
             "--momentum_classifier"],
    "barlow_twins": ["--proj_hidden_dim", "32", "--output_dim", "32"],
    "vicreg": ["--proj_hidden_dim", "32", "--output_dim", "32"],
}


def tiny_argv(checkpoint_dir: str, method: str = "simclr", distiller: str | None = None,
              num_tasks: int = 5, name: str = "run", extra: list[str] | None = None) -> list[str]:
    """A real pretraining command line shrunk to a few tiny steps per task, in fp32 on every CPU (the
    automatic choice would be bf16 on CPUs with native bf16, which changes the numbers)."""
    argv = [
        "--dataset", "digits", "--method", method, "--accelerator", "cpu", "--precision", "32",
        "--num_tasks", str(num_tasks), "--max_epochs", "1", "--limit_train_batches", "1",
        "--limit_val_batches", "1", "--batch_size", "16", "--num_workers", "0",
        "--distill_proj_hidden_dim", "32", "--checkpoint_dir", str(checkpoint_dir), "--name", name,
        *METHOD_SIZES[method],
    ]
    if distiller:
        argv += ["--distiller", distiller]
    return argv + list(extra or [])


def run_cli(script: str, argv: list[str], **kwargs) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONUNBUFFERED="1", WANDB_MODE="disabled", OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, os.path.join(ROOT, script), *argv], capture_output=True,
                          text=True, env=env, cwd=ROOT, **kwargs)


def assert_one_line_error(result: subprocess.CompletedProcess, *fragments: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])
