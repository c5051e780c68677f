"""Command line of ``main_linear.py`` (spec 5.1 "Linear", spec 6), parsed without torch."""

from __future__ import annotations

import argparse
import os
from typing import Sequence

from cassle.args.common import add_data_args, add_trainer_args, parse_accelerator
from cassle.args.pretrain import METHOD_NAMES
from cassle.data.info import spec_from_args
from cassle.data.splits import DOMAINNET_DOMAINS, class_split
from cassle.errors import CassleError

# Probe defaults of spec 6: 100 epochs, SGD without momentum (the official PNR probe), steps at 60
# and 80, batch 256, weight decay 0.
DEFAULT_LINEAR_EPOCHS = 100


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="main_linear.py",
        description="Linear probe of a frozen backbone: one checkpoint, or every task of a run folder.",
    )
    source = parser.add_argument_group("what to evaluate")
    source.add_argument("--pretrained_feature_extractor", type=str, default=None,
                        help="a checkpoint written by main_pretrain.py (or the official code)")
    source.add_argument("--run_dir", type=str, default=None,
                        help="a run folder of main_pretrain.py: probe the checkpoint of every task")
    source.add_argument("--method", choices=METHOD_NAMES, default=None,
                        help="if given, a checkpoint of another method is refused")
    source.add_argument("--random_init", action="store_true",
                        help="probe a randomly initialised backbone (the forward-transfer baseline)")
    parser.add_argument("--encoder", choices=["resnet18", "resnet50"], default="resnet18")
    add_data_args(parser)
    add_trainer_args(parser)
    cont = parser.add_argument_group("continual")
    cont.add_argument("--split_strategy", choices=["class", "data", "domain"], default=None)
    cont.add_argument("--num_tasks", type=int, default=5)
    cont.add_argument("--domain", choices=DOMAINNET_DOMAINS, default=None,
                      help="DomainNet: train and evaluate on this domain only (domain-aware probe)")
    cont.add_argument("--domain_aware", action="store_true",
                      help="DomainNet: also train one probe per domain and report their mean")
    cont.add_argument("--label_fraction", type=float, default=1.0,
                      help="train on a class-balanced fraction of the labels (0.01, 0.1), drawn with --seed")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", choices=["sgd"], default="sgd")
    opt.add_argument("--lr", type=float, default=0.1)
    opt.add_argument("--momentum", type=float, default=0.0,
                     help="SGD momentum: 0.0 as the official PNR probe (CaSSLe used 0.9)")
    opt.add_argument("--weight_decay", type=float, default=0.0)
    opt.add_argument("--scheduler", choices=["step", "cosine", "none"], default="step")
    opt.add_argument("--lr_decay_steps", type=int, nargs="+", default=[60, 80])
    opt.add_argument("--lr_decay_gamma", type=float, default=0.1)
    run = parser.add_argument_group("logging")
    run.add_argument("--name", type=str, default=None)
    run.add_argument("--wandb", action="store_true")
    run.add_argument("--project", type=str, default=None)
    run.add_argument("--entity", type=str, default=None)
    run.add_argument("--offline", action="store_true")
    run.add_argument("--save_checkpoint", action="store_true", help="also save the probe's weights")
    run.add_argument("--checkpoint_dir", type=str, default="trained_models")
    run.add_argument("--seed", type=int, default=5)
    run.add_argument("--cache_features", action="store_true",
                     help="no train augmentation: features are computed once and the head trains on them "
                          "(fast on a CPU; not the official protocol)")
    run.add_argument("--knn_k", type=int, default=20, help="k of the weighted kNN accuracy (0: off)")
    run.add_argument("--output", type=str, default=None, help="where to write the metrics JSON")
    run.add_argument("--progress_bar", action="store_true")
    run.add_argument("--dry_run", action="store_true", help="print the resolved configuration as JSON and exit")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    args = build_parser().parse_args(argv)
    resolve(args)
    return args


def resolve(args: argparse.Namespace) -> None:
    spec = spec_from_args(args)
    spec.require_evaluation("the linear probe")
    if args.size and len(args.size) != 1:
        raise CassleError(f"--size takes one value for the probe, got {len(args.size)}")
    args.dataset_spec = spec.as_dict()
    args.num_classes = spec.num_classes
    args.cifar = spec.small_images
    sources = [bool(args.pretrained_feature_extractor), bool(args.run_dir), args.random_init]
    if sum(sources) != 1:
        raise CassleError("give exactly one of --pretrained_feature_extractor, --run_dir, --random_init")
    if args.split_strategy is None:
        args.split_strategy = spec.default_split_strategy
    if args.split_strategy == "domain" and args.dataset != "domainnet":
        raise CassleError("--split_strategy domain needs --dataset domainnet")
    if args.domain is not None and args.dataset != "domainnet":
        raise CassleError("--domain needs --dataset domainnet")
    if args.domain_aware and args.dataset != "domainnet":
        raise CassleError("--domain_aware needs --dataset domainnet")
    if args.domain_aware and args.domain is not None:
        raise CassleError("--domain_aware trains one probe per domain itself: do not combine it with --domain")
    if args.batch_size < 1:
        raise CassleError(f"--batch_size must be at least 1, got {args.batch_size}")
    if args.knn_k < 0:
        raise CassleError(f"--knn_k must be 0 (off) or positive, got {args.knn_k}")
    if args.split_strategy == "domain":
        args.num_tasks = len(DOMAINNET_DOMAINS)
    args.tasks = class_split(args.num_classes, args.num_tasks, args.seed) if args.split_strategy == "class" else None
    args.task_names = list(DOMAINNET_DOMAINS) if args.split_strategy == "domain" else [
        f"task{t}" for t in range(args.num_tasks)
    ]
    if not 0.0 < args.label_fraction <= 1.0:
        raise CassleError(f"--label_fraction must be in (0, 1], got {args.label_fraction}")
    if args.max_epochs is None:
        args.max_epochs = DEFAULT_LINEAR_EPOCHS
    if args.max_epochs < 1:
        raise CassleError(f"--max_epochs must be at least 1, got {args.max_epochs}")
    parse_accelerator(args)
    for path, flag in ((args.pretrained_feature_extractor, "--pretrained_feature_extractor"),
                       (args.run_dir, "--run_dir")):
        if path and not args.dry_run and not os.path.exists(path):
            raise CassleError(f"{flag} {path} does not exist")
    if args.name is None:
        source = args.run_dir or args.pretrained_feature_extractor or "random"
        args.name = os.path.basename(os.path.normpath(source)).replace(".ckpt", "") + "-linear"
    if args.wandb and not args.offline and not args.project:
        raise CassleError("--wandb needs --project (or --offline)")
