"""Command line of ``main_pretrain.py``: the official flag names, parsed without torch.

Parsing happens in two passes, as in the official code: the first reads ``--method``, the second adds the
flags that method declares in the registry (``cassle/registry.py``), so per-method defaults such as
SimCLR's temperature 0.1 versus MoCo's 0.2 come out right. :func:`parse_args` ends with the typed
configuration (``cassle.config.PretrainConfig``). Nothing here imports torch, Lightning or wandb:
``--dry_run`` answers in a fraction of a second.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from cassle.args.common import OneLineParser, add_data_args, add_trainer_args, resolve_hardware_flags
from cassle.config import PretrainConfig, TrainerConfig, build_config
from cassle.data.views import SMALL_CROP_DEFAULTS
from cassle.registry import METHODS, REGULARIZERS, RegularizerParams, method_spec
from cassle.utils.hardware import AUTO, normalize_precision


def add_augmentation_args(parser: argparse.ArgumentParser) -> None:
    """Per-crop augmentation flags: one value (every crop) or one per crop (docs/official.md §2.5);
    multi-crop (``--multicrop --num_small_crops``) as in ``cassle.data.views``."""
    group = parser.add_argument_group("augmentations")
    for flag, default in (
        ("brightness", 0.4),
        ("contrast", 0.4),
        ("saturation", 0.2),
        ("hue", 0.1),
        ("gaussian_prob", 0.5),
        ("solarization_prob", 0.0),
    ):
        group.add_argument(f"--{flag}", type=float, nargs="+", default=[default])
    # None: 0.08, or 0.4 for the 16 px digits where an 8% crop keeps almost nothing of the digit.
    group.add_argument("--min_scale", type=float, nargs="+", default=None)
    group.add_argument("--num_crops", type=int, default=2, help="large crops per image (at least 2)")
    group.add_argument("--multicrop", action="store_true", help="add --num_small_crops small crops")
    group.add_argument("--num_small_crops", type=int, default=0)
    group.add_argument("--small_size", type=int, nargs="+", default=None,
                       help="side of the small crops (default: 24 cifar100, 12 digits, 96 imagenet100/domainnet)")
    group.add_argument("--small_min_scale", type=float, nargs="+", default=[SMALL_CROP_DEFAULTS["small_min_scale"]])
    group.add_argument("--small_max_scale", type=float, nargs="+", default=[SMALL_CROP_DEFAULTS["small_max_scale"]])


def add_continual_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("continual")
    group.add_argument("--split_strategy", choices=["class", "data", "domain"], default=None)
    group.add_argument("--num_tasks", type=int, default=5)
    group.add_argument("--task_idx", type=int, default=None,
                       help="the first task to train (default 0; with --resume, the run's own)")
    group.add_argument("--distiller", choices=list(REGULARIZERS), default=None,
                       help="the regulariser from task 1 on; none = fine-tuning")
    group.add_argument("--pretrained_model", type=str, default=None)
    group.add_argument("--resume", action="store_true",
                       help="continue the run in <checkpoint_dir>/<name> from its manifest")
    group.add_argument("--teacher_bn_train", action="store_true",
                       help="reproduce the official CIFAR quirk: the frozen teacher's BatchNorm runs "
                            "in train mode after the first validation")
    group.add_argument("--online_eval", dest="online_eval", action="store_true", default=None,
                       help="train the online linear classifier (default: on for cifar100, digits)")
    group.add_argument("--no_online_eval", dest="online_eval", action="store_false")
    group.add_argument("--eval_every_task", action="store_true",
                       help="after the last task, linear-probe every task's checkpoint")
    group.add_argument("--linear_max_epochs", type=int, default=None,
                       help="epochs of the --eval_every_task probes (default: main_linear's)")


def add_optimization_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("optimisation")
    group.add_argument("--optimizer", choices=["sgd", "adam", "adamw"], default="sgd")
    group.add_argument("--lars", action="store_true")
    group.add_argument("--grad_clip_lars", action="store_true")
    group.add_argument("--eta_lars", type=float, default=1e-3)
    group.add_argument("--exclude_bias_n_norm", action="store_true")
    group.add_argument("--scheduler", choices=["warmup_cosine", "cosine", "step", "none"],
                       default="warmup_cosine")
    group.add_argument("--lr", type=float, default=0.3)
    group.add_argument("--classifier_lr", type=float, default=0.3)
    group.add_argument("--weight_decay", type=float, default=1e-4)
    group.add_argument("--warmup_epochs", type=int, default=10)
    group.add_argument("--warmup_start_lr", type=float, default=0.003)
    group.add_argument("--min_lr", type=float, default=0.0)
    group.add_argument("--lr_decay_steps", type=int, nargs="+", default=None)


def add_logging_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("logging and checkpoints")
    group.add_argument("--name", type=str, default=None)
    group.add_argument("--wandb", action="store_true")
    group.add_argument("--project", type=str, default=None)
    group.add_argument("--entity", type=str, default=None)
    group.add_argument("--offline", action="store_true")
    group.add_argument("--save_checkpoint", action="store_true",
                       help="accepted for the official scripts; checkpoints are always written")
    group.add_argument("--checkpoint_dir", type=str, default="trained_models")
    group.add_argument("--checkpoint_frequency", type=int, default=1)
    group.add_argument("--seed", type=int, default=5)
    group.add_argument("--knn_eval", action="store_true",
                       help="weighted kNN accuracy at each validation (off, as the official code)")
    group.add_argument("--knn_k", type=int, default=20)
    group.add_argument("--progress_bar", action="store_true", help="Lightning's progress bar")
    group.add_argument("--dry_run", action="store_true",
                       help="print the resolved configuration as JSON and exit")


def add_dataclass_flags(group: Any, cls: type, defaults: Mapping[str, Any] | None = None) -> None:
    """One flag per field of a registry dataclass, with the field's default (or ``defaults[name]``)."""
    defaults = defaults or {}
    for f in dataclasses.fields(cls):
        default = defaults.get(f.name, f.default)
        help_text = f.metadata.get("help")
        if isinstance(f.default, bool):
            group.add_argument(f"--{f.name}", action="store_true", default=default, help=help_text)
        else:
            group.add_argument(f"--{f.name}", type=type(f.default), default=default,
                               choices=f.metadata.get("choices"), help=help_text)


def build_parser(method: str | None = None) -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="main_pretrain.py",
        description="Continual self-supervised pretraining, task by task (PNR / CaSSLe / fine-tuning).",
    )
    parser.add_argument("--method", choices=list(METHODS), default="simclr")
    parser.add_argument("--encoder", choices=["resnet18", "resnet50"], default="resnet18")
    parser.add_argument("--zero_init_residual", action="store_true")
    add_data_args(parser)
    add_augmentation_args(parser)
    add_continual_args(parser)
    add_trainer_args(parser)
    add_optimization_args(parser)
    add_logging_args(parser)
    if method is not None:
        spec = method_spec(method)
        group = parser.add_argument_group(method)
        group.add_argument("--proj_hidden_dim", type=int, default=spec.proj_hidden_dim)
        group.add_argument("--output_dim", type=int, default=spec.output_dim)
        add_dataclass_flags(group, spec.params)
        add_dataclass_flags(parser.add_argument_group("regulariser (accepted whatever --distiller)"),
                            RegularizerParams, spec.regularizer_defaults)
    return parser


def parse_namespace(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The raw flags (both passes)."""
    first, _ = build_parser().parse_known_args(argv)
    return build_parser(first.method).parse_args(argv)


def trainer_config(ns: argparse.Namespace) -> TrainerConfig:
    hw = resolve_hardware_flags(ns.accelerator, ns.gpus, ns.devices, ns.strategy)
    return TrainerConfig(
        accelerator=hw.accelerator, devices=hw.devices, strategy=hw.strategy, num_nodes=ns.num_nodes,
        num_devices=hw.num_devices, precision=None if normalize_precision(ns.precision) == AUTO
        else normalize_precision(ns.precision),
        sync_batchnorm=ns.sync_batchnorm, check_val_every_n_epoch=ns.check_val_every_n_epoch,
        limit_train_batches=ns.limit_train_batches, limit_val_batches=ns.limit_val_batches,
        progress_bar=ns.progress_bar,
    )


def parse_args(argv: Sequence[str] | None = None) -> PretrainConfig:
    """Parse and resolve the command line. Raises CassleError for values that cannot work."""
    ns = parse_namespace(argv)
    return build_config(ns, trainer_config(ns))
