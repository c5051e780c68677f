"""Argument groups shared by pretraining and the linear probe (torch-free)."""

from __future__ import annotations

import argparse
from typing import Any

from cassle.data.info import DATASET_INFO
from cassle.errors import CassleError

# Lightning 1.5 spellings used by the official scripts, mapped to Lightning 2.x.
LEGACY_STRATEGIES = {"ddp", "ddp_spawn", "dp", "ddp2", "horovod", "ddp_cpu"}
PRECISIONS = {
    "16": "16-mixed", "16-mixed": "16-mixed",
    "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed",
    "32": "32-true", "32-true": "32-true",
    "64": "64-true", "64-true": "64-true",
}


def add_data_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--dataset", choices=sorted(DATASET_INFO), default="digits",
                       help="digits (bundled with scikit-learn) needs no download")
    group.add_argument("--data_dir", type=str, default="./datasets")
    group.add_argument("--train_dir", type=str, default=None,
                       help="class folders (imagenet100, imagenet, custom); relative to --data_dir")
    group.add_argument("--val_dir", type=str, default=None,
                       help="class folders named as those of --train_dir; custom: optional for pretraining")
    group.add_argument("--no_labels", action="store_true",
                       help="custom: --train_dir is a flat or nested folder of images without labels "
                            "(data split only, no online evaluation, no probe)")
    group.add_argument("--small_stem", action="store_true",
                       help="the small-image stem (3x3 conv, stride 1, no max-pool) for small images "
                            "(custom 28-32 px data, stl10, ...); custom data is then also evaluated at "
                            "--size (default 32); a no-op for cifar10/cifar100/digits, which use it anyway")
    group.add_argument("--size", type=int, nargs="+", default=None,
                       help="crop size, one value or one per view (imagenet100, imagenet, domainnet, "
                            "custom; default 224, custom --small_stem 32); CIFAR, STL-10 and digits keep "
                            "their own size, as officially")
    group.add_argument("--mean", type=float, nargs="+", default=None,
                       help="custom: per-channel mean (R G B), default the ImageNet values")
    group.add_argument("--std", type=float, nargs="+", default=None,
                       help="custom: per-channel std (R G B), default the ImageNet values")
    group.add_argument("--dali", action="store_true",
                       help="accepted for the official scripts: images are decoded by torchvision")
    group.add_argument("--dali_device", type=str, default="gpu")
    group.add_argument("--num_workers", type=int, default=4)
    group.add_argument("--batch_size", type=int, default=128, help="per device")
    group.add_argument("--fast_data", action="store_true",
                       help="augment both views in batches on the device: in-memory datasets (cifar100, "
                            "digits) live there as uint8; file datasets are decoded there (one device only)")


def data_flag_argv(args: argparse.Namespace) -> list[str]:
    """The data flags of a parsed command line as arguments for another entry point (the
    ``--eval_every_task`` probe gets the same data as the pretraining)."""
    argv = ["--dataset", args.dataset, "--data_dir", args.data_dir]
    for flag in ("train_dir", "val_dir"):
        if getattr(args, flag, None):
            argv += [f"--{flag}", getattr(args, flag)]
    for flag in ("no_labels", "small_stem"):
        if getattr(args, flag, False):
            argv.append(f"--{flag}")
    for flag in ("size", "mean", "std"):
        values = getattr(args, flag, None)
        if values:
            # the probe crops at one size: the first view's, as the dataset's facts are resolved
            argv += [f"--{flag}", *(str(v) for v in (values[:1] if flag == "size" else values))]
    return argv


def add_trainer_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("trainer (Lightning 1.5 spellings accepted)")
    group.add_argument("--max_epochs", type=int, default=None)
    group.add_argument("--gpus", type=str, default=None, help="GPU ids: '0' is GPU 0, '0,1' two GPUs")
    group.add_argument("--accelerator", type=str, default=None,
                       help="cpu, gpu, auto; the legacy 'ddp' means --strategy ddp on GPUs")
    group.add_argument("--devices", type=str, default=None)
    group.add_argument("--strategy", type=str, default=None)
    group.add_argument("--num_nodes", type=int, default=1)
    group.add_argument("--sync_batchnorm", action="store_true")
    group.add_argument("--precision", type=str, default="32", choices=sorted(PRECISIONS))
    group.add_argument("--check_val_every_n_epoch", type=int, default=1)
    group.add_argument("--limit_train_batches", type=float, default=None,
                       help="at most this many steps per epoch (int) or this fraction (< 1)")
    group.add_argument("--limit_val_batches", type=float, default=None)
    group.add_argument("--channels_last", action="store_true")
    group.add_argument("--compile", action="store_true", help="torch.compile the backbone")


def _parse_ids(text: str, flag: str) -> list[int]:
    try:
        return [int(part) for part in text.split(",") if part.strip() != ""]
    except ValueError:
        raise CassleError(f"{flag} takes GPU ids such as 0 or 0,1, got {text!r}") from None


def parse_accelerator(args: argparse.Namespace) -> None:
    """Map the official Lightning 1.5 flags onto Lightning 2.x, without looking at the hardware.

    Sets ``args.accelerator``, ``args.devices`` (list of ids, int or "auto"), ``args.strategy``,
    ``args.num_devices`` (for the learning-rate scaling) and ``args.precision`` (2.x name).
    """
    accelerator = args.accelerator
    strategy = args.strategy
    if accelerator in LEGACY_STRATEGIES:
        if strategy not in (None, accelerator):
            raise CassleError(f"--accelerator {accelerator} (a strategy) conflicts with --strategy {strategy}")
        strategy, accelerator = accelerator, None
    devices: Any = None
    if args.gpus not in (None, "", "None"):
        if args.devices is not None:
            raise CassleError("give either --gpus or --devices, not both")
        devices = _parse_ids(args.gpus, "--gpus")
        if devices == [-1]:
            devices = -1
        if accelerator in (None, "gpu", "cuda", "auto"):
            accelerator = "gpu"
        else:
            raise CassleError(f"--gpus {args.gpus} needs a GPU, but --accelerator is {accelerator}")
    elif args.devices is not None:
        text = args.devices
        if text == "auto":
            devices = "auto"
        elif "," in text:
            devices = _parse_ids(text, "--devices")
        else:
            try:
                devices = int(text)
            except ValueError:
                raise CassleError(f"--devices takes a count, ids such as 0,1, or auto; got {text!r}") from None
    if accelerator is None:
        accelerator = "gpu" if strategy is not None and strategy != "ddp_cpu" else "auto"
    if accelerator == "cuda":
        accelerator = "gpu"
    if accelerator not in ("cpu", "gpu", "auto", "mps"):
        raise CassleError(f"--accelerator takes cpu, gpu, auto or a legacy strategy such as ddp, got {accelerator!r}")
    if isinstance(devices, list):
        num_devices = len(devices)
    elif isinstance(devices, int) and devices > 0:
        num_devices = devices
    else:
        num_devices = 1
    if devices is None:
        devices = 1 if accelerator != "auto" else "auto"
    args.accelerator = accelerator
    args.devices = devices
    args.strategy = strategy or "auto"
    args.num_devices = num_devices
    args.precision = PRECISIONS[str(args.precision)]


def scaled_lr(lr: float, batch_size: int, world: int) -> float:
    """The official linear scaling rule: lr * batch_size * n_devices / 256 (spec 1.4 step 1)."""
    return lr * batch_size * world / 256
