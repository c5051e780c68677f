"""main_pretrain.py as a user runs it: --dry_run, one-line errors, kill and --resume."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.faults.helpers import run_main
from tests.helpers import ROOT, assert_one_line_error, run_cli, tiny_argv

# docs/official.md §2.1: seed_everything(5); torch.randperm(100).chunk(5), checked with real torch.
CIFAR_SEED5_BLOCKS = [
    [11, 15, 20, 22, 23, 29, 30, 39, 42, 53, 55, 63, 64, 68, 69, 73, 78, 79, 81, 86],
    [3, 4, 6, 7, 14, 37, 40, 45, 50, 51, 54, 58, 67, 75, 83, 89, 92, 96, 97, 98],
    [5, 8, 12, 16, 27, 28, 31, 34, 35, 49, 59, 60, 66, 71, 72, 76, 82, 84, 87, 99],
    [0, 1, 2, 13, 17, 18, 19, 25, 36, 38, 46, 52, 61, 62, 74, 77, 80, 85, 91, 94],
    [9, 10, 21, 24, 26, 32, 33, 41, 43, 44, 47, 48, 56, 57, 65, 70, 88, 90, 93, 95],
]


def dry_run(*argv: str) -> dict:
    result = run_cli("main_pretrain.py", [*argv, "--dry_run"])
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_dry_run_cifar_seed5_split_and_legacy_flags():
    config = dry_run("--dataset", "cifar100", "--data_dir", "/nonexistent", "--method", "simclr",
                     "--seed", "5", "--gpus", "0,1", "--accelerator", "ddp", "--precision", "16",
                     "--batch_size", "128", "--lr", "0.4")
    assert [sorted(block) for block in config["tasks"]] == CIFAR_SEED5_BLOCKS
    assert config["devices"] == [0, 1] and config["strategy"] == "ddp" and config["accelerator"] == "gpu"
    assert config["precision"] == "16-mixed"
    assert config["lr"] == 0.4 and config["lr_scaled"] == pytest.approx(0.4 * 128 * 2 / 256)
    assert config["temperature"] == 0.1  # SimCLR's parser default (MoCo's is 0.2)


def test_dry_run_changes_with_seed_and_method_defaults():
    config = dry_run("--dataset", "cifar100", "--method", "mocov2plus", "--seed", "6")
    assert [sorted(b) for b in config["tasks"]] != CIFAR_SEED5_BLOCKS
    assert config["temperature"] == 0.2 and config["output_dim"] == 128 and config["queue_size"] == 65536
    vicreg = dry_run("--method", "vicreg", "--distiller", "vicreg_pnr")
    assert vicreg["distill_lamb"] == 25.0 and vicreg["negative_lamb"] == 23.0


def test_dry_run_multicrop_settings():
    config = dry_run("--dataset", "imagenet100", "--num_crops", "3", "--multicrop", "--num_small_crops", "4",
                     "--small_size", "64", "--small_max_scale", "0.2")
    crops = config["transform_kwargs"]
    assert [c["size"] for c in crops] == [224] * 3 + [64] * 4
    assert [c.get("max_scale") for c in crops] == [None] * 3 + [0.2] * 4
    assert [c["min_scale"] for c in crops] == [0.08] * 3 + [0.05] * 4


def test_dry_run_imports_neither_torch_nor_lightning_and_is_fast():
    code = (
        "import sys, time; t = time.time(); sys.argv = ['main_pretrain.py', '--dataset', 'cifar100', '--dry_run'];"
        "import main_pretrain; rc = main_pretrain.main(['--dataset', 'cifar100', '--dry_run']);"
        "heavy = [m for m in ('torch', 'pytorch_lightning', 'lightning', 'wandb', 'numpy') if m in sys.modules];"
        "print('HEAVY', heavy, time.time() - t, file=sys.stderr)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    line = [text for text in result.stderr.splitlines() if text.startswith("HEAVY")][0]
    assert line.startswith("HEAVY []"), line
    assert float(line.split()[-1]) < 0.5, line


@pytest.mark.parametrize(
    "argv, fragment",
    [
        (["--method", "byol", "--distiller", "simclr_pnr"], "--distiller simclr_pnr"),
        (["--method", "vicreg", "--distiller", "vicreg_pnr", "--negative_lamb", "25"], "unbounded"),
        (["--num_tasks", "3"], "--num_tasks"),
        (["--split_strategy", "domain"], "--split_strategy domain"),
        (["--gaussian_prob", "0.1", "0.2", "0.3"], "--gaussian_prob"),
        (["--num_small_crops", "2"], "--multicrop"),
        (["--multicrop", "--num_small_crops", "2", "--solarization_prob", "0", "0.2"], "--solarization_prob"),
        (["--gpus", "a,b"], "--gpus"),
        (["--task_idx", "7"], "--task_idx"),
        (["--method", "mocov2plus", "--queue_size", "1000", "--batch_size", "256"], "--queue_size"),
    ],
)
def test_bad_flags_are_one_line_errors(argv, fragment):
    assert_one_line_error(run_cli("main_pretrain.py", [*argv, "--dry_run"]), fragment)


def test_task_idx_without_a_start_checkpoint(tmp_path):
    # in this process (tests/faults/ holds the rest of the catalogue of bad inputs)
    result = run_main(tiny_argv(tmp_path, extra=["--task_idx", "1"]))
    assert_one_line_error(result, "--pretrained_model")
    assert not os.listdir(tmp_path)


def _digest(path: str) -> str:
    with open(path, "rb") as handle:
        return hashlib.sha256(handle.read()).hexdigest()


@pytest.mark.faults
def test_kill_during_task2_then_resume(tmp_path):
    argv = tiny_argv(tmp_path, "simclr", "simclr_pnr", extra=["--max_epochs", "3"])
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="2")
    process = subprocess.Popen([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *argv],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=ROOT)
    mid_task2 = tmp_path / "run" / "task2" / "last.ckpt"
    deadline = time.time() + 300
    while not mid_task2.exists() and process.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert mid_task2.exists(), "the run never reached task 2"
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert sorted(manifest["tasks"]) == ["0", "1"]
    finals = {t: str(tmp_path / "run" / f"task{t}" / "final.ckpt") for t in (0, 1)}
    before = {t: (_digest(p), os.stat(p).st_mtime_ns) for t, p in finals.items()}

    resumed = run_cli("main_pretrain.py", [*argv, "--resume"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "task 0: finished earlier, skipped" in resumed.stderr
    assert "task 1: finished earlier, skipped" in resumed.stderr
    assert "task 2: continuing from" in resumed.stderr
    assert "task 2  epoch 3/3" in resumed.stderr
    assert "task 2  epoch 1/3" not in resumed.stderr  # epoch 1 of task 2 was not trained again
    assert "task 1  epoch" not in resumed.stderr
    for t, path in finals.items():
        assert (_digest(path), os.stat(path).st_mtime_ns) == before[t]
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    assert sorted(manifest["tasks"]) == ["0", "1", "2", "3", "4"]
    assert not mid_task2.exists()


def test_wandb_offline_logs_one_run_per_task(tmp_path):
    env = dict(os.environ, WANDB_MODE="offline", WANDB_SILENT="true", OMP_NUM_THREADS="2",
               WANDB_DIR=str(tmp_path))
    argv = tiny_argv(tmp_path, "simclr", num_tasks=2, extra=["--wandb", "--offline", "--project", "p"])
    result = subprocess.run([sys.executable, os.path.join(ROOT, "main_pretrain.py"), *argv],
                            capture_output=True, text=True, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = []
    for _folder, _, files in os.walk(tmp_path):
        runs += [f for f in files if f.endswith(".wandb")]
    assert len(runs) == 2, runs


def test_without_wandb_flag_wandb_is_not_imported(tmp_path, monkeypatch):
    code = (
        "import sys, main_pretrain; rc = main_pretrain.main(sys.argv[1:]);"
        "print('WANDB', 'wandb' in sys.modules, file=sys.stderr); sys.exit(rc)"
    )
    result = subprocess.run([sys.executable, "-c", code, *tiny_argv(tmp_path, num_tasks=2)],
                            capture_output=True, text=True, cwd=ROOT, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WANDB False" in result.stderr
