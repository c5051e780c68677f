"""Throughput benchmark: the faithful data path (PIL + torchvision in CPU workers) beside the fast one
(uint8 images on the device, both views augmented there in batches), for each method with and without
PNR, through the real training step (Lightning Trainer, online classifier included), and a bare PyTorch
loop doing the same math on tensors already on the device (no Lightning, no data loading) as the floor.

Examples:
    # the official CIFAR setting (batch 256, 32 px), every method, on a GPU
    python -m cassle.benchmark --precision 16 --channels_last
    # a quick look on a CPU (under 2 minutes on 2 cores; fp32 unless the CPU has native bf16)
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
from cassle.utils.hardware import resolve_precision
from cassle.utils.report import log, markdown_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PATHS = ("faithful", "fast", "bare")
# Optimiser steps of a whole official run: tasks x epochs x floor(task images / 256).
FULL_RUNS = {
    "cifar100": ("CIFAR-100 5 tasks x 500 epochs", 5 * 500 * (10000 // 256), 256),
    "imagenet100": ("ImageNet-100 5 tasks x 400 epochs", 5 * 400 * (26000 // 256), 256),
}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cassle.benchmark", description=__doc__.split("\n\n")[0])
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--regularizers", nargs="+", choices=["none", "pnr"], default=["none", "pnr"])
    p.add_argument("--paths", nargs="+", choices=PATHS, default=list(PATHS),
                   help="faithful: PIL workers; fast: --fast_data; bare: plain PyTorch loop, the floor")
    p.add_argument("--dataset", choices=sorted(FULL_RUNS), default="cifar100",
                   help="cifar100: 32 px and the small-image stem; imagenet100: 224 px crops of 256 px images")
    p.add_argument("--batch_size", type=int, default=256)
    p.add_argument("--steps", type=int, default=20, help="timed steps per configuration")
    p.add_argument("--warmup", type=int, default=10,
                   help="untimed steps first (at least 1; cover the workers' prefetch, 2 x --num_workers)")
    p.add_argument("--num_workers", type=int, default=4, help="CPU workers of the faithful path")
    p.add_argument("--accelerator", choices=["auto", "cpu", "gpu"], default="auto")
    p.add_argument("--precision", default=None,
                   help="16, bf16 or 32 (default: 16 on a GPU; on a CPU bf16 only with native bf16, else 32)")
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


def pnr_of(method: str) -> str:
    """The method's PNR regulariser (the registry names it)."""
    name = regularizer_of(method, "pnr")
    if name is None:
        raise ValueError(f"method {method} has no PNR regulariser")
    return name


@functools.cache
def cifar_recipe_flags(method: str) -> tuple[str, ...]:
    """The method's heads and loss settings of the official CIFAR-100 PNR recipe, read from the recipe
    script itself (``bash_files/continual/cifar/<method>_pnr.sh --dry_run``), as flags."""
    script = os.path.join(ROOT, "bash_files", "continual", "cifar", f"{pnr_of(method).removesuffix('_pnr')}_pnr.sh")
    env = dict(os.environ, PYTHON=sys.executable, PROJECT="", DATA_DIR=".", CHECKPOINT_DIR=".")
    out = subprocess.run(["bash", script, "--dry_run"], capture_output=True, text=True, env=env, cwd=ROOT, check=True)
    recipe = json.loads(out.stdout)
    flags: list[str] = []
    for name in ["proj_hidden_dim", "output_dim"] + [f.name for f in dataclasses.fields(method_spec(method).params)]:
        value = recipe[name]
        if isinstance(value, bool):
            flags += [f"--{name}"] if value else []
        else:
            flags += [f"--{name}", str(value)]
    return tuple(flags)


def method_argv(method: str, regularizer: str, dataset: str, batch_size: int, precision: str,
                accelerator: str) -> list[str]:
    """The command line of the benchmarked training: the official CIFAR-100 recipe of ``method`` (LARS,
    online classifier), with its PNR regulariser when ``regularizer`` is ``pnr``, on one task that holds
    every synthetic image (a class split would keep a fifth of them per task)."""
    argv = ["--dataset", dataset, "--method", method, "--batch_size", str(batch_size),
            "--accelerator", accelerator, "--precision", precision, "--num_tasks", "1", "--split_strategy",
            "data", "--optimizer", "sgd", "--lars", "--grad_clip_lars", "--eta_lars", "0.02", "--exclude_bias_n_norm",
            "--max_epochs", "1", "--online_eval", "--data_dir", ".", "--train_dir", ".", "--val_dir", ".",
            *cifar_recipe_flags(method)]
    if regularizer == "pnr":
        argv += ["--distiller", pnr_of(method)]
    return argv


def pretrain_config(opts: argparse.Namespace, method: str, regularizer: str, path: str) -> PretrainConfig:
    from cassle.train import resolve_hardware

    argv = method_argv(method, regularizer, opts.dataset, opts.batch_size, opts.precision, opts.accelerator)
    argv += ["--num_workers", str(opts.num_workers)]
    if path == "fast":
        argv.append("--fast_data")
    if opts.channels_last:
        argv.append("--channels_last")
    if opts.compile:
        argv.append("--compile")
    return resolve_hardware(parse_pretrain_args(argv))


def benchmark_model(cfg: PretrainConfig) -> Any:
    """The model whose step is timed: with a regulariser, the regularised model of task 1 (teacher, g)."""
    regularizer = cfg.continual.distiller
    model = method_spec(cfg.model.method).model_class(regularizer)(cfg.model, 0)
    if regularizer:
        model.build_teacher()
    return model


def time_training(cfg: PretrainConfig, datasets, opts: argparse.Namespace) -> float:
    """Steps per second of the real training step, data loading included."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.utilities import CombinedLoader

    from cassle.train import TaskData

    model = benchmark_model(cfg)
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


def bare_step_seconds(method: str, batch_size: int = 256, precision: str = "16-mixed", device: str = "cuda",
                      steps: int = 20, warmup: int = 5, dataset: str = "cifar100", regularizer: str = "none",
                      channels_last: bool = False, compile_backbone: bool = False) -> float:
    """Seconds per step of a plain PyTorch loop doing the math of one real training step: the floor that
    the Lightning step and the data paths are compared with.

    The model is the method's own module (ResNet-18 with the dataset's stem, projector, predictor, momentum
    branch, online classifier; with ``regularizer="pnr"`` the task-1 model with its frozen teacher and g),
    used as a plain ``nn.Module``: two views and the online classifier's batch are random tensors already
    on ``device``; each step runs the forward passes under autocast, the SSL (+ PNR) loss and the
    classifier's cross-entropy, backward through AMP's GradScaler (fp16) and the method's LARS optimiser,
    and the EMA update of momentum methods. No Lightning, no data loading, no logging, no schedule.

    Args:
        method: a registered method (``cassle.registry.METHODS``).
        batch_size: images per view and step.
        precision: any ``--precision`` spelling (``16`` / ``16-mixed``, ``bf16``, ``32``).
        device: ``cuda``, ``cuda:1`` or ``cpu``.
        steps: timed steps.
        warmup: untimed steps first (cuDNN autotuning, allocator, GradScaler calibration).
        dataset: ``cifar100`` (32 px, small-image stem) or ``imagenet100`` (224 px crops, ImageNet stem).
        regularizer: ``none`` or ``pnr``.
        channels_last: NHWC memory format for the model and the images.
        compile_backbone: ``torch.compile`` the backbone, as ``--compile``.

    Returns:
        Mean wall-clock seconds per timed step (the device synchronised at both ends).
    """
    import contextlib

    import torch

    from cassle.utils.momentum import ema_update

    dev = torch.device(device)
    accelerator = "gpu" if dev.type == "cuda" else dev.type
    precision, _ = resolve_precision(precision, accelerator)
    argv = method_argv(method, regularizer, dataset, batch_size, precision, accelerator)
    argv += ["--channels_last"] * channels_last + ["--compile"] * compile_backbone
    cfg = parse_pretrain_args(argv)
    model = benchmark_model(cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(dev, memory_format=fmt).train()
    optimizer = model.configure_optimizers()
    dtype = {"16-mixed": torch.float16, "bf16-mixed": torch.bfloat16}.get(precision)
    scaler = torch.amp.GradScaler(dev.type, enabled=dtype is torch.float16)
    size = cfg.data.views[0].size
    generator = torch.Generator(device=dev).manual_seed(0)

    def images() -> torch.Tensor:
        x = torch.randn(batch_size, 3, size, size, device=dev, generator=generator)
        return x.contiguous(memory_format=fmt)

    views, x_eval = [images(), images()], images()
    y_eval = torch.randint(0, cfg.model.num_classes, (batch_size,), device=dev, generator=generator)
    momentum = getattr(model, "momentum_encoder", None) is not None

    def step() -> None:
        with torch.autocast(dev.type, dtype=dtype) if dtype else contextlib.nullcontext():
            outs = model.multiview_forward(views)
            loss = model.ssl_loss(outs)[0] + model.regularizer_loss(outs)[0]
            loss = loss + model.online_classifier_loss(x_eval, y_eval)[0]
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        if momentum:
            ema_update(model.encoder, model.momentum_encoder, cfg.model.params.base_tau_momentum)
            ema_update(model.projector, model.momentum_projector, cfg.model.params.base_tau_momentum)

    def sync() -> None:
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)

    for _ in range(max(warmup, 1)):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


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
    for i, _batch in enumerate(loader):
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
    opts.precision, note = resolve_precision(opts.precision, opts.accelerator)
    if note:
        log(note)
    if opts.warmup < 1:
        raise SystemExit("error: --warmup must be at least 1")
    datasets = synthetic_datasets(opts.dataset, opts.batch_size, opts.warmup + opts.steps)
    label, full_steps, full_batch = FULL_RUNS[opts.dataset]
    on_gpu = opts.accelerator == "gpu"
    device_name = torch.cuda.get_device_name(0) if on_gpu else f"CPU ({torch.get_num_threads()} threads)"
    log(f"device: {device_name}; batch {opts.batch_size}; precision {opts.precision}; "
        f"{opts.steps} timed steps after {opts.warmup}")
    rows = []
    views: dict[str, float | None] = {"bare": None}
    for path in opts.paths:
        if path == "bare":
            continue
        views[path] = data_views_per_second(pretrain_config(opts, opts.methods[0], "none", path), opts)
        log(f"  data path {path:8s} {views[path]:9.0f} views/s")
    for method in opts.methods:
        for regularizer in opts.regularizers:
            for path in opts.paths:
                if path == "bare":
                    device = "cuda" if opts.accelerator == "gpu" else "cpu"
                    steps_per_s = 1.0 / bare_step_seconds(
                        method, opts.batch_size, opts.precision, device, opts.steps, opts.warmup, opts.dataset,
                        regularizer, opts.channels_last, opts.compile)
                else:
                    steps_per_s = time_training(pretrain_config(opts, method, regularizer, path), datasets, opts)
                images_per_s = steps_per_s * opts.batch_size
                row = {"method": method, "regularizer": regularizer, "path": path,
                       "steps_per_s": steps_per_s, "images_per_s": images_per_s,
                       "data_views_per_s": views[path],
                       "full_run_s": full_steps * full_batch / images_per_s}
                rows.append(row)
                log(f"  {method:13s} {regularizer:4s} {path:8s} {steps_per_s:7.2f} steps/s")
    print(format_table(rows, label, opts.batch_size))
    if opts.output:
        with open(opts.output, "w") as handle:
            json.dump({"device": device_name, "options": vars(opts), "rows": rows}, handle, indent=2)
    return rows


def format_table(rows: list[dict[str, Any]], label: str, batch_size: int) -> str:
    """The benchmark table (markdown): one row per method, regulariser and path, with each path's speed as
    a fraction of the bare loop's (the floor) where that was timed, then the fast/faithful ratios."""
    floor = {(r["method"], r["regularizer"]): r["steps_per_s"] for r in rows if r["path"] == "bare"}
    header = ["method", "reg.", "path", "steps/s", "images/s", "of the floor", "data path views/s", f"est. {label}"]
    lines = []
    for r in rows:
        bare = floor.get((r["method"], r["regularizer"]))
        views = r["data_views_per_s"]
        lines.append([r["method"], r["regularizer"], r["path"], f"{r['steps_per_s']:.2f}", f"{r['images_per_s']:.0f}",
                      f"{r['steps_per_s'] / bare:.2f}" if bare else "", f"{views:.0f}" if views else "",
                      hours(r["full_run_s"])])
    pairs: dict[tuple[str, str], dict[str, float]] = {}
    for r in rows:
        pairs.setdefault((r["method"], r["regularizer"]), {})[r["path"]] = r["steps_per_s"]
    for (method, reg), speed in pairs.items():
        if "fast" in speed and "faithful" in speed:
            lines.append([method, reg, "fast/faithful", f"x{speed['fast'] / speed['faithful']:.2f}", "", "", "", ""])
    note = (f"(images/s = steps/s x batch {batch_size}; \"of the floor\" = steps/s / steps/s of the bare PyTorch "
            f"loop; the full-run estimate assumes the same images/s at the official batch 256)")
    return "\n".join(markdown_table(header, lines) + [note])


def main(argv: list[str] | None = None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
