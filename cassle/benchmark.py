"""Throughput benchmark: the faithful data path (PIL + torchvision in CPU workers) beside the fast one
(uint8 images on the device, both views augmented there in batches), for each method with and without
PNR, through the real training step (Lightning Trainer, online classifier included).

Examples:
    # the official CIFAR setting (batch 256, 32 px), every method, on a GPU
    python -m cassle.benchmark --precision 16 --channels_last
    # a quick look on a CPU (under 2 minutes on 2 cores)
    python -m cassle.benchmark --methods simclr byol --batch_size 32 --steps 3 --warmup 1

Synthetic uint8 images stand in for the dataset: content does not change the cost of a step.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import subprocess
import sys
import time
from typing import Any

from cassle.args.pretrain import parse_args as parse_pretrain_args
from cassle.config import PretrainConfig
from cassle.registry import METHODS, method_spec, regularizer_of
from cassle.utils.report import markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Optimiser steps of a whole official run: tasks x epochs x floor(task images / 256).
FULL_RUNS = {
    "cifar100": ("CIFAR-100 5 tasks x 500 epochs", 5 * 500 * (10000 // 256), 256),
    "imagenet100": ("ImageNet-100 5 tasks x 400 epochs", 5 * 400 * (26000 // 256), 256),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cassle.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--regularizers", nargs="+", choices=["none", "pnr"], default=["none", "pnr"])
    p.add_argument("--paths", nargs="+", choices=["faithful", "fast"], default=["faithful", "fast"])
    p.add_argument("--dataset", choices=sorted(FULL_RUNS), default="cifar100",
                   help="cifar100: 32 px and the small-image stem; imagenet100: 224 px crops of 256 px images")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps first (at least 1; cover the workers' prefetch, 2 x --num_workers)")
    p.add_argument("--num_workers", type=int, default=4, help="CPU workers of the faithful path")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--precision", default=None, help="16, bf16 or 32 (default: 16 on GPU, bf16 on CPU)")
    p.add_argument("--channels_last", action="store_true")
    p.add_argument("--compile", action="store_true")
    p.add_argument("--output", default=None, help="also write the rows as JSON here")
    return p


def synthetic_datasets(dataset: str, batch_size: int, steps: int, seed: int = 0):
    import numpy as np

    from cassle.data.datasets import ArrayImageDataset

    side = 32 if dataset == "cifar100" else 256
    n = batch_size * (steps + 1)
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, side, side, 3), dtype=np.uint8)
    targets = (np.arange(n) % 100).tolist()
    return ArrayImageDataset(images, targets), ArrayImageDataset(images[:batch_size], targets[:batch_size])


@functools.lru_cache(maxsize=None)
def cifar_recipe_flags(method: str) -> tuple[str, ...]:
    """The method's heads and loss settings of the official CIFAR-100 PNR recipe, read from the recipe
    script itself (``bash_files/continual/cifar/<method>_pnr.sh --dry_run``), as flags."""
    script = os.path.join(ROOT, "bash_files", "continual", "cifar", f"{regularizer_of(method, 'pnr').removesuffix('_pnr')}_pnr.sh")
    env = dict(os.environ, PYTHON=sys.executable, PROJECT="", DATA_DIR=".", CHECKPOINT_DIR=".")
    out = subprocess.run(["bash", script, "--dry_run"], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    recipe = json.loads(out.stdout)
    spec = method_spec(method)
    flags: list[str] = []
    for name in ["proj_hidden_dim", "output_dim"] + [f.name for f in dataclasses.fields(spec.params)]:
        value = recipe[name]
        if isinstance(value, bool):
            flags += [f"--{name}"] if value else []
        else:
            flags += [f"--{name}", str(value)]
    return tuple(flags)


def pretrain_config(opts: argparse.Namespace, method: str, regularizer: str, path: str) -> PretrainConfig:
    # One task holding every synthetic image (a class split would keep a fifth of them per task).
    argv = ["--dataset", opts.dataset, "--method", method, "--batch_size", str(opts.batch_size),
            "--num_workers", str(opts.num_workers), "--accelerator", opts.accelerator,
            "--precision", opts.precision, "--num_tasks", "1", "--split_strategy", "data", "--optimizer", "sgd",
            "--lars", "--grad_clip_lars", "--eta_lars", "0.02", "--exclude_bias_n_norm", "--max_epochs", "1",
            "--online_eval", "--data_dir", ".", "--train_dir", ".", "--val_dir", ".", *cifar_recipe_flags(method)]
    if regularizer == "pnr":
        argv += ["--distiller", regularizer_of(method, "pnr")]
    if path == "fast":
        argv.append("--fast_data")
    if opts.channels_last:
        argv.append("--channels_last")
    if opts.compile:
        argv.append("--compile")
    from cassle.train import resolve_hardware

    return resolve_hardware(parse_pretrain_args(argv))


def time_training(cfg: PretrainConfig, datasets, opts: argparse.Namespace) -> float:
    """Steps per second of the real training step, data loading included. With a regulariser the model
    is the regularised one of task 1 (teacher and g), trained on the one task of the synthetic data."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.utilities import CombinedLoader

    from cassle.train import TaskData

    regularizer = cfg.continual.distiller
    model = method_spec(cfg.model.method).model_class(regularizer)(cfg.model, 0)
    if regularizer:
        model.build_teacher()
    if cfg.model.channels_last:
        model = model.to(memory_format=torch.channels_last)
    t = cfg.trainer
    total = opts.warmup + opts.steps
    marks: list[float] = []

    class StepTimer(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx >= opts.warmup - 1:
                if torch.cuda.is_available() and t.accelerator == "gpu":
                    torch.cuda.synchronize()
                marks.append(time.perf_counter())

    trainer = pl.Trainer(max_epochs=1, limit_train_batches=total, accelerator=t.accelerator, devices=1,
                         precision=t.precision, logger=False, callbacks=[StepTimer()],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         num_sanity_val_steps=0, limit_val_batches=0)
    data = TaskData(cfg, datasets)
    loaders = CombinedLoader(data.train_loaders(0, trainer.strategy.root_device), mode="min_size")
    trainer.fit(model, train_dataloaders=loaders)
    return (len(marks) - 1) / (marks[-1] - marks[0])


def data_views_per_second(cfg: PretrainConfig, opts: argparse.Namespace) -> float:
    """Views per second of the data path alone (two views per image), in steady state: the batches
    the faithful path's workers prefetch before the clock starts are not counted."""
    import torch

    from cassle.train import TaskData

    skip = 2 * opts.num_workers + 1 if not cfg.data.fast_data else 1
    batches = max(opts.steps, 5)
    datasets = synthetic_datasets(opts.dataset, opts.batch_size, skip + batches)
    device = torch.device("cuda" if cfg.trainer.accelerator == "gpu" else "cpu")
    loader = TaskData(cfg, datasets).train_loaders(0, device)["task0"]
    seen = 0
    for i, batch in enumerate(loader):
        if i + 1 == skip:
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
        elif i + 1 > skip:
            seen += 1
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * opts.batch_size * seen / (time.perf_counter() - start)


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def run(opts: argparse.Namespace) -> list[dict[str, Any]]:
    import torch

    from cassle.train import quiet_lightning

    quiet_lightning()
    if opts.accelerator == "auto":
        opts.accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if opts.precision is None:
        opts.precision = "16" if opts.accelerator == "gpu" else "32"
    if opts.warmup < 1:
        raise SystemExit("error: --warmup must be at least 1")
    datasets = synthetic_datasets(opts.dataset, opts.batch_size, opts.warmup + opts.steps)
    label, full_steps, full_batch = FULL_RUNS[opts.dataset]
    device_name = torch.cuda.get_device_name(0) if opts.accelerator == "gpu" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"device: {device_name}; batch {opts.batch_size}; precision {opts.precision}; "
          f"{opts.steps} timed steps after {opts.warmup}", file=sys.stderr, flush=True)
    rows = []
    views = {}
    for path in opts.paths:
        views[path] = data_views_per_second(pretrain_config(opts, opts.methods[0], "none", path), opts)
        print(f"  data path {path:8s} {views[path]:9.0f} views/s", file=sys.stderr, flush=True)
    for method in opts.methods:
        for regularizer in opts.regularizers:
            for path in opts.paths:
                steps_per_s = time_training(pretrain_config(opts, method, regularizer, path), datasets, opts)
                images_per_s = steps_per_s * opts.batch_size
                row = {"method": method, "regularizer": regularizer, "path": path,
                       "steps_per_s": steps_per_s, "images_per_s": images_per_s,
                       "data_views_per_s": views[path],
                       "full_run_s": full_steps * full_batch / images_per_s}
                rows.append(row)
                print(f"  {method:13s} {regularizer:4s} {path:8s} {steps_per_s:7.2f} steps/s", file=sys.stderr, flush=True)
    print(format_table(rows, label, opts))
    if opts.output:
        with open(opts.output, "w") as handle:
            json.dump({"device": device_name, "options": vars(opts), "rows": rows}, handle, indent=2)
    return rows


def format_table(rows: list[dict[str, Any]], label: str, opts: argparse.Namespace) -> str:
    header = ["method", "reg.", "path", "steps/s", "images/s", "data path views/s", f"est. {label}"]
    lines = [header]
    for r in rows:
        lines.append([r["method"], r["regularizer"], r["path"], f"{r['steps_per_s']:.2f}",
                      f"{r['images_per_s']:.0f}", f"{r['data_views_per_s']:.0f}", hours(r["full_run_s"])])
    for method in opts.methods:
        for reg in opts.regularizers:
            pair = {r["path"]: r for r in rows if r["method"] == method and r["regularizer"] == reg}
            if {"fast", "faithful"} <= set(pair):
                ratio = pair["fast"]["steps_per_s"] / pair["faithful"]["steps_per_s"]
                lines.append([method, reg, "fast/faithful", f"x{ratio:.2f}", "", "", ""])
    note = (f"(images/s = steps/s x batch {opts.batch_size}; the full-run estimate assumes the same images/s "
            f"at the official batch 256)")
    return "\n".join(markdown_table(lines[0], lines[1:]) + [note])


def main(argv: list[str] | None = None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
