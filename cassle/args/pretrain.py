"""Command line of ``main_pretrain.py``: the official flag names, parsed and resolved without torch.

Parsing happens in two phases, as in the official code: the first pass reads ``--method`` and
``--distiller``, the second adds the argument groups those two own (so per-method defaults such as
SimCLR's temperature 0.1 versus MoCo's 0.2 come out right). Nothing here imports torch, Lightning or
wandb: ``--dry_run`` must answer in a fraction of a second.
"""

from __future__ import annotations

import argparse
import os
from typing import Any, Sequence

from cassle.args.common import (
    add_data_args,
    add_trainer_args,
    parse_accelerator,
    scaled_lr,
)
from cassle.data.info import spec_from_args
from cassle.data.splits import DOMAINNET_DOMAINS, class_split
from cassle.errors import CassleError

METHOD_NAMES = ("simclr", "mocov2plus", "byol", "barlow_twins", "vicreg")

# Which regularisers may wrap which method (spec 4.6). No distiller = fine-tuning.
PNR_DISTILLERS = {
    "simclr_pnr": ("simclr",),
    "mocov2plus_pnr": ("mocov2plus",),
    "byol_pnr": ("byol",),
    "barlow_pnr": ("barlow_twins",),
    "vicreg_pnr": ("vicreg",),
}
CASSLE_DISTILLERS = {
    "contrastive": ("simclr", "mocov2plus"),
    "predictive": ("byol",),
    "decorrelative": ("barlow_twins",),
    "predictive_mse": ("vicreg",),
}
DISTILLER_METHODS = {**PNR_DISTILLERS, **CASSLE_DISTILLERS}
DISTILLER_NAMES = tuple(DISTILLER_METHODS)

MOMENTUM_METHODS = ("mocov2plus", "byol")

# Pretraining epochs per task of the paper's recipes, used when --max_epochs is not given; datasets
# without a recipe take the one of a similar benchmark (cifar10: CIFAR-100's; stl10, imagenet and
# custom: ImageNet-100's).
DEFAULT_EPOCHS = {"cifar100": 500, "imagenet100": 400, "domainnet": 200, "digits": 10,
                  "cifar10": 500, "stl10": 400, "imagenet": 400, "custom": 400}

# Flags that never change what a run computes: they may differ when a run is resumed.
NON_RESULT_FLAGS = frozenset(
    {
        "wandb", "project", "entity", "offline", "num_workers", "resume", "dry_run",
        "checkpoint_dir", "name", "task_idx", "pretrained_model", "save_checkpoint",
        "checkpoint_frequency", "progress_bar", "eval_every_task", "linear_max_epochs",
        "dali", "dali_device", "data_dir", "train_dir", "val_dir", "gpus", "devices",
        "accelerator", "strategy", "num_nodes", "limit_val_batches", "check_val_every_n_epoch",
        "knn_eval", "knn_k",
    }
)


def _float_list(values: Sequence[float] | float) -> list[float]:
    return list(values) if isinstance(values, (list, tuple)) else [values]


def add_augmentation_args(parser: argparse.ArgumentParser) -> None:
    """Per-view augmentation flags: one value (both views) or two (view 1, view 2), spec 2.5."""
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
    group.add_argument("--num_crops", type=int, default=2, choices=[2])


def add_continual_args(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("continual")
    group.add_argument("--split_strategy", choices=["class", "data", "domain"], default=None)
    group.add_argument("--num_tasks", type=int, default=5)
    group.add_argument("--task_idx", type=int, default=0)
    group.add_argument("--distiller", choices=DISTILLER_NAMES, default=None)
    group.add_argument("--pretrained_model", type=str, default=None)
    group.add_argument("--resume", action="store_true",
                       help="continue the run in <checkpoint_dir>/<name> from its manifest")
    group.add_argument("--teacher_bn_train", action="store_true",
                       help="reproduce the official CIFAR quirk: the frozen teacher's BatchNorm runs "
                            "in train mode after the first validation (spec 1.4 step 9)")
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


def add_method_args(parser: argparse.ArgumentParser, method: str) -> None:
    """The method's own flags with the official parser defaults (DECISIONS.md)."""
    group = parser.add_argument_group(method)
    output_dim = {"simclr": 128, "mocov2plus": 128, "byol": 256}.get(method, 2048)
    group.add_argument("--proj_hidden_dim", type=int, default=2048)
    group.add_argument("--output_dim", type=int, default=output_dim)
    if method == "simclr":
        group.add_argument("--temperature", type=float, default=0.1)
    if method == "mocov2plus":
        group.add_argument("--temperature", type=float, default=0.2)
        group.add_argument("--queue_size", type=int, default=65536)
    if method == "byol":
        group.add_argument("--pred_hidden_dim", type=int, default=512)
    if method in MOMENTUM_METHODS:
        group.add_argument("--base_tau_momentum", type=float, default=0.99)
        group.add_argument("--final_tau_momentum", type=float, default=1.0)
        group.add_argument("--momentum_classifier", action="store_true")
    if method == "barlow_twins":
        group.add_argument("--scale_loss", type=float, default=0.025)
        group.add_argument("--lamb", type=float, default=5e-3)
    if method == "vicreg":
        group.add_argument("--sim_loss_weight", type=float, default=25.0)
        group.add_argument("--var_loss_weight", type=float, default=25.0)
        group.add_argument("--cov_loss_weight", type=float, default=1.0)


def add_distiller_args(parser: argparse.ArgumentParser, method: str) -> None:
    """Regulariser flags. Always accepted (a fine-tuning run simply does not use them)."""
    group = parser.add_argument_group("regulariser")
    group.add_argument("--distill_lamb", type=float, default=25.0 if method == "vicreg" else 1.0)
    group.add_argument("--distill_temperature", type=float, default=0.2)
    group.add_argument("--distill_proj_hidden_dim", type=int, default=2048)
    group.add_argument("--distill_barlow_lamb", type=float, default=5e-3)
    group.add_argument("--distill_scale_loss", type=float, default=0.1)
    group.add_argument("--negative_lamb", type=float, default=23.0 if method == "vicreg" else 1.0)
    group.add_argument("--loss_alpha", type=float, default=0.5,
                       help="parsed for the official scripts; unused (as officially)")


def build_parser(method: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main_pretrain.py",
        description="Continual self-supervised pretraining, task by task (PNR / CaSSLe / fine-tuning).",
    )
    parser.add_argument("--method", choices=METHOD_NAMES, default="simclr")
    parser.add_argument("--encoder", choices=["resnet18", "resnet50"], default="resnet18")
    parser.add_argument("--zero_init_residual", action="store_true")
    add_data_args(parser)
    add_augmentation_args(parser)
    add_continual_args(parser)
    add_trainer_args(parser)
    add_optimization_args(parser)
    add_logging_args(parser)
    if method is not None:
        add_method_args(parser, method)
        add_distiller_args(parser, method)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse and resolve the command line. Raises CassleError for values that cannot work."""
    first, _ = build_parser().parse_known_args(argv)
    args = build_parser(first.method).parse_args(argv)
    resolve(args)
    return args


def _per_view(args: argparse.Namespace, flag: str, default: Any = None) -> list[Any]:
    values = getattr(args, flag)
    values = _float_list(default if values is None else values)
    if len(values) == 1:
        values = values * args.num_crops
    if len(values) != args.num_crops:
        raise CassleError(f"--{flag} takes 1 value or {args.num_crops} (one per view), got {len(values)}")
    return values


def resolve(args: argparse.Namespace) -> None:
    """Fill derived settings in place (spec 1.4 step 1, DECISIONS.md) and validate combinations."""
    spec = spec_from_args(args)
    args.dataset_spec = spec.as_dict()
    args.num_classes = spec.num_classes
    args.cifar = spec.small_images

    if args.split_strategy is None:
        args.split_strategy = spec.default_split_strategy
    if args.split_strategy == "domain" and args.dataset != "domainnet":
        raise CassleError("--split_strategy domain needs --dataset domainnet")
    if args.dataset == "domainnet" and args.split_strategy != "domain":
        raise CassleError("--dataset domainnet supports only --split_strategy domain")
    if args.split_strategy not in spec.split_strategies:  # custom --no_labels: no class split
        raise CassleError(f"--split_strategy {args.split_strategy} needs labels: --dataset custom --no_labels "
                          f"supports only --split_strategy data")
    if args.num_tasks < 1:
        raise CassleError(f"--num_tasks must be at least 1, got {args.num_tasks}")
    if args.split_strategy == "domain" and args.num_tasks != len(DOMAINNET_DOMAINS):
        raise CassleError(f"--num_tasks must be {len(DOMAINNET_DOMAINS)} for DomainNet (one task per domain)")
    if not 0 <= args.task_idx < args.num_tasks:
        raise CassleError(f"--task_idx must be in [0, {args.num_tasks - 1}], got {args.task_idx}")

    if args.split_strategy == "class":
        args.tasks = class_split(args.num_classes, args.num_tasks, args.seed)
    else:
        args.tasks = None
    args.task_names = list(DOMAINNET_DOMAINS) if args.split_strategy == "domain" else [
        f"task{t}" for t in range(args.num_tasks)
    ]

    if args.distiller is not None and args.method not in DISTILLER_METHODS[args.distiller]:
        allowed = ", ".join(DISTILLER_METHODS[args.distiller])
        raise CassleError(f"--distiller {args.distiller} works with --method {allowed}, not {args.method}")
    if args.distiller == "vicreg_pnr" and args.negative_lamb >= args.distill_lamb:
        raise CassleError(
            f"--negative_lamb ({args.negative_lamb}) must be smaller than --distill_lamb "
            f"({args.distill_lamb}) for vicreg_pnr: otherwise the objective is unbounded below"
        )

    if args.max_epochs is None:
        args.max_epochs = DEFAULT_EPOCHS[args.dataset]
    if args.max_epochs < 1:
        raise CassleError(f"--max_epochs must be at least 1, got {args.max_epochs}")
    if args.batch_size < 1:
        raise CassleError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.online_eval is None:
        args.online_eval = spec.online_eval
    if args.online_eval:
        spec.require_evaluation("--online_eval", every_train_label=True)
    if args.knn_eval:
        spec.require_evaluation("--knn_eval", every_train_label=True)
    if args.eval_every_task:
        spec.require_evaluation("--eval_every_task")
    if args.scheduler == "step" and not args.lr_decay_steps:
        raise CassleError("--scheduler step needs --lr_decay_steps")

    # Per-view augmentation settings (spec 2.5). Small-image datasets crop at their native size.
    default_min_scale = 0.4 if args.dataset == "digits" else 0.08
    sizes = _per_view(args, "size", spec.size) if spec.size_honoured else [spec.size] * args.num_crops
    flip = 0.0 if args.dataset == "digits" else 0.5
    per_view = {
        flag: _per_view(args, flag, default_min_scale if flag == "min_scale" else None)
        for flag in ("brightness", "contrast", "saturation", "hue", "gaussian_prob",
                     "solarization_prob", "min_scale")
    }
    args.transform_kwargs = [
        {**{flag: values[v] for flag, values in per_view.items()},
         "size": int(sizes[v]), "horizontal_flip_prob": flip}
        for v in range(args.num_crops)
    ]
    for cfg in args.transform_kwargs:
        if not 0.0 < cfg["min_scale"] <= 1.0:
            raise CassleError(f"--min_scale must be in (0, 1], got {cfg['min_scale']}")

    parse_accelerator(args)
    if args.fast_data and args.num_devices * args.num_nodes > 1:
        raise CassleError("--fast_data feeds one device (its batches are not sharded across devices): "
                          "use it with a single GPU, or drop it for multi-GPU runs")
    if args.method == "mocov2plus":
        global_batch = args.batch_size * args.num_devices * args.num_nodes
        if args.queue_size % global_batch != 0:
            raise CassleError(f"--queue_size ({args.queue_size}) must be a multiple of the global batch "
                              f"({global_batch} = --batch_size x devices)")
    args.lr_scaled = scaled_lr(args.lr, args.batch_size, args.num_devices * args.num_nodes)

    if args.name is None:
        parts = [args.method, args.distiller or "finetune", args.dataset]
        args.name = "-".join(parts)
    if "/" in args.name or args.name in (".", ".."):
        raise CassleError(f"--name must be a plain folder name, got {args.name!r}")
    args.run_dir = os.path.join(args.checkpoint_dir, args.name)
    if args.wandb and not args.offline and not args.project:
        raise CassleError("--wandb needs --project (or --offline)")


def config_dict(args: argparse.Namespace) -> dict[str, Any]:
    """The resolved configuration as a JSON-serialisable dict (what --dry_run prints)."""
    return {key: value for key, value in sorted(vars(args).items())}
