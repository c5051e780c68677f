"""Argument groups shared by pretraining and the linear probe (torch-free)."""

from __future__ import annotations

import argparse
from typing import Any, NamedTuple

from cassle.data.info import DATASET_INFO
from cassle.errors import CassleError
from cassle.utils.hardware import AUTO, PRECISIONS, normalize_precision

# Lightning 1.5 spellings used by the official scripts, mapped to Lightning 2.x.
LEGACY_STRATEGIES = {"ddp", "ddp_spawn", "dp", "ddp2", "horovod", "ddp_cpu"}


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
    group.add_argument("--precision", type=str, default=None, choices=sorted(PRECISIONS) + [AUTO],
                       help="16 (fp16 mixed), bf16, 32 or a Lightning 2 name; default auto: fp16 mixed on a "
                            "GPU, bf16 mixed on a CPU with native bf16, else 32")
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


class Hardware(NamedTuple):
    """What the trainer flags ask for, in Lightning 2.x terms (before torch looks at the machine)."""

    accelerator: str  # cpu, gpu, mps or auto
    devices: Any  # a count, a list of ids, or "auto"
    strategy: str
    num_devices: int  # devices per node the flags ask for ("auto" counts as 1)


def resolve_hardware_flags(accelerator: str | None, gpus: str | None, devices: str | None,
                           strategy: str | None) -> Hardware:
    """Map the official Lightning 1.5 flags (``--gpus 0,1``, ``--accelerator ddp``) and the 2.x ones
    (``--devices``, ``--strategy``) onto Lightning 2.x, without looking at the hardware."""
    if accelerator in LEGACY_STRATEGIES:
        if strategy not in (None, accelerator):
            raise CassleError(f"--accelerator {accelerator} (a strategy) conflicts with --strategy {strategy}")
        strategy, accelerator = accelerator, None
    resolved: Any = None
    if gpus not in (None, "", "None"):
        if devices is not None:
            raise CassleError("give either --gpus or --devices, not both")
        resolved = _parse_ids(gpus, "--gpus")
        if resolved == [-1]:
            resolved = -1
        if accelerator in (None, "gpu", "cuda", "auto"):
            accelerator = "gpu"
        else:
            raise CassleError(f"--gpus {gpus} needs a GPU, but --accelerator is {accelerator}")
    elif devices is not None:
        if devices == "auto":
            resolved = "auto"
        elif "," in devices:
            resolved = _parse_ids(devices, "--devices")
        else:
            try:
                resolved = int(devices)
            except ValueError:
                raise CassleError(f"--devices takes a count, ids such as 0,1, or auto; got {devices!r}") from None
            if resolved < 1 and resolved != -1:
                raise CassleError(f"--devices must be at least 1 (or -1 for all), got {devices}")
    if accelerator is None:
        accelerator = "gpu" if strategy is not None and strategy != "ddp_cpu" else "auto"
    if accelerator == "cuda":
        accelerator = "gpu"
    if accelerator not in ("cpu", "gpu", "auto", "mps"):
        raise CassleError(f"--accelerator takes cpu, gpu, auto or a legacy strategy such as ddp, got {accelerator!r}")
    if isinstance(resolved, list):
        num_devices = len(resolved)
    elif isinstance(resolved, int) and resolved > 0:
        num_devices = resolved
    else:
        num_devices = 1
    if resolved is None:
        resolved = 1 if accelerator != "auto" else "auto"
    return Hardware(accelerator, resolved, strategy or "auto", num_devices)


def parse_accelerator(args: argparse.Namespace) -> None:
    """``resolve_hardware_flags`` written into ``args`` (the linear probe's command line)."""
    hw = resolve_hardware_flags(args.accelerator, args.gpus, args.devices, args.strategy)
    args.accelerator, args.devices, args.strategy, args.num_devices = hw
    args.precision = normalize_precision(args.precision)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors (unknown flag, bad value, wrong choice) are one-line CassleErrors, like
    every other bad input, instead of argparse's usage block and exit."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise CassleError(f"{message} (see {self.prog} --help)")
