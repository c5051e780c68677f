"""Command line of ``main_linear.py`` (docs/official.md §5.1 "Linear", §6), parsed without torch.

Parsing ends in :class:`cassle.evaluation.config.LinearConfig`, whose field defaults are the flags'
defaults (``parser.set_defaults`` below), so the command line and the whole-run evaluation of
``main_pretrain.py --eval_every_task`` share one set of defaults and one resolution.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from cassle.args.common import OneLineParser, add_data_args, add_trainer_args, parse_accelerator
from cassle.data.splits import DOMAINNET_DOMAINS
from cassle.evaluation.config import DERIVED_FIELDS, FIELD_NAMES, LinearConfig, flag_defaults, resolve_linear_config
from cassle.registry import METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="main_linear.py",
        description="Linear probe of a frozen backbone: one checkpoint, or every task of a run folder.",
    )
    source = parser.add_argument_group("what to evaluate")
    source.add_argument("--pretrained_feature_extractor", type=str,
                        help="a checkpoint written by main_pretrain.py (or the official code)")
    source.add_argument("--run_dir", type=str,
                        help="a run folder of main_pretrain.py: probe the checkpoint of every task")
    source.add_argument("--method", choices=list(METHODS),
                        help="if given, a checkpoint of another method is refused")
    source.add_argument("--random_init", action="store_true",
                        help="probe a randomly initialised backbone (the forward-transfer baseline)")
    parser.add_argument("--encoder", choices=["resnet18", "resnet50"])
    add_data_args(parser)
    add_trainer_args(parser)
    cont = parser.add_argument_group("continual")
    cont.add_argument("--split_strategy", choices=["class", "data", "domain"])
    cont.add_argument("--num_tasks", type=int)
    cont.add_argument("--domain", choices=DOMAINNET_DOMAINS,
                      help="DomainNet: train and evaluate on this domain only (domain-aware probe)")
    cont.add_argument("--domain_aware", action="store_true",
                      help="DomainNet: also train one probe per domain and report their mean")
    cont.add_argument("--label_fraction", type=float,
                      help="train on a class-balanced fraction of the labels (0.01, 0.1), drawn with --seed")
    cont.add_argument("--semi_supervised", type=float,
                      help="train on this fraction of the labels, split as the official code: scikit-learn's "
                           "stratified train_test_split with random_state 42")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--optimizer", choices=["sgd"])
    opt.add_argument("--lr", type=float)
    opt.add_argument("--momentum", type=float,
                     help="SGD momentum: 0.0 as the official PNR probe (CaSSLe used 0.9)")
    opt.add_argument("--weight_decay", type=float)
    opt.add_argument("--scheduler", choices=["step", "cosine", "none"])
    opt.add_argument("--lr_decay_steps", type=int, nargs="+")
    opt.add_argument("--lr_decay_gamma", type=float)
    run = parser.add_argument_group("logging")
    run.add_argument("--name", type=str)
    run.add_argument("--wandb", action="store_true")
    run.add_argument("--project", type=str)
    run.add_argument("--entity", type=str)
    run.add_argument("--offline", action="store_true")
    run.add_argument("--save_checkpoint", action="store_true", help="also save the probe's weights")
    run.add_argument("--checkpoint_dir", type=str)
    run.add_argument("--seed", type=int)
    run.add_argument("--cache_features", action="store_true",
                     help="no train augmentation: features are computed once and the head trains on them "
                          "(fast on a CPU; not the official protocol)")
    run.add_argument("--knn_k", type=int, help="k of the weighted kNN accuracy (0: off)")
    run.add_argument("--output", type=str, help="where to write the metrics JSON")
    run.add_argument("--progress_bar", action="store_true")
    run.add_argument("--dry_run", action="store_true", help="print the resolved configuration as JSON and exit")
    # Defaults live on LinearConfig; they also replace those of the groups shared with pretraining.
    parser.set_defaults(**flag_defaults())
    return parser


def parse_args(argv: Sequence[str] | None = None) -> LinearConfig:
    """Parse ``main_linear.py``'s command line into the resolved, frozen :class:`LinearConfig`."""
    args = build_parser().parse_args(argv)
    parse_accelerator(args)
    values = {name: getattr(args, name) for name in FIELD_NAMES if name not in DERIVED_FIELDS and hasattr(args, name)}
    return resolve_linear_config(values)
