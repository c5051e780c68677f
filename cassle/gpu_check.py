"""GPU acceptance check: ``make gpu-check``, i.e. ``python -m cassle.gpu_check`` (about 4 minutes on one GPU).

No network and no dataset: synthetic images are written in the real formats into a temporary folder
(CIFAR-100 python pickles; an ImageNet-100 tree of JPEG files in 100 class folders). Then, section by section,
each written to ``--output`` (JSON) and to the markdown file beside it as soon as it ends, so that a run cut
short still reports:

1. ``environment``: the torch, CUDA, cuDNN, driver (``nvidia-smi``), Lightning and torchvision versions, the GPUs.
2. ``training``: the CIFAR-100 PNR recipe of every method, flag for flag as ``bash_files/continual/cifar/
   <method>_pnr.sh`` builds it (fp16 AMP, LARS, GradScaler), for 2 tasks (task 0 plain, task 1 with PNR) of
   32 steps each, on the faithful path and with ``--fast_data``, through ``main_pretrain.py``'s ``main``; and
   the ImageNet-100 SimCLR PNR recipe on one GPU with ``--fast_data`` (JPEG files decoded on the GPU). A run
   fails on a non-zero exit (a NaN or infinite loss stops the driver), a task that did not finish, a
   non-finite logged loss, no regulariser term logged at task 1, or the skipped-step rule below.
3. ``decode``: the JPEG files decoded on the GPU (nvJPEG, through ``cassle.data.device``) against the CPU
   decode (libjpeg-turbo, the faithful path's PIL too), and two-view batches of the file fast path
   (decode, crop, augment) made on the GPU against the same batches made on the CPU.
4. ``ddp``: a 2-task DDP run (``--devices 2 --strategy ddp``) where there are two GPUs or more; otherwise
   recorded as skipped.
5. ``benchmark``: ``python -m cassle.benchmark`` at the official batch 256 on 32 px: the faithful path, the
   fast path and the bare PyTorch loop (the floor) per method, their ratios, and the extrapolated wall time
   of the whole CIFAR-100 run (5 tasks x 500 epochs x 39 steps). Methods that no longer fit in ``--budget_s``
   are recorded as skipped.

Skipped-step rule (fp16): ``GradScaler`` skips the optimiser step when a gradient overflowed and halves its
scale, so a step is counted as skipped when the scale read after it is lower than before it. Every task starts
a fresh scaler at 2**16, which is usually too high: a run of at most ``CALIBRATION_SKIPS`` skipped steps at the
very start of a task is calibration and allowed. After the first applied step no further skip is allowed
(within a few dozen steps a healthy run skips none: the scale only grows again after 2000 clean steps), and
at least ``MIN_APPLIED_FRACTION`` of each task's steps must be applied.

Decode tolerance: nvJPEG and libjpeg-turbo use different inverse DCTs and chroma upsampling, so pixels may
differ by a few levels (more at sharp colour edges in 4:2:0 files). An image passes when the mean absolute
difference is below ``DECODE_MEAN_LEVELS`` levels (torchvision's own bound for its CUDA decoder); the
maximum is reported, not judged. Augmented views pass when their mean absolute difference, in pixel levels
(the normalisation undone), is below ``VIEW_MEAN_LEVELS``.

Exit status: 0 when every section passed or was skipped, 1 when one failed, 2 without a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from typing import Any

from cassle.errors import CassleError
from cassle.registry import METHODS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

CALIBRATION_SKIPS = 8  # the scale may fall from 2**16 to 2**8 while it calibrates
MIN_APPLIED_FRACTION = 0.75
DECODE_MEAN_LEVELS = 2.0
VIEW_MEAN_LEVELS = 3.0


class Sizes:
    """How big each section is: the GPU check, or the tiny CPU development mode (fp32)."""

    def __init__(self, tiny: bool):
        self.tiny = tiny
        self.cifar_train_per_class = 1 if tiny else 164  # 2 tasks of 50 classes: 8,200 images per task
        self.cifar_test_per_class = 1 if tiny else 10
        self.jpeg_train_per_class = 1 if tiny else 41  # 2,050 per task: 32 steps at batch 64
        self.jpeg_val_per_class = 1 if tiny else 2
        self.jpeg_sides = (20, 40) if tiny else (64, 160)
        # 32 steps leave room for the GradScaler's calibration skips (see the rule).
        self.steps_per_task = 1 if tiny else 32
        self.jpeg_batch = 4 if tiny else 64
        self.view_batch = 4 if tiny else 64
        self.bench_batch = 4 if tiny else 256
        self.bench_steps, self.bench_warmup = (1, 1) if tiny else (20, 10)

    def device_flags(self) -> list[str]:
        """Flags that move a recipe onto the CPU in fp32 with tiny batches (none on a GPU)."""
        if not self.tiny:
            return []
        return ["--gpus", "None", "--accelerator", "cpu", "--strategy", "auto", "--precision", "32",
                "--batch_size", "4", "--num_workers", "0"]

    def imagenet_flags(self) -> list[str]:
        """32 px crops in tiny mode (the recipe's 224 otherwise)."""
        return ["--size", "32"] if self.tiny else []

    def head_flags(self, method: str) -> list[str]:
        """Small heads in tiny mode (the recipes' 2048-4096-wide heads otherwise)."""
        if not self.tiny:
            return []
        flags = ["--proj_hidden_dim", "32", "--output_dim", "16", "--distill_proj_hidden_dim", "32"]
        if method == "mocov2plus":
            flags += ["--queue_size", "64"]
        if method == "byol":
            flags += ["--pred_hidden_dim", "32"]
        return flags


# ============================================================================================ report
class Report:
    """The check's results, rewritten as JSON and markdown after every section (and every training run)."""

    def __init__(self, json_path: str, options: dict[str, Any]):
        self.json_path = json_path
        self.md_path = os.path.splitext(json_path)[0] + ".md"
        self.start = time.time()
        self.data: dict[str, Any] = {"status": "running", "started_at": time.strftime("%Y-%m-%d %H:%M:%S"),
                                     "elapsed_s": 0.0, "options": options, "sections": {}}

    def elapsed(self) -> float:
        return time.time() - self.start

    def put(self, name: str, section: dict[str, Any]) -> None:
        self.data["sections"][name] = section
        self.write()

    def finish(self) -> bool:
        statuses = [s.get("status", "") for s in self.data["sections"].values()]
        passed = all(s == "passed" or s.startswith("skipped") for s in statuses)
        self.data["status"] = "passed" if passed else "failed"
        self.write()
        return passed

    def write(self) -> None:
        from cassle.utils.files import atomic_write_text

        self.data["elapsed_s"] = round(self.elapsed(), 1)
        atomic_write_text(self.json_path, json.dumps(self.data, indent=2, default=str) + "\n")
        atomic_write_text(self.md_path, format_markdown(self.data) + "\n")


def format_markdown(data: dict[str, Any]) -> str:
    from cassle.utils.report import markdown_table

    sections = data["sections"]
    lines = ["# GPU acceptance check (`make gpu-check`)", "",
             f"status: **{data['status']}**, {data['elapsed_s']:.0f} s, started {data['started_at']}", ""]
    env = sections.get("environment")
    if env:
        lines += ["## environment", ""]
        lines += [f"- {key}: {env[key]}" for key in ("device", "gpus", "torch", "cuda", "cudnn", "driver",
                                                     "lightning", "torchvision", "python") if key in env]
        lines.append("")
    training = sections.get("training")
    if training:
        lines += ["## training (2 tasks: task 0 plain, task 1 with PNR)", "", f"status: {training['status']}; "
                  f"rule: {training['rule']}", ""]
        rows = []
        for run in training["runs"]:
            tasks = run.get("tasks", [])
            loss = " / ".join(f"{t['train_loss']:.3f}" if isinstance(t.get("train_loss"), float) else "-"
                              for t in tasks)
            skips = " / ".join(f"{t['calibration_skips']}+{t['later_skips']} of {t['steps']}" if "steps" in t
                               else "-" for t in tasks)
            rows.append([run["run"], run["status"], loss or "-", skips or "-",
                         ", ".join(run.get("regularizer_terms", [])) or "-", f"{run.get('seconds', 0):.0f}",
                         "; ".join(run.get("problems", []))])
        lines += markdown_table(["run", "status", "train loss (task 0 / 1)",
                                 "skipped steps: calibration + later, of steps", "task-1 regulariser terms", "s",
                                 "problems"], rows)
        lines.append("")
    decode = sections.get("decode")
    if decode:
        lines += ["## decode (file fast path)", "", f"status: {decode['status']}", ""]
        lines += [f"- {item}" for item in decode.get("summary", [])] + [""]
    ddp = sections.get("ddp")
    if ddp:
        lines += ["## DDP", "", f"status: {ddp['status']}"] + [f"- {p}" for p in ddp.get("problems", [])] + [""]
    bench = sections.get("benchmark")
    if bench:
        lines += ["## benchmark (batch 256, 32 px)", "", f"status: {bench['status']}", ""]
        if bench.get("table"):
            lines += [bench["table"], ""]
        lines += [f"- {note}" for note in bench.get("notes", [])]
    return "\n".join(lines)


# ============================================================================================ environment
def driver_version() -> str:
    """The NVIDIA driver version from ``nvidia-smi``, or "unknown"."""
    try:
        out = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    first = out.stdout.strip().splitlines()[:1]
    return first[0].strip() if out.returncode == 0 and first else "unknown"


def environment(device: str) -> dict[str, Any]:
    import platform

    import pytorch_lightning
    import torch
    import torchvision

    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if device == "cuda" else []
    return {
        "status": "passed", "device": device, "gpus": gpus, "gpu_count": len(gpus),
        "torch": torch.__version__, "cuda": torch.version.cuda or "none (CPU build)",
        "cudnn": torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else "none",
        "driver": driver_version(), "lightning": pytorch_lightning.__version__,
        "torchvision": torchvision.__version__, "python": platform.python_version(),
    }


# ============================================================================================ training
def judge_scale_trace(trace: list[tuple[float, float]]) -> dict[str, Any]:
    """Apply the skipped-step rule (module docstring) to one task's GradScaler trace.

    Args:
        trace: ``(scale before, scale after)`` of every ``GradScaler.update`` of the task, in order.

    Returns:
        ``steps``, ``calibration_skips`` (the skipped steps before the first applied one), ``later_skips``,
        ``final_scale`` and ``problems`` (empty when the task passes).
    """
    skipped = [after < before for before, after in trace]
    calibration = next((i for i, skip in enumerate(skipped) if not skip), len(skipped))
    later = [i for i, skip in enumerate(skipped) if skip and i >= calibration]
    problems = []
    if calibration > CALIBRATION_SKIPS:
        problems.append(f"{calibration} skipped steps at the start (calibration allows {CALIBRATION_SKIPS})")
    if later:
        problems.append(f"{len(later)} skipped step(s) after the scale had settled (first at step {later[0] + 1})")
    applied = len(skipped) - sum(skipped)
    if skipped and applied < MIN_APPLIED_FRACTION * len(skipped):
        problems.append(f"only {applied} of {len(skipped)} steps applied")
    return {"steps": len(trace), "calibration_skips": calibration, "later_skips": len(later),
            "final_scale": trace[-1][1] if trace else None, "problems": problems}


@contextlib.contextmanager
def recording_grad_scalers() -> Iterator[list[list[tuple[float, float]]]]:
    """Record ``(scale before, scale after)`` of every ``torch.amp.GradScaler.update`` while active: one list
    per enabled scaler, in the order the scalers first update (one per task: each task has its Trainer)."""
    import torch

    traces: list[list[tuple[float, float]]] = []
    scalers: list[Any] = []  # strong references, so that no two scalers share an id
    original = torch.amp.GradScaler.update

    def update(self: Any, new_scale: Any = None) -> None:
        before = self.get_scale()
        original(self, new_scale)
        if not self.is_enabled():
            return
        index = next((i for i, s in enumerate(scalers) if s is self), None)
        if index is None:
            scalers.append(self)
            traces.append([])
            index = len(traces) - 1
        traces[index].append((before, self.get_scale()))

    torch.amp.GradScaler.update = update
    try:
        yield traces
    finally:
        torch.amp.GradScaler.update = original


class _Tee(io.TextIOBase):
    """Writes to a stream and keeps a copy."""

    def __init__(self, stream: Any):
        self.stream, self.copy = stream, io.StringIO()

    def write(self, text: str) -> int:
        self.copy.write(text)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def fileno(self) -> int:
        return self.stream.fileno()

    def isatty(self) -> bool:
        return False


def recipe_argv(script: str, env: dict[str, str], workdir: str) -> list[str]:
    """The flags a ``bash_files`` recipe script passes to ``main_pretrain.py`` with ``env`` set.

    The script runs for real, with ``PYTHON`` pointing at a stand-in that writes its arguments to a file
    instead of training: bash expands the recipe exactly as for a user.
    """
    stand_in = os.path.join(workdir, "record-argv.sh")
    if not os.path.exists(stand_in):
        with open(stand_in, "w") as handle:
            handle.write('#!/bin/sh\nprintf \'%s\\0\' "$@" > "$CASSLE_ARGV_FILE"\n')
        os.chmod(stand_in, 0o755)
    out = os.path.join(workdir, "argv.bin")
    full_env = {**os.environ, "PROJECT": "", "ENTITY": "", **env, "PYTHON": stand_in, "CASSLE_ARGV_FILE": out}
    result = subprocess.run(["bash", os.path.join(ROOT, script)], env=full_env, capture_output=True, text=True,
                            timeout=60)
    if result.returncode != 0:
        raise RuntimeError(f"{script} exited {result.returncode}: {result.stderr.strip()[-300:]}")
    with open(out, "rb") as handle:
        parts = handle.read().decode().split("\0")[:-1]
    if not parts or parts[0] != "main_pretrain.py":
        raise RuntimeError(f"{script} did not call main_pretrain.py (got {parts[:1]})")
    return parts[1:]


def _one_line(text: str, limit: int = 300) -> str:
    return " ".join(str(text).split())[:limit]


def _error_line(stderr_copy: str) -> str | None:
    errors = [line for line in stderr_copy.splitlines() if line.startswith("error: ")]
    return errors[-1] if errors else None


def run_training(name: str, argv: list[str], run_dir: str, fp16: bool, steps_per_task: int) -> dict[str, Any]:
    """One 2-task run of ``main_pretrain.main(argv)`` in this process, judged: exit status, finished tasks,
    finite losses, a regulariser term at task 1 and (fp16) the GradScaler rule."""
    if ROOT not in sys.path:
        sys.path.insert(0, ROOT)
    import main_pretrain

    start = time.time()
    result: dict[str, Any] = {"run": name, "argv": argv, "problems": []}
    problems = result["problems"]
    tee = _Tee(sys.stderr)
    with recording_grad_scalers() as traces, contextlib.redirect_stderr(tee):
        try:
            code = main_pretrain.main(argv)
        except Exception as exc:  # a crash of one run must not stop the check
            code = None
            problems.append(f"{type(exc).__name__}: {_one_line(exc)}")
            traceback.print_exc()
    result["seconds"] = round(time.time() - start, 1)
    if code not in (0, None):
        error = _error_line(tee.copy.getvalue())
        problems.append(f"exit status {code}" + (f": {error}" if error else ""))
    tasks = _manifest_tasks(run_dir)
    result["tasks"] = []
    for task in (0, 1):
        entry = tasks.get(str(task))
        if entry is None:
            problems.append(f"task {task} did not finish")
            continue
        loss = entry["metrics"].get("train_loss")
        info: dict[str, Any] = {"task": task, "train_loss": loss}
        if not (isinstance(loss, (int, float)) and math.isfinite(loss)):
            problems.append(f"task {task}: train_loss {loss}")
        result["tasks"].append(info)
    if "0" in tasks and "1" in tasks:
        new_terms = sorted(set(tasks["1"]["metrics"]) - set(tasks["0"]["metrics"]))
        result["regularizer_terms"] = [k for k in new_terms if k.startswith("train_")]
        if not result["regularizer_terms"]:
            problems.append("task 1 logged no regulariser term")
    if fp16:
        if len(traces) != len(result["tasks"]):
            problems.append(f"{len(traces)} GradScaler traces for {len(result['tasks'])} finished tasks")
        for info, trace in zip(result["tasks"], traces):
            judged = judge_scale_trace(trace)
            problems.extend(f"task {info['task']}: {p}" for p in judged.pop("problems"))
            if judged["steps"] != steps_per_task:
                problems.append(f"task {info['task']}: {judged['steps']} optimiser steps, expected {steps_per_task}")
            info.update(judged)
    else:
        result["note"] = "no GradScaler (not fp16)"
    result["status"] = "failed" if problems else "passed"
    _free_device_memory()
    return result


def _manifest_tasks(run_dir: str) -> dict[str, Any]:
    """The finished tasks of a run folder's manifest (none if it has no manifest)."""
    from cassle.utils.manifest import RunManifest

    return RunManifest(run_dir).tasks


def _free_device_memory() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# The recipes the training runs start from: bash_files/continual/cifar/<PNR distiller>.sh.
CIFAR_SCRIPTS = "bash_files/continual/cifar"
IMAGENET_SCRIPT = "bash_files/continual/imagenet-100/class/simclr_pnr.sh"
# The ImageNet-100 recipes train on 2 GPUs with DDP; the check moves them onto one.
IMAGENET_ONE_DEVICE = ["--gpus", "0", "--accelerator", "gpu", "--strategy", "auto"]


def imagenet_env(data: dict[str, str], name: str) -> dict[str, str]:
    """The environment of the ImageNet-100 recipe script on the synthetic JPEG tree."""
    return {"DATA_DIR": data["root"], "TRAIN_DIR": data["jpeg_train"], "VAL_DIR": data["jpeg_val"],
            "NUM_TASKS": "2", "NAME": name, "CHECKPOINT_DIR": data["runs"]}


def training_plan(methods: list[str], sizes: Sizes, data: dict[str, str]) -> list[tuple[str, str, dict, list]]:
    """(run name, recipe script, environment, extra flags) of every training run of the check."""
    from cassle.benchmark import pnr_of

    common = ["--max_epochs", "1", "--limit_val_batches", "1", *sizes.device_flags()]
    plan = []
    for method in methods:
        script = f"{CIFAR_SCRIPTS}/{pnr_of(method)}.sh"
        for path in ("faithful", "fast"):
            name = f"cifar100-{method}-{path}"
            env = {"DATA_DIR": data["cifar"], "NUM_TASKS": "2", "NAME": name, "CHECKPOINT_DIR": data["runs"]}
            flags = common + ["--limit_train_batches", str(sizes.steps_per_task), *sizes.head_flags(method)]
            plan.append((name, script, env, flags + (["--fast_data"] if path == "fast" else [])))
    # ImageNet-100 on one device with the file fast path, at batch 64 (fewer synthetic files to write).
    name = "imagenet100-simclr-fast"
    flags = IMAGENET_ONE_DEVICE + common + ["--limit_train_batches", str(sizes.steps_per_task), "--fast_data",
                                            "--batch_size", str(sizes.jpeg_batch), *sizes.head_flags("simclr")]
    plan.append((name, IMAGENET_SCRIPT, imagenet_env(data, name), flags + sizes.imagenet_flags()))
    return plan


def check_training(report: Report, methods: list[str], sizes: Sizes, data: dict[str, str], fp16: bool) -> None:
    """Every run of :func:`training_plan`, judged by :func:`run_training`; the report is rewritten after each."""
    rule = (f"at most {CALIBRATION_SKIPS} skipped steps at the start of a task, none after the first applied "
            f"step, at least {MIN_APPLIED_FRACTION:.0%} applied" if fp16 else "fp32: no GradScaler")
    section: dict[str, Any] = {"status": "running", "rule": rule, "runs": []}
    for name, script, env, flags in training_plan(methods, sizes, data):
        try:
            argv = recipe_argv(script, env, data["root"]) + flags
        except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
            section["runs"].append({"run": name, "status": "failed", "problems": [_one_line(exc)]})
            report.put("training", section)
            continue
        print(f"gpu-check: training {name}", file=sys.stderr, flush=True)
        run = run_training(name, argv, os.path.join(data["runs"], name), fp16, sizes.steps_per_task)
        run["script"] = script
        section["runs"].append(run)
        report.put("training", section)
    section["status"] = "passed" if all(r["status"] == "passed" for r in section["runs"]) else "failed"
    report.put("training", section)


# ============================================================================================ decode
def _levels(diff: Any) -> tuple[float, float]:
    """(mean, max) of an absolute difference tensor."""
    diff = diff.float()
    return float(diff.mean()), float(diff.max())


def check_decode(device: str, sizes: Sizes, data: dict[str, str]) -> dict[str, Any]:
    """nvJPEG against libjpeg-turbo on the synthetic JPEG tree, then file-fast-path views GPU against CPU."""
    import numpy as np
    import torch
    from PIL import Image
    from torchvision.io import read_file

    from cassle.args.pretrain import parse_args as parse_pretrain_args
    from cassle.data.datasets import load_imagenet100
    from cassle.data.device import DeviceFileLoader, TwoViewBatchAugment
    from cassle.data.device.decode import decode_images
    from cassle.data.epochs import StreamSpec
    from cassle.data.info import DATASET_INFO

    train, val = load_imagenet100(data["jpeg_train"], data["jpeg_val"], num_classes=100)
    paths = [path for path, _ in val.samples]
    encoded = [read_file(path) for path in paths]
    on_device = decode_images(encoded, device)
    on_cpu = decode_images(encoded, "cpu")
    problems, device_means, device_maxes, pil_means = [], [], [], []
    for path, a, b in zip(paths, on_device, on_cpu):
        if tuple(a.shape) != tuple(b.shape):
            problems.append(f"{os.path.basename(path)}: shape {tuple(a.shape)} on {device}, "
                            f"{tuple(b.shape)} on the CPU")
            continue
        mean, peak = _levels((a.cpu().int() - b.int()).abs())
        device_means.append(mean)
        device_maxes.append(peak)
        if mean >= DECODE_MEAN_LEVELS:
            problems.append(f"{os.path.relpath(path, data['jpeg_val'])}: mean difference {mean:.2f} levels")
        with Image.open(path) as image:  # the faithful path's decoder
            pil = torch.from_numpy(np.asarray(image.convert("RGB"))).permute(2, 0, 1)
        pil_means.append(_levels((pil.int() - b.int()).abs())[0])
    worst_pil = max(pil_means) if pil_means else 0.0
    if worst_pil >= DECODE_MEAN_LEVELS:
        problems.append(f"CPU decode against PIL: mean difference up to {worst_pil:.2f} levels")

    # The same seeded two-view batches (the ImageNet-100 recipe's augmentations) made on the device and on
    # the CPU.
    recipe = recipe_argv(IMAGENET_SCRIPT, imagenet_env(data, "decode"), data["root"])
    view_configs = [view.as_dict() for view in parse_pretrain_args(recipe + sizes.imagenet_flags()).data.views]
    info = DATASET_INFO["imagenet100"]
    std = torch.tensor(info["std"]).view(1, 3, 1, 1) * 255

    def first_batch(dev: str) -> list[Any]:
        augment = TwoViewBatchAugment(view_configs, info["mean"], info["std"])
        spec = StreamSpec(range(len(train.samples)), sizes.view_batch, seed=0, task=0, name="task")
        loader = DeviceFileLoader(train, spec, augment, dev, num_workers=0)
        _, views, _ = next(iter(loader))
        return [v.float().cpu() for v in views]

    view_means = []
    for v, (a, b) in enumerate(zip(first_batch(device), first_batch("cpu"))):
        mean, _ = _levels((a - b).abs() * std)
        view_means.append(mean)
        if not torch.isfinite(a).all():
            problems.append(f"view {v + 1}: non-finite values on {device}")
        if mean >= VIEW_MEAN_LEVELS:
            problems.append(f"view {v + 1}: mean difference {mean:.2f} levels between {device} and the CPU")
    summary = [
        f"{len(paths)} files (JPEG 4:2:0, grayscale, CMYK and progressive JPEG, a PNG named .JPEG) decoded on "
        f"{device} and on the CPU: mean |difference| per image up to {max(device_means, default=0):.2f} levels "
        f"(tolerance {DECODE_MEAN_LEVELS}), largest single pixel {max(device_maxes, default=0):.0f}",
        f"CPU decode against PIL (the faithful path): mean |difference| up to {worst_pil:.2f} levels",
        f"two-view batch of {sizes.view_batch} images through the file fast path (decode, crop, augment): "
        f"mean |difference| {', '.join(f'{m:.2f}' for m in view_means)} levels (tolerance {VIEW_MEAN_LEVELS})",
    ]
    return {"status": "failed" if problems else "passed", "summary": summary, "problems": problems,
            "files": len(paths), "decode_mean_levels_max": max(device_means, default=0.0),
            "decode_max_levels": max(device_maxes, default=0.0), "pil_mean_levels_max": worst_pil,
            "view_mean_levels": view_means}


# ============================================================================================ DDP
def check_ddp(gpu_count: int, sizes: Sizes, data: dict[str, str], tiny: bool) -> dict[str, Any]:
    """A 2-task DDP run in a child process (DDP starts its workers by running the command again)."""
    if tiny:
        return {"status": "skipped: no GPU (CPU development mode)"}
    if gpu_count < 2:
        return {"status": f"skipped: {gpu_count} GPU"}
    name = "cifar100-simclr-ddp"
    env = {"DATA_DIR": data["cifar"], "NUM_TASKS": "2", "NAME": name, "CHECKPOINT_DIR": data["runs"]}
    argv = recipe_argv(f"{CIFAR_SCRIPTS}/simclr_pnr.sh", env, data["root"])
    argv += ["--gpus", "None", "--devices", "2", "--strategy", "ddp", "--max_epochs", "1",
             "--limit_train_batches", "8", "--limit_val_batches", "1"]
    start = time.time()
    try:
        result = subprocess.run([sys.executable, "main_pretrain.py", *argv], cwd=ROOT, capture_output=True,
                                text=True, timeout=240)
        code, stderr = result.returncode, result.stderr
    except subprocess.TimeoutExpired:
        code, stderr = None, "timed out after 240 s"
    problems = [] if code == 0 else [f"exit status {code}: {_error_line(stderr) or _one_line(stderr[-300:])}"]
    tasks = _manifest_tasks(os.path.join(data["runs"], name))
    for task in ("0", "1"):
        loss = tasks.get(task, {}).get("metrics", {}).get("train_loss")
        if not (isinstance(loss, (int, float)) and math.isfinite(loss)):
            problems.append(f"task {task}: {'train_loss ' + str(loss) if task in tasks else 'did not finish'}")
    return {"status": "failed" if problems else "passed", "problems": problems, "argv": argv,
            "seconds": round(time.time() - start, 1)}


# ============================================================================================ benchmark
def check_benchmark(report: Report, methods: list[str], sizes: Sizes, device: str, budget_s: float) -> None:
    """The benchmark table, one method at a time, while the time budget lasts."""
    from cassle.benchmark import FULL_RUNS, format_table
    from cassle.benchmark import main as benchmark_main

    label = FULL_RUNS["cifar100"][0]
    section: dict[str, Any] = {"status": "running", "rows": [], "notes": [], "problems": []}
    precision = "16" if device == "cuda" else "32"
    last_cost = 15.0  # seconds of one method's rows on a GPU, until measured
    for method in methods:
        if report.elapsed() + last_cost > budget_s:
            section["notes"].append(f"{method}: skipped (time budget of {budget_s:.0f} s)")
            continue
        start = time.time()
        out = os.path.join(tempfile.gettempdir(), f"cassle-gpu-check-bench-{os.getpid()}.json")
        argv = ["--methods", method, "--regularizers", "none", "--paths", "faithful", "fast", "bare",
                "--batch_size", str(sizes.bench_batch), "--steps", str(sizes.bench_steps),
                "--warmup", str(sizes.bench_warmup), "--accelerator", "gpu" if device == "cuda" else "cpu",
                "--precision", precision, "--output", out]
        if sizes.tiny:
            argv += ["--num_workers", "0"]
        print(f"gpu-check: benchmark {method}", file=sys.stderr, flush=True)
        try:
            benchmark_main(argv)
            with open(out) as handle:
                section["rows"] += json.load(handle)["rows"]
        except Exception as exc:  # one method's failure must not hide the others
            section["problems"].append(f"{method}: {type(exc).__name__}: {_one_line(exc)}")
        finally:
            if os.path.exists(out):
                os.remove(out)
        last_cost = time.time() - start
        section["table"] = format_table(section["rows"], label, sizes.bench_batch) if section["rows"] else ""
        report.put("benchmark", section)
        _free_device_memory()
    section["notes"].append("regulariser none; tasks 1-4 of a real run also pay for the PNR teacher and g, so "
                            "the whole-run estimates are lower bounds")
    if section["problems"]:
        section["status"] = "failed"
    else:
        section["status"] = "passed" if section["rows"] else f"skipped: time budget of {budget_s:.0f} s"
    report.put("benchmark", section)


# ============================================================================================ main
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cassle.gpu_check", description=__doc__.split("\n\n")[0])
    p.add_argument("--output", default="gpu_check.json",
                   help="the JSON report; the markdown one goes next to it (.md)")
    p.add_argument("--methods", nargs="+", choices=list(METHODS), default=list(METHODS))
    p.add_argument("--budget_s", type=float, default=220.0,
                   help="benchmark methods that would start after this many seconds are skipped")
    # Development only: run the same sections on the CPU, in fp32, with tiny sizes.
    p.add_argument("--allow_cpu", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--keep", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    opts = build_parser().parse_args(argv)
    import torch

    if torch.cuda.is_available():
        device = "cuda"
    elif opts.allow_cpu:
        device = "cpu"
    else:
        print(f"error: no GPU: torch {torch.__version__} sees no CUDA device, so `make gpu-check` checked "
              f"nothing (it needs one NVIDIA GPU)", file=sys.stderr)
        return 2
    sizes = Sizes(tiny=opts.tiny or device == "cpu")
    from cassle.train import quiet_lightning

    quiet_lightning()
    report = Report(opts.output, {**vars(opts), "device": device})
    env = environment(device)
    report.put("environment", env)
    print(f"gpu-check: torch {env['torch']}, CUDA {env['cuda']}, driver {env['driver']}, "
          f"Lightning {env['lightning']}, torchvision {env['torchvision']}; "
          f"{', '.join(env['gpus']) or 'no GPU (CPU development mode)'}", flush=True)

    workdir = tempfile.mkdtemp(prefix="cassle-gpu-check-")
    try:
        data = write_data(workdir, sizes)
        sections: list[tuple[str, Callable[[], Any]]] = [
            ("decode", lambda: report.put("decode", check_decode(device, sizes, data))),
            ("training", lambda: check_training(report, opts.methods, sizes, data, fp16=device == "cuda")),
            ("ddp", lambda: report.put("ddp", check_ddp(env["gpu_count"], sizes, data, device == "cpu"))),
            ("benchmark", lambda: check_benchmark(report, opts.methods, sizes, device, opts.budget_s)),
        ]
        for name, section in sections:
            try:
                section()
            except Exception as exc:  # a broken section is reported and the next one still runs
                traceback.print_exc()
                report.put(name, {"status": "failed", "problems": [f"{type(exc).__name__}: {_one_line(exc)}"]})
    finally:
        if not opts.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    passed = report.finish()
    print(format_markdown(report.data))
    print(f"gpu-check: {report.data['status']} in {report.elapsed():.0f} s; wrote {report.json_path} and "
          f"{report.md_path}", flush=True)
    return 0 if passed else 1


def write_data(workdir: str, sizes: Sizes) -> dict[str, str]:
    """The synthetic datasets of the check, in their real formats, under ``workdir``."""
    from cassle.data.synthetic import write_cifar100, write_image_folders

    data = {"root": workdir, "cifar": os.path.join(workdir, "cifar"), "runs": os.path.join(workdir, "runs"),
            "jpeg_train": os.path.join(workdir, "imagenet-100", "train"),
            "jpeg_val": os.path.join(workdir, "imagenet-100", "val")}
    write_cifar100(data["cifar"], sizes.cifar_train_per_class, sizes.cifar_test_per_class, seed=0)
    write_image_folders(data["jpeg_train"], 100, sizes.jpeg_train_per_class, *sizes.jpeg_sides, seed=1)
    write_image_folders(data["jpeg_val"], 100, sizes.jpeg_val_per_class, *sizes.jpeg_sides, seed=2)
    os.makedirs(data["runs"], exist_ok=True)
    return data


if __name__ == "__main__":
    try:
        sys.exit(main())
    except CassleError as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
