"""The linear probe of one backbone (docs/official.md §6), on either of two paths.

Frozen backbone in eval mode, ``Linear(features, num_classes)``, cross-entropy, SGD with a per-epoch
step schedule, full batches only (the last partial batch of every epoch is dropped, as officially).

* the official path: a Lightning fit on random-resized crops + flips (``cassle.evaluation.lightning_probe``);
* ``--cache_features``: features computed once without augmentation, the head trained on them in a
  plain loop with the same optimiser, schedule and batches. Lightning is not imported.

Both report the same metrics through :class:`cassle.utils.metrics.AccuracyAccumulator`:
``val_loss``, ``val_acc1``, ``val_acc5`` on the whole evaluation set; class split:
``val_acc1_task<j>`` = accuracy of the full probe on the test images of task j's classes; DomainNet:
``val_acc1_<domain>``; ``knn_acc1``/``knn_acc5`` = weighted kNN on the frozen features with the probe's
training images as the bank (unless ``--knn_k 0``).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from cassle.errors import CassleError
from cassle.evaluation.backbone import build_head, build_probe_backbone, freeze
from cassle.evaluation.config import LinearConfig
from cassle.evaluation.data import ProbeData
from cassle.utils.metrics import AccuracyAccumulator, class_to_task
from cassle.utils.report import is_finite_number, log


class ProbeResult(NamedTuple):
    """What one probe gives: its metrics, the checkpoint's metadata and the trained head's weights."""

    metrics: dict[str, float]
    meta: dict[str, Any]
    head: dict[str, torch.Tensor]


# ============================================================================ settings
def metrics_factory(config: LinearConfig) -> Callable[[], AccuracyAccumulator]:
    """A constructor of the accumulator for the probe's split: per task (class split: the task of each
    target's class), per domain (tags that come with each sample) or none (data split)."""
    if config.split_strategy == "class" and config.tasks:
        lookup = class_to_task(config.tasks, config.num_classes)
        if min(lookup) < 0:
            raise CassleError("the class split does not cover every class")
        names = list(config.task_names)
        return lambda: AccuracyAccumulator(names, class_to_group=lookup)
    if config.split_strategy == "domain":
        names = list(config.task_names)
        return lambda: AccuracyAccumulator(names)
    return lambda: AccuracyAccumulator()


def probe_device(config: LinearConfig) -> tuple[str, Any, torch.device]:
    """(Lightning accelerator, Lightning devices, torch device). The probe runs on one device, as
    officially (docs/official.md §6: 1 GPU)."""
    accelerator = config.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu":
        if not torch.cuda.is_available():
            raise CassleError("no GPU found (the flags ask for one: --gpus/--accelerator); pass --accelerator cpu")
        devices = config.devices
        index = devices[0] if isinstance(devices, tuple) and devices else 0
        if config.num_devices > 1:
            log(f"note: the linear probe runs on one GPU (cuda:{index}), as the official probe")
        return "gpu", [index], torch.device("cuda", index)
    if accelerator == "mps":
        return "mps", 1, torch.device("mps")
    return "cpu", 1, torch.device("cpu")


def probe_precision(config: LinearConfig, device: torch.device) -> str:
    """The probe's Lightning precision on ``device``: ``--precision`` under the machine's policy
    (``cassle.utils.hardware``: no flag means fp16 mixed on a GPU, bf16 only on a CPU with native bf16)."""
    from cassle.utils.hardware import resolve_precision

    precision, note = resolve_precision(config.precision, "gpu" if device.type == "cuda" else device.type)
    if note and precision not in _NOTED:
        _NOTED.add(precision)
        log(note)
    return precision


_NOTED: set = set()


def _autocast(config: LinearConfig, device: torch.device) -> Any:
    precision = probe_precision(config, device)
    if precision == "16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def limit_batches(limit: float | None, num_batches: int) -> int:
    """Batches per epoch under ``--limit_*_batches``: an int (>= 1) is a count, a float below 1 a fraction."""
    if limit is None:
        return num_batches
    if limit >= 1:
        return min(num_batches, int(limit))
    return min(num_batches, int(limit * num_batches))


# ============================================================================ features and the cached path
def extract_features(backbone: nn.Module, loader: Any, device: torch.device, autocast: Any = None,
                     limit: float | None = None) -> dict[str, Any]:
    """Frozen-backbone features of every batch (eval mode, no gradient).

    Returns:
        ``feats`` (N, D) float32, ``targets`` (N,), ``domains`` (N,) or None without domain tags.
    """
    backbone.eval()
    feats, targets, domains = [], [], []
    num_batches = limit_batches(limit, len(loader))
    with torch.no_grad():
        for b, batch in enumerate(loader):
            if b >= num_batches:
                break
            with (autocast if autocast is not None else contextlib.nullcontext()):
                f = backbone(batch[0].to(device, non_blocking=True))
            feats.append(f.float())
            targets.append(batch[1].to(device).long())
            if len(batch) > 2:
                domains.append(batch[2].to(device).long())
    if not feats:
        raise CassleError("no images to compute features of (empty training or evaluation set)")
    return {"feats": torch.cat(feats), "targets": torch.cat(targets),
            "domains": torch.cat(domains) if domains else None}


def knn_accuracy(train: dict[str, Any], val: dict[str, Any], k: int) -> dict[str, float]:
    """Weighted kNN top-1/top-5 (percent) of ``val`` with ``train``'s features as the bank."""
    from cassle.utils.knn import WeightedKNNClassifier

    knn = WeightedKNNClassifier(k=k)
    knn.update(train_features=train["feats"], train_targets=train["targets"],
               test_features=val["feats"], test_targets=val["targets"])
    acc1, acc5 = knn.compute()
    return {"knn_acc1": acc1, "knn_acc5": acc5}


def train_head_on_features(head: nn.Module, train: dict[str, Any], config: LinearConfig, logger: Any = None) -> None:
    """``--cache_features``: SGD on the cached features, the same optimiser and per-epoch schedule as
    the Lightning path, in full batches of ``--batch_size`` (the last partial batch of each epoch is
    dropped) drawn in a ``--seed``-fixed order.

    Args:
        head: the linear classifier, trained in place.
        train: ``feats`` (N, D) and ``targets`` (N,) of the training images.
    """
    feats, targets = train["feats"], train["targets"]
    optimizer = torch.optim.SGD(head.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    generator = torch.Generator().manual_seed(int(config.seed))
    n, bs = feats.size(0), int(config.batch_size)
    num_batches = limit_batches(config.limit_train_batches, n // bs)
    head.train()
    for epoch in range(config.max_epochs):
        lr = config.lr * config.lr_factor(epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(n, generator=generator).to(feats.device)
        total = 0.0
        for b in range(num_batches):
            idx = order[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(head(feats[idx]), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach())
        if logger is not None:
            logger.log_metrics({"train_loss": total / max(num_batches, 1), "lr": lr, "epoch": epoch}, step=epoch)
    head.eval()


def evaluate_head(head: nn.Module, val: dict[str, Any], metrics: AccuracyAccumulator,
                  batch_size: int) -> dict[str, float]:
    """The head's metrics on cached evaluation features (``feats``, ``targets``, ``domains``)."""
    head.eval()
    with torch.no_grad():
        for start in range(0, val["feats"].size(0), batch_size):
            end = start + batch_size
            domains = val["domains"][start:end] if val["domains"] is not None else None
            metrics.update(head(val["feats"][start:end]), val["targets"][start:end], domains)
    return metrics.compute()


# ============================================================================ one probe
def _seed_all(seed: int) -> None:
    import random

    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def probe_once(config: LinearConfig, backbone: nn.Module, data: ProbeData, logger: Any = None,
               knn: bool = True) -> tuple[dict[str, float], nn.Module]:
    """One linear probe on the (already frozen, on-device) backbone, on ``config.domain``'s images
    (all of them for None).

    Returns:
        ``(metrics, trained head)``.
    """
    accelerator, devices, device = probe_device(config)
    _seed_all(config.seed)
    domain = config.domain
    where = f" of domain {domain}" if domain else ""
    train_idx, val_idx = data.train_indices(domain), data.val_indices(domain)
    if not train_idx or not val_idx:
        raise CassleError(f"no {'training' if not train_idx else 'evaluation'} images{where} for the probe")
    if len(train_idx) < config.batch_size:
        raise CassleError(f"the probe has {len(train_idx)} training images{where}, fewer than --batch_size "
                          f"{config.batch_size}: not one full batch (the last partial batch of an epoch is "
                          f"dropped, as officially); lower --batch_size")
    head = build_head(backbone.num_features, config.num_classes, config.seed)
    make_metrics = metrics_factory(config)
    autocast = _autocast(config, device)
    train_feats = val_feats = None
    if config.cache_features or (knn and config.knn_k > 0):
        train_feats = extract_features(backbone, data.loader("train", train_idx), device, autocast)
        val_feats = extract_features(backbone, data.loader("val", val_idx), device, autocast, config.limit_val_batches)
    if config.cache_features:
        head = head.to(device)
        train_head_on_features(head, train_feats, config, logger)
        metrics = evaluate_head(head, val_feats, make_metrics(), int(config.batch_size))
    else:
        from cassle.evaluation.lightning_probe import fit_linear_probe

        train_loader = data.loader("train", train_idx, augment=True, seed=config.seed, persistent=True)
        val_loader = data.loader("val", val_idx, persistent=True)
        metrics, head = fit_linear_probe(
            backbone, head, train_loader, val_loader, config, make_metrics,
            accelerator=accelerator, devices=devices, precision=probe_precision(config, device), logger=logger,
        )
    if knn and config.knn_k > 0:
        metrics.update(knn_accuracy(train_feats, val_feats, config.knn_k))
    if logger is not None:
        logger.log_metrics({f"final/{k}": v for k, v in metrics.items() if is_finite_number(v)})
    return metrics, head


def probe_checkpoint(config: LinearConfig, checkpoint: str | None, data: ProbeData | None = None,
                     logger: Any = None) -> ProbeResult:
    """The probe of one checkpoint (``None``: a random backbone from ``--seed``).

    ``--domain d`` trains and evaluates on that domain only. ``--domain_aware`` adds one probe per domain
    (trained and evaluated on it): ``domain_aware_acc1_<d>``, their unweighted mean
    ``domain_aware_acc1``, and ``domain_agnostic_acc1`` = ``val_acc1`` of the all-domain probe.

    Returns:
        The metrics, the checkpoint's metadata and the (all-domain) head's weights on the CPU.
    """
    data = data if data is not None else ProbeData(config)
    _, _, device = probe_device(config)
    backbone, meta = build_probe_backbone(config, checkpoint)
    backbone = freeze(backbone).to(device)
    metrics, head = probe_once(config, backbone, data, logger=logger)
    if config.domain_aware:
        from cassle.data.splits import DOMAINNET_DOMAINS

        per_domain = []
        for domain in DOMAINNET_DOMAINS:
            log(f"  domain-aware probe: {domain}")
            acc = probe_once(dataclasses.replace(config, domain=domain), backbone, data, knn=False)[0]["val_acc1"]
            metrics[f"domain_aware_acc1_{domain}"] = acc
            per_domain.append(acc)
        metrics["domain_aware_acc1"] = sum(per_domain) / len(per_domain)
        metrics["domain_agnostic_acc1"] = metrics["val_acc1"]
    return ProbeResult(metrics, meta, {k: v.detach().cpu() for k, v in head.state_dict().items()})
