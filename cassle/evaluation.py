"""Linear evaluation (spec 6): one checkpoint, or every task of a run folder.

* :func:`run_probe` trains and evaluates the linear probe of one checkpoint (or of a randomly
  initialised backbone): frozen backbone in eval mode, ``Linear(features, num_classes)``, cross-entropy,
  SGD with a per-epoch step schedule. Two paths give the same metrics dict: the official one (a
  Lightning fit with random-resized-crop + flip, ``cassle.methods.linear``) and ``--cache_features``
  (features computed once without augmentation, the head trained on them in a plain loop).
* :func:`evaluate_run` probes the final checkpoint of every finished task of a run folder and the
  random-init backbone, builds the accuracy matrix ``acc[i][j]`` and the continual metrics
  (``cassle.utils.metrics``), and writes ``results.json``, ``results.md`` and ``results.png`` there.
* :func:`summarize_runs` puts the ``results.json`` of several runs into one markdown table.

Command line (torch is imported only where needed)::

    python -m cassle.evaluation summary RUN_DIR [RUN_DIR ...]
    python -m cassle.evaluation latest-checkpoint RUN_DIR

Metrics (all accuracies in percent): ``val_loss``, ``val_acc1``, ``val_acc5`` on the whole evaluation
set; class split: ``val_acc1_task<j>`` = accuracy of the full probe on the test images of task j's
classes; DomainNet: ``val_acc1_<domain>`` per domain; ``knn_acc1``/``knn_acc5`` = weighted kNN on the
frozen features with the probe's training images as the bank (unless ``--knn_k 0``).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import sys
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from cassle.errors import CassleError, CheckpointError
from cassle.utils.report import fmt, is_finite_number, log, markdown_table

ENCODER_PREFIX = "encoder."
RESULT_FILES = ("results.json", "results.md", "results.png")




def _jsonable(obj: Any) -> Any:
    """NaN and infinities become None (strict JSON); tuples become lists."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


# ============================================================================ label fraction
def balanced_subset(targets: Sequence[int], indices: Sequence[int], fraction: float, seed: int) -> List[int]:
    """A class-balanced subset of ``indices`` for ``--label_fraction``.

    Per class c with n_c samples among ``indices``: ``max(1, round(fraction * n_c))`` of them (rounding
    half up), drawn with ``numpy.random.RandomState(seed)`` class by class in ascending class order, so
    the subset is fixed by the seed. ``fraction >= 1`` keeps every index.

    Returns:
        The chosen indices, ascending.
    """
    import numpy as np

    if fraction >= 1.0:
        return sorted(int(i) for i in indices)
    by_class: Dict[int, List[int]] = {}
    for i in sorted(int(i) for i in indices):
        by_class.setdefault(int(targets[i]), []).append(i)
    rng = np.random.RandomState(seed)
    chosen: List[int] = []
    for c in sorted(by_class):
        members = by_class[c]
        k = max(1, int(math.floor(fraction * len(members) + 0.5)))
        chosen.extend(members[p] for p in rng.permutation(len(members))[:k])
    return sorted(chosen)


# ============================================================================ backbone
def load_encoder_state(path: str, encoder: str, method: Optional[str] = None) -> Tuple[Dict[str, Any], Dict[str, Any]]:
    """The online encoder's weights of a checkpoint (keys ``encoder.*``, prefix stripped) and its metadata.

    Only keys that start with ``encoder.`` are taken: ``momentum_encoder.*`` and ``frozen_encoder.*`` of
    momentum methods and official task >= 1 checkpoints are not the online encoder. A checkpoint of
    another ``--method`` or ``--encoder`` (when its metadata says so), or without encoder keys, is a
    one-line :class:`CheckpointError`.
    """
    from cassle.utils.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    meta = checkpoint.get("cassle")
    meta = meta if isinstance(meta, dict) else {}
    if method is not None and meta.get("method") not in (None, method):
        raise CheckpointError(f"checkpoint {path} was trained with --method {meta['method']}, not --method {method}")
    if meta.get("encoder") not in (None, encoder):
        raise CheckpointError(f"checkpoint {path} holds a {meta['encoder']} encoder, not --encoder {encoder}")
    state = {}
    for key, value in checkpoint["state_dict"].items():
        if key.startswith(ENCODER_PREFIX):
            state[key[len(ENCODER_PREFIX):].replace("_orig_mod.", "")] = value
    if not state:
        raise CheckpointError(f"checkpoint {path} has no encoder weights (no 'encoder.*' keys in its state_dict)")
    return state, meta


def build_probe_backbone(args: argparse.Namespace, checkpoint: Optional[str]) -> Tuple[Any, Dict[str, Any]]:
    """A fresh ``--encoder`` trunk with the checkpoint's encoder loaded strictly, or, for
    ``checkpoint=None``, randomly initialised from ``--seed`` (the forward-transfer baseline).

    The small-image stem follows the checkpoint's metadata, else the shape of its first convolution
    (3x3: small-image stem, official checkpoints), else the dataset.
    """
    import torch

    from cassle.backbones import build_backbone

    if checkpoint is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(args.seed)
            backbone = build_backbone(args.encoder, args.cifar)
        return backbone, {}
    state, meta = load_encoder_state(checkpoint, args.encoder, getattr(args, "method", None))
    small = meta.get("small_images")
    if small is None:
        conv1 = state.get("conv1.weight")
        small = bool(conv1.shape[-1] == 3) if conv1 is not None and conv1.ndim == 4 else args.cifar
    backbone = build_backbone(args.encoder, bool(small))
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"checkpoint {checkpoint}: its encoder weights do not match --encoder {args.encoder}: "
                              f"{', '.join(detail)} keys")
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(f"checkpoint {checkpoint}: encoder weight {key} is {tuple(value.shape)} there, "
                                  f"{tuple(own[key].shape)} in a fresh --encoder {args.encoder}")
    backbone.load_state_dict(state, strict=True)
    return backbone, meta


def build_head(num_features: int, num_classes: int, seed: int) -> Any:
    """``Linear(num_features, num_classes)`` initialised from ``seed`` (the same in both probe paths)."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return torch.nn.Linear(num_features, num_classes)


def freeze(backbone: Any) -> Any:
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()


# ============================================================================ data
class ProbeData:
    """The probe's datasets, read once (on first use) and shared by every probe of a run.

    DomainNet is always read with all six domains; ``--domain`` and the domain-aware probes select
    samples by their domain tag.
    """

    def __init__(self, args: argparse.Namespace):
        self.args = args
        self._sets: Optional[Tuple[Any, Any]] = None

    def _load(self) -> Tuple[Any, Any]:
        if self._sets is None:
            from cassle.data.datasets import build_datasets

            args = self.args
            # STL-10: the probe trains on the labelled training images only (official "train" split)
            self._sets = build_datasets(args.dataset, data_dir=args.data_dir, train_dir=args.train_dir,
                                        val_dir=args.val_dir, unlabeled=False)
        return self._sets

    @property
    def train(self) -> Any:
        return self._load()[0]

    @property
    def val(self) -> Any:
        return self._load()[1]

    @staticmethod
    def _select(dataset: Any, domain: Optional[str]) -> List[int]:
        if domain is None:
            return list(range(len(dataset.targets)))
        from cassle.data.splits import DOMAINNET_DOMAINS

        tags = getattr(dataset, "domains", None)
        if tags is None:
            raise CassleError(f"--domain {domain}: the {dataset.__class__.__name__} samples carry no domain tags")
        wanted = DOMAINNET_DOMAINS.index(domain)
        return [i for i, d in enumerate(tags) if int(d) == wanted]

    def train_indices(self, domain: Optional[str] = None) -> List[int]:
        """Training samples of the probe: all (or one domain's), then the ``--label_fraction`` subset."""
        indices = self._select(self.train, domain)
        return balanced_subset(self.train.targets, indices, self.args.label_fraction, self.args.seed)

    def val_indices(self, domain: Optional[str] = None) -> List[int]:
        return self._select(self.val, domain)

    def loader(self, split: str, indices: Sequence[int], augment: bool = False, shuffle: bool = False,
               seed: int = 0, persistent: bool = False) -> Any:
        """Items ``(X, y)`` or ``(X, y, domain)``; ``augment``: the probe's train pipeline, else the
        evaluation pipeline."""
        import torch
        from torch.utils.data import DataLoader, Subset

        from cassle.data.augmentations import build_linear_train_transform, build_val_transform
        from cassle.data.datasets import with_transform
        from cassle.data.info import spec_from_args

        args = self.args
        build = build_linear_train_transform if augment else build_val_transform
        base = with_transform(self.train if split == "train" else self.val, build(spec_from_args(args)))
        workers = int(args.num_workers)
        generator = torch.Generator().manual_seed(int(seed)) if shuffle else None
        return DataLoader(Subset(base, list(indices)), batch_size=int(args.batch_size), shuffle=shuffle,
                          drop_last=False, num_workers=workers, pin_memory=torch.cuda.is_available(),
                          persistent_workers=persistent and workers > 0, generator=generator)


# ============================================================================ metrics
class ProbeMetrics:
    """Accumulates the probe's evaluation metrics over batches (the same code for both paths).

    Args:
        class_to_task: task index of every class (class split), or None.
        task_names: names of the tasks (``task<j>``) or domains (DomainNet), in task order.
        by_domain: group the per-task accuracy by the batches' domain tags (DomainNet).
    """

    def __init__(self, class_to_task: Optional[Sequence[int]], task_names: Sequence[str], by_domain: bool = False):
        self.class_to_task = list(class_to_task) if class_to_task is not None else None
        self.task_names = list(task_names)
        self.by_domain = by_domain
        self.grouped = self.class_to_task is not None or by_domain
        self.reset()

    def reset(self) -> None:
        self.n = 0
        self._sums: Optional[Any] = None  # [loss, correct1, correct5] (float64)
        self._group_correct: Optional[Any] = None
        self._group_count: Optional[Any] = None
        self._map: Optional[Any] = None

    def update(self, logits: Any, targets: Any, domains: Any = None) -> None:
        import torch
        import torch.nn.functional as F

        from cassle.utils.metrics import accuracy_at_k

        logits = logits.detach().float()
        targets = targets.to(logits.device).long()
        n = int(targets.numel())
        if n == 0:
            return
        if self._sums is None:
            self._sums = torch.zeros(3, dtype=torch.float64, device=logits.device)
            self._group_correct = torch.zeros(len(self.task_names), dtype=torch.float64, device=logits.device)
            self._group_count = torch.zeros(len(self.task_names), dtype=torch.float64, device=logits.device)
            if self.class_to_task is not None:
                self._map = torch.tensor(self.class_to_task, dtype=torch.long, device=logits.device)
        acc1, acc5 = accuracy_at_k(logits, targets, (1, 5))
        loss = F.cross_entropy(logits, targets, reduction="sum")
        self._sums += torch.stack([loss.double(), acc1.double() * n / 100.0, acc5.double() * n / 100.0])
        self.n += n
        if self.grouped:
            correct = logits.topk(1, dim=1).indices[:, 0].eq(targets).double()
            if self.by_domain:
                if domains is None:
                    raise CassleError("per-domain accuracy needs batches (X, y, domain)")
                group = domains.to(logits.device).long()
            else:
                group = self._map[targets]
            self._group_correct.index_add_(0, group, correct)
            self._group_count.index_add_(0, group, torch.ones_like(correct))

    def compute(self) -> Dict[str, float]:
        """``val_loss``, ``val_acc1``, ``val_acc5`` (percent) and ``val_acc1_<task or domain>`` (NaN for a
        task without evaluation images)."""
        nan = float("nan")
        if self.n == 0 or self._sums is None:
            out = {"val_loss": nan, "val_acc1": nan, "val_acc5": nan}
            out.update({f"val_acc1_{name}": nan for name in self.task_names} if self.grouped else {})
            return out
        loss, c1, c5 = (float(v) for v in self._sums.cpu())
        out = {"val_loss": loss / self.n, "val_acc1": 100.0 * round(c1) / self.n, "val_acc5": 100.0 * round(c5) / self.n}
        if self.grouped:
            correct = self._group_correct.cpu().tolist()
            count = self._group_count.cpu().tolist()
            for name, c, k in zip(self.task_names, correct, count):
                out[f"val_acc1_{name}"] = 100.0 * c / k if k else nan
        return out


def metrics_factory(args: argparse.Namespace) -> Callable[[], ProbeMetrics]:
    """A constructor of :class:`ProbeMetrics` for the run's split (class blocks, domains or none)."""
    class_to_task = None
    if args.split_strategy == "class" and args.tasks:
        class_to_task = [-1] * args.num_classes
        for t, classes in enumerate(args.tasks):
            for c in classes:
                class_to_task[int(c)] = t
        if min(class_to_task) < 0:
            raise CassleError("the class split does not cover every class")
    by_domain = args.split_strategy == "domain"
    names = list(args.task_names) if (class_to_task is not None or by_domain) else []
    return lambda: ProbeMetrics(class_to_task, names, by_domain=by_domain)


def lr_factor(args: argparse.Namespace, epoch: int) -> float:
    """Multiplier of ``--lr`` at a 0-based epoch (``step``: MultiStepLR at ``--lr_decay_steps``)."""
    from cassle.utils.schedulers import lr_at_epoch

    return lr_at_epoch(args.scheduler, epoch, 1.0, milestones=args.lr_decay_steps, gamma=args.lr_decay_gamma,
                       max_epochs=args.max_epochs)


# ============================================================================ devices
def probe_device(args: argparse.Namespace) -> Tuple[str, Any, Any]:
    """(Lightning accelerator, Lightning devices, torch device). The probe runs on one device, as
    officially (spec 6: 1 GPU)."""
    import torch

    accelerator = args.accelerator
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu":
        if not torch.cuda.is_available():
            raise CassleError("no GPU found (the flags ask for one: --gpus/--accelerator); pass --accelerator cpu")
        devices = args.devices
        index = devices[0] if isinstance(devices, list) and devices else 0
        if (isinstance(devices, list) and len(devices) > 1) or (isinstance(devices, int) and devices > 1):
            log(f"note: the linear probe runs on one GPU (cuda:{index}), as the official probe")
        return "gpu", [index], torch.device("cuda", index)
    if accelerator == "mps":
        return "mps", 1, torch.device("mps")
    return "cpu", 1, torch.device("cpu")


def _autocast(args: argparse.Namespace, device: Any) -> Any:
    import contextlib

    import torch

    if args.precision == "16-mixed" and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.float16)
    if args.precision == "bf16-mixed":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _lightning_precision(args: argparse.Namespace, device: Any) -> str:
    if device.type == "cpu" and args.precision == "16-mixed":
        return "32-true"  # no fp16 autocast on the CPU
    return args.precision


def _limit(value: Optional[float], num_batches: int) -> int:
    if value is None:
        return num_batches
    if value >= 1:
        return min(num_batches, int(value))
    return min(num_batches, int(value * num_batches))


# ============================================================================ features and the cached path
def extract_features(backbone: Any, loader: Any, device: Any, autocast: Any = None,
                     limit: Optional[float] = None) -> Dict[str, Any]:
    """Frozen-backbone features of every batch (eval mode, no gradient): ``feats`` (float32),
    ``targets`` and ``domains`` (None without domain tags)."""
    import contextlib

    import torch

    backbone.eval()
    feats, targets, domains = [], [], []
    num_batches = _limit(limit, len(loader))
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
    return {"feats": torch.cat(feats), "targets": torch.cat(targets), "domains": torch.cat(domains) if domains else None}


def knn_accuracy(train: Dict[str, Any], val: Dict[str, Any], k: int) -> Dict[str, float]:
    from cassle.utils.knn import WeightedKNNClassifier

    knn = WeightedKNNClassifier(k=k)
    knn.update(train_features=train["feats"], train_targets=train["targets"],
               test_features=val["feats"], test_targets=val["targets"])
    acc1, acc5 = knn.compute()
    return {"knn_acc1": acc1, "knn_acc5": acc5}


def train_head_on_features(head: Any, train: Dict[str, Any], args: argparse.Namespace, logger: Any = None) -> None:
    """``--cache_features``: SGD on the cached features, the same optimiser and per-epoch schedule as
    the Lightning path, batches of ``--batch_size`` in a ``--seed``-fixed order each epoch."""
    import torch
    import torch.nn.functional as F

    feats, targets = train["feats"], train["targets"]
    optimizer = torch.optim.SGD(head.parameters(), lr=args.lr, momentum=args.momentum, weight_decay=args.weight_decay)
    generator = torch.Generator().manual_seed(int(args.seed))
    n, bs = feats.size(0), int(args.batch_size)
    num_batches = _limit(args.limit_train_batches, math.ceil(n / bs))
    head.train()
    for epoch in range(args.max_epochs):
        lr = args.lr * lr_factor(args, epoch)
        for group in optimizer.param_groups:
            group["lr"] = lr
        order = torch.randperm(n, generator=generator).to(feats.device)
        total, seen = 0.0, 0
        for b in range(num_batches):
            idx = order[b * bs:(b + 1) * bs]
            loss = F.cross_entropy(head(feats[idx]), targets[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * idx.numel()
            seen += idx.numel()
        if logger is not None:
            logger.log_metrics({"train_loss": total / max(seen, 1), "lr": lr, "epoch": epoch}, step=epoch)
    head.eval()


def evaluate_head(head: Any, val: Dict[str, Any], metrics: ProbeMetrics, batch_size: int) -> Dict[str, float]:
    import torch

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
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _probe_once(args: argparse.Namespace, backbone: Any, data: ProbeData, domain: Optional[str],
                logger: Any = None, head_path: Optional[str] = None, knn: bool = True) -> Dict[str, float]:
    """One linear probe on the (already frozen, on-device) backbone: metrics dict."""
    accelerator, devices, device = probe_device(args)
    _seed_all(args.seed)
    train_idx, val_idx = data.train_indices(domain), data.val_indices(domain)
    if not train_idx or not val_idx:
        raise CassleError(f"no {'training' if not train_idx else 'evaluation'} images"
                          f"{' of domain ' + domain if domain else ''} for the probe")
    head = build_head(backbone.num_features, args.num_classes, args.seed)
    make_metrics = metrics_factory(args)
    autocast = _autocast(args, device)
    train_feats = val_feats = None
    if args.cache_features or (knn and args.knn_k > 0):
        train_feats = extract_features(backbone, data.loader("train", train_idx), device, autocast)
        val_feats = extract_features(backbone, data.loader("val", val_idx), device, autocast, args.limit_val_batches)
    if args.cache_features:
        head = head.to(device)
        train_head_on_features(head, train_feats, args, logger)
        metrics = evaluate_head(head, val_feats, make_metrics(), int(args.batch_size))
    else:
        from cassle.methods.linear import fit_linear_probe

        train_loader = data.loader("train", train_idx, augment=True, shuffle=True, seed=args.seed, persistent=True)
        val_loader = data.loader("val", val_idx, persistent=True)
        metrics, head = fit_linear_probe(
            backbone, head, train_loader, val_loader, args, make_metrics,
            accelerator=accelerator, devices=devices, precision=_lightning_precision(args, device), logger=logger,
        )
    if knn and args.knn_k > 0:
        metrics.update(knn_accuracy(train_feats, val_feats, args.knn_k))
    if logger is not None:
        logger.log_metrics({f"final/{k}": v for k, v in metrics.items() if is_finite_number(v)})
    if head_path:
        import torch

        os.makedirs(os.path.dirname(os.path.abspath(head_path)), exist_ok=True)
        torch.save({k: v.detach().cpu() for k, v in head.state_dict().items()}, head_path)
    return metrics


def probe_checkpoint(args: argparse.Namespace, checkpoint: Optional[str], data: Optional[ProbeData] = None,
                     logger: Any = None, head_path: Optional[str] = None) -> Tuple[Dict[str, float], Dict[str, Any]]:
    """The probe of one checkpoint (``None``: a random backbone from ``--seed``): (metrics, metadata).

    ``--domain d`` trains and evaluates on that domain only. ``--domain_aware`` adds one probe per domain
    (trained and evaluated on it): ``domain_aware_acc1_<d>``, their unweighted mean
    ``domain_aware_acc1``, and ``domain_agnostic_acc1`` = ``val_acc1`` of the all-domain probe.
    """
    data = data if data is not None else ProbeData(args)
    _, _, device = probe_device(args)
    backbone, meta = build_probe_backbone(args, checkpoint)
    backbone = freeze(backbone).to(device)
    metrics = _probe_once(args, backbone, data, args.domain, logger=logger, head_path=head_path)
    if args.domain_aware:
        from cassle.data.splits import DOMAINNET_DOMAINS

        per_domain = []
        for domain in DOMAINNET_DOMAINS:
            log(f"  domain-aware probe: {domain}")
            acc = _probe_once(args, backbone, data, domain, knn=False)["val_acc1"]
            metrics[f"domain_aware_acc1_{domain}"] = acc
            per_domain.append(acc)
        metrics["domain_aware_acc1"] = sum(per_domain) / len(per_domain)
        metrics["domain_agnostic_acc1"] = metrics["val_acc1"]
    return metrics, meta


def run_probe(args: argparse.Namespace, checkpoint: Optional[str], data: Optional[ProbeData] = None,
              logger: Any = None, head_path: Optional[str] = None) -> Dict[str, float]:
    """Metrics of the probe of ``checkpoint`` (``None``: random-init backbone); see :func:`probe_checkpoint`."""
    return probe_checkpoint(args, checkpoint, data, logger=logger, head_path=head_path)[0]


def probe_settings(args: argparse.Namespace) -> Dict[str, Any]:
    keys = ("lr", "momentum", "weight_decay", "scheduler", "lr_decay_steps", "lr_decay_gamma", "max_epochs",
            "batch_size", "cache_features", "label_fraction", "knn_k", "seed", "encoder", "precision", "domain",
            "domain_aware")
    out = {k: getattr(args, k, None) for k in keys}
    out["epochs"] = out.pop("max_epochs")
    return out


def _describe_probe(args: argparse.Namespace) -> str:
    parts = [f"{args.max_epochs} epochs", f"SGD lr {args.lr:g} momentum {args.momentum:g}"]
    if args.scheduler == "step":
        parts.append(f"x{args.lr_decay_gamma:g} at epochs {', '.join(str(s) for s in args.lr_decay_steps)}")
    else:
        parts.append(f"{args.scheduler} schedule")
    parts.append(f"batch {args.batch_size}")
    parts.append("cached features (no augmentation)" if args.cache_features else "random-resized crop")
    if args.label_fraction < 1:
        parts.append(f"{args.label_fraction:g} of the labels")
    return ", ".join(parts)


# ============================================================================ wandb
def make_wandb_logger(args: argparse.Namespace, save_dir: str) -> Any:
    """One wandb run for this evaluation (``--wandb``); None otherwise, and wandb is not imported."""
    if not getattr(args, "wandb", False):
        return None
    from pytorch_lightning.loggers import WandbLogger

    os.makedirs(save_dir, exist_ok=True)
    logger = WandbLogger(name=args.name, project=args.project, entity=args.entity, offline=args.offline,
                         save_dir=save_dir)
    logger.log_hyperparams(_jsonable({k: v for k, v in vars(args).items() if not callable(v)}))
    return logger


def _sub_logger(root: Any, prefix: str) -> Any:
    if root is None:
        return None
    from pytorch_lightning.loggers import WandbLogger

    return WandbLogger(experiment=root.experiment, prefix=prefix)


def _finish_wandb(root: Any, summary: Dict[str, Any], image: Optional[str] = None) -> None:
    if root is None:
        return
    experiment = root.experiment
    for key, value in summary.items():
        if is_finite_number(value):
            experiment.summary[key] = value
    if image and os.path.exists(image):
        import wandb

        experiment.log({"results": wandb.Image(image)})
    experiment.finish()


# ============================================================================ one checkpoint (main_linear.py)
def default_output(args: argparse.Namespace) -> str:
    if args.output:
        return args.output
    if args.pretrained_feature_extractor:
        return args.pretrained_feature_extractor + ".linear.json"
    return os.path.join(args.checkpoint_dir, f"{args.name}.json")


def format_metrics_table(title: str, metrics: Dict[str, float]) -> str:
    order = ["val_acc1", "val_acc5", "val_loss", "knn_acc1", "knn_acc5", "domain_agnostic_acc1", "domain_aware_acc1"]
    keys = [k for k in order if k in metrics] + sorted(k for k in metrics if k not in order)
    rows = [[k, fmt(metrics[k], 4 if k.endswith("loss") else 2)] for k in keys]
    return "\n".join([title] + markdown_table(["metric", "value"], rows))


def linear_main(args: argparse.Namespace) -> Dict[str, Any]:
    """``main_linear.py`` after parsing: a run folder, one checkpoint, or a random backbone."""
    if args.run_dir:
        results = evaluate_run(args.run_dir, args)
        print(format_results_md(results))
        return results
    from cassle.utils.checkpoint import atomic_write_json

    checkpoint = None if args.random_init else args.pretrained_feature_extractor
    output = default_output(args)
    logger = make_wandb_logger(args, os.path.dirname(os.path.abspath(output)))
    head_path = os.path.splitext(output)[0] + ".head.pt" if args.save_checkpoint else None
    start = time.time()
    metrics, meta = probe_checkpoint(args, checkpoint, logger=logger, head_path=head_path)
    payload = {
        "checkpoint": checkpoint, "random_init": checkpoint is None, "dataset": args.dataset,
        "method": meta.get("method", args.method), "task_idx": meta.get("task_idx"),
        "split_strategy": args.split_strategy, "task_names": args.task_names, "metrics": metrics,
        "probe": probe_settings(args), "seconds": round(time.time() - start, 1),
    }
    atomic_write_json(output, _jsonable(payload))
    _finish_wandb(logger, metrics)
    source = "a random backbone (seed %d)" % args.seed if checkpoint is None else checkpoint
    print(format_metrics_table(f"linear probe of {source} on {args.dataset} ({_describe_probe(args)})", metrics))
    print(f"metrics written to {output}")
    return payload


# ============================================================================ whole run
def _task_key(split_strategy: str, name: str) -> str:
    return "val_acc1" if split_strategy == "data" else f"val_acc1_{name}"


def _row(metrics: Dict[str, float], split_strategy: str, names: Sequence[str]) -> List[Optional[float]]:
    columns = ["all"] if split_strategy == "data" else list(names)
    out = []
    for name in columns:
        value = metrics.get(_task_key(split_strategy, name))
        out.append(float(value) if is_finite_number(value) else None)
    return out


def _safe(fn: Callable[[], Any], notes: List[str], what: str) -> Any:
    try:
        return fn()
    except ValueError as err:
        notes.append(f"{what}: {err}")
        return None


# Resolved data facts that must agree between a run and its probe, with the flags that set them.
_RUN_DATA_FACTS = {"small_images": "--small_stem", "mean": "--mean", "std": "--std", "eval_resize": "--size",
                   "eval_crop": "--size", "probe_size": "--size"}


def _check_same_data(run_dir: str, run_args: Dict[str, Any], args: argparse.Namespace) -> None:
    """A one-line error when the probe would see the data otherwise than the run did (custom data
    probed without the run's ``--small_stem``, ``--size``, ``--mean`` or ``--std``)."""
    from cassle.data.info import spec_from_args

    stored = run_args.get("dataset_spec")
    if not isinstance(stored, dict):
        return  # a run folder written before the data facts were recorded
    probe = spec_from_args(args).as_dict()
    for key, flag in _RUN_DATA_FACTS.items():
        if key in stored and stored[key] != probe[key]:
            raise CassleError(f"run {run_dir} was pretrained with {key} {stored[key]}, the probe would use "
                              f"{probe[key]}: pass the run's {flag} to main_linear.py")


def evaluate_run(run_dir: str, linear_args: argparse.Namespace) -> Dict[str, Any]:
    """Probe every finished task of a run folder and the random-init backbone; write the results.

    ``acc[i][j]``: class split: ``val_acc1_task<j>`` of the probe after task i; domain split:
    ``val_acc1_<domain of task j>``; data split: one column, ``val_acc1``. Final accuracy = ``val_acc1``
    of the last finished task's probe; forgetting and forward transfer from ``cassle.utils.metrics``
    (not applicable to data-incremental runs; on a run that is not finished yet, over the tasks so far).

    Returns:
        The ``results.json`` dict (also written, with ``results.md`` and ``results.png``, into ``run_dir``).
    """
    from cassle.utils.checkpoint import RunManifest, atomic_write_json, atomic_write_text, read_json
    from cassle.utils.metrics import average_accuracy, forgetting, forward_transfer

    if not os.path.isdir(run_dir):
        raise CassleError(f"run folder {run_dir} does not exist")
    if not os.path.isfile(os.path.join(run_dir, "manifest.json")):
        raise CassleError(f"{run_dir} is not a run folder of main_pretrain.py with a finished task (no manifest.json)")
    manifest = RunManifest(run_dir)
    finished = manifest.finished_tasks()
    if not finished:
        raise CassleError(f"run folder {run_dir} has no finished task (manifest.json lists none)")
    run_args = read_json(os.path.join(run_dir, "args.json"), "run arguments")
    split = read_json(os.path.join(run_dir, "split.json"), "task split")

    args = copy.copy(linear_args)
    run_name = run_args.get("name") or os.path.basename(os.path.normpath(run_dir))
    if run_args.get("dataset") not in (None, args.dataset):
        raise CassleError(f"run {run_dir} was trained on --dataset {run_args['dataset']}, the probe is for "
                          f"--dataset {args.dataset} (pass --dataset {run_args['dataset']})")
    _check_same_data(run_dir, run_args, args)
    run_method = run_args.get("method")
    if args.method is not None and run_method not in (None, args.method):
        raise CassleError(f"run {run_dir} was trained with --method {run_method}, not --method {args.method}")
    args.method = args.method or run_method
    args.run_dir = run_dir
    args.split_strategy = split["split_strategy"]
    args.tasks = split.get("tasks")
    args.task_names = list(split["task_names"])
    args.num_tasks = len(args.task_names)
    strategy, names, num_tasks = args.split_strategy, args.task_names, args.num_tasks

    logger = make_wandb_logger(args, run_dir)
    data = ProbeData(args)
    linear: Dict[int, Dict[str, float]] = {}
    head_dir = os.path.join(run_dir, "linear_heads") if args.save_checkpoint else None
    for task in finished:
        checkpoint = manifest.checkpoint(task)
        log(f"linear probe of task {task}: {checkpoint}")
        linear[task] = run_probe(args, checkpoint, data, logger=_sub_logger(logger, f"task{task}"),
                                 head_path=os.path.join(head_dir, f"task{task}.pt") if head_dir else None)
    log(f"linear probe of a random backbone (seed {args.seed})")
    random_metrics = run_probe(args, None, data, logger=_sub_logger(logger, "random_init"),
                               head_path=os.path.join(head_dir, "random_init.pt") if head_dir else None)

    last = finished[-1]
    columns = 1 if strategy == "data" else num_tasks
    acc = [(_row(linear[i], strategy, names) if i in linear else [None] * columns) for i in range(last + 1)]
    baseline = _row(random_metrics, strategy, names)
    notes: List[str] = []
    complete = finished == list(range(num_tasks))
    if not complete:
        notes.append(f"tasks finished: {finished} of {num_tasks}: forgetting and forward transfer over tasks 0..{last}")
    if strategy == "data":
        forget = transfer = None
    else:
        square = [row[:last + 1] for row in acc]
        forget = _safe(lambda: forgetting(square), notes, "forgetting")
        transfer = _safe(lambda: forward_transfer(square, baseline[:last + 1]), notes, "forward transfer")
    final_acc = linear[last].get("val_acc1")
    results: Dict[str, Any] = {
        "run": run_name,
        "run_dir": os.path.abspath(run_dir),
        "method": run_method,
        "distiller": run_args.get("distiller"),
        "dataset": run_args.get("dataset", args.dataset),
        "split_strategy": strategy,
        "num_tasks": num_tasks,
        "finished_tasks": finished,
        "complete": complete,
        "task_names": names,
        "columns": ["all"] if strategy == "data" else names,
        "acc_matrix": acc,
        "random_init": baseline,
        "final_acc": final_acc,
        "mean_task_acc": _safe(lambda: average_accuracy([acc[last]]), [], "mean"),
        "forgetting": forget,
        "forward_transfer": transfer,
        "all_acc": [linear[i].get("val_acc1") if i in linear else None for i in range(last + 1)],
        "knn_acc1": [linear[i].get("knn_acc1") if i in linear else None for i in range(last + 1)],
        "random_init_knn_acc1": random_metrics.get("knn_acc1"),
        "random_init_acc": random_metrics.get("val_acc1"),
        "linear": {str(i): m for i, m in linear.items()},
        "random_init_metrics": random_metrics,
        "online": {str(i): (manifest.tasks[str(i)].get("metrics") or {}).get("val_acc1") for i in finished},
        "probe": probe_settings(args),
        "notes": notes,
    }
    for key in ("domain_aware_acc1", "domain_agnostic_acc1"):
        if key in linear[last]:
            results[key] = linear[last][key]
    results = _jsonable(results)
    atomic_write_json(os.path.join(run_dir, "results.json"), results)
    if getattr(args, "output", None):
        atomic_write_json(args.output, results)
    markdown = format_results_md(results)
    atomic_write_text(os.path.join(run_dir, "results.md"), markdown + "\n")
    image = os.path.join(run_dir, "results.png")
    plot_results(results, image)
    _finish_wandb(logger, {k: results[k] for k in ("final_acc", "forgetting", "forward_transfer")}, image)
    log(f"results written to {os.path.join(run_dir, 'results.md')} (and results.json, results.png)")
    return results


# ============================================================================ reports
SPLIT_WORDS = {"class": "class-incremental", "data": "data-incremental", "domain": "domain-incremental"}


def format_results_md(results: Dict[str, Any]) -> str:
    """The ``results.md`` text of a run: the accuracy matrix and the continual metrics, defined."""
    strategy = results["split_strategy"]
    columns = results["columns"]
    probe = results.get("probe", {})
    regulariser = results.get("distiller") or "none (fine-tuning)"
    online = results.get("online") or {}
    show_online = any(is_finite_number(v) for v in online.values())
    header = ["after task"] + list(columns) + ([] if strategy == "data" else ["all"]) + ["kNN"]
    header += ["online"] if show_online else []
    rows = []
    for i, row in enumerate(results["acc_matrix"]):
        cells = [str(i)] + [fmt(v) for v in row]
        if strategy != "data":
            cells.append(fmt(results["all_acc"][i]))
        cells.append(fmt(results["knn_acc1"][i]))
        if show_online:
            cells.append(fmt(online.get(str(i))))
        rows.append(cells)
    random_row = ["random init"] + [fmt(v) for v in results["random_init"]]
    if strategy != "data":
        random_row.append(fmt(results.get("random_init_acc")))
    random_row.append(fmt(results.get("random_init_knn_acc1")))
    rows.append(random_row + (["-"] if show_online else []))
    cache = "cached features, no augmentation" if probe.get("cache_features") else "random-resized crop + flip"
    lines = [
        f"# Linear evaluation of {results['run']}",
        "",
        f"{results.get('method')} with regulariser {regulariser} on {results.get('dataset')}, "
        f"{SPLIT_WORDS.get(strategy, strategy)}, {results['num_tasks']} tasks. Probe: linear layer on the frozen "
        f"backbone (eval mode), {probe.get('epochs')} epochs, SGD lr {probe.get('lr')} momentum {probe.get('momentum')}, "
        f"batch {probe.get('batch_size')}, {cache}, seed {probe.get('seed')}.",
        "",
        "Top-1 accuracy (%) of the linear probe of the checkpoint after each task (rows) on the test images of "
        + ("the whole test set (tasks share the classes)" if strategy == "data" else
           "each task's " + ("domain" if strategy == "domain" else "classes") + " (columns); \"all\" = whole test set")
        + "; kNN = weighted kNN (top-1) on the frozen features"
        + ("; online = the classifier trained during pretraining (whole test set)" if show_online else "") + ".",
        "",
    ]
    lines += markdown_table(header, rows)
    na = "n/a (data-incremental: the tasks share the classes)" if strategy == "data" else "n/a"
    forget = results.get("forgetting")
    transfer = results.get("forward_transfer")
    lines += [
        "",
        f"- **Final accuracy A_T: {fmt(results.get('final_acc'), 2)}** (top-1 of the probe of the last checkpoint "
        "on the whole test set).",
        f"- **Forgetting: {fmt(forget, 2) if is_finite_number(forget) else na}** (mean over tasks j < T-1 of the best "
        "accuracy on task j after tasks j..T-2 minus the accuracy on task j after the last task).",
        f"- **Forward transfer: {fmt(transfer, 2) if is_finite_number(transfer) else na}** (mean over tasks j >= 1 of the "
        "accuracy on task j after task j-1 minus that of a probe on a randomly initialised backbone).",
    ]
    if is_finite_number(results.get("domain_aware_acc1")):
        lines.append(f"- **Domain-aware accuracy: {fmt(results['domain_aware_acc1'], 2)}** (unweighted mean over "
                     "domains of a probe trained and tested on that domain alone); domain-agnostic: "
                     f"{fmt(results.get('domain_agnostic_acc1'), 2)} (one probe on all domains).")
    for note in results.get("notes") or []:
        lines.append(f"- note: {note}")
    return "\n".join(lines)


def plot_results(results: Dict[str, Any], path: str) -> None:
    """``results.png``: left the accuracy matrix as a heat map with its numbers, right each task's
    accuracy over the training tasks."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    acc = np.array([[np.nan if v is None else v for v in row] for row in results["acc_matrix"]], dtype=float)
    columns = results["columns"]
    rows = acc.shape[0]
    fig, (left, right) = plt.subplots(1, 2, figsize=(5 + 1.1 * len(columns), 4.2 + 0.2 * rows))
    image = left.imshow(np.ma.masked_invalid(acc), cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i in range(rows):
        for j in range(acc.shape[1]):
            if np.isfinite(acc[i, j]):
                left.text(j, i, f"{acc[i, j]:.1f}", ha="center", va="center",
                          color="white" if acc[i, j] < 60 else "black", fontsize=9)
    left.set_xticks(range(len(columns)), columns, rotation=30 if len(columns) > 5 else 0)
    left.set_yticks(range(rows), [str(i) for i in range(rows)])
    left.set_xlabel("evaluated on")
    left.set_ylabel("after training task")
    left.set_title("linear probe top-1 (%)")
    fig.colorbar(image, ax=left, fraction=0.046, pad=0.04)
    steps = np.arange(rows)
    for j, name in enumerate(columns):
        right.plot(steps, acc[:, j], marker="o", label=name)
    if results["split_strategy"] != "data":
        all_acc = np.array([np.nan if v is None else v for v in results["all_acc"]], dtype=float)
        right.plot(steps, all_acc, color="black", linestyle="--", marker="s", label="all")
    right.set_xticks(steps)
    right.set_xlabel("after training task")
    right.set_ylabel("top-1 (%)")
    right.set_title("accuracy per task over training")
    right.grid(alpha=0.3)
    right.legend(fontsize=8, loc="best")
    fig.suptitle(f"{results['run']}: final {fmt(results.get('final_acc'))}, forgetting "
                 f"{fmt(results.get('forgetting'))}, forward transfer {fmt(results.get('forward_transfer'))}")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def summarize_runs(run_dirs: Sequence[str]) -> str:
    """One markdown table over runs, from their ``results.json`` ("not evaluated" where it is missing)."""
    header = ["run", "method", "regulariser", "final acc", "forgetting", "forward transfer", "kNN"]
    rows = []
    for run_dir in run_dirs:
        name = os.path.basename(os.path.normpath(run_dir))
        path = os.path.join(run_dir, "results.json")
        try:
            with open(path) as handle:
                res = json.load(handle)
        except (OSError, json.JSONDecodeError):
            res = None
        if res is None:
            method = regulariser = "-"
            try:
                with open(os.path.join(run_dir, "args.json")) as handle:
                    run_args = json.load(handle)
                method = run_args.get("method") or "-"
                regulariser = run_args.get("distiller") or "none (fine-tuning)"
            except (OSError, json.JSONDecodeError):
                pass
            rows.append([name, method, regulariser, "not evaluated", "", "", ""])
            continue
        na = "n/a" if res.get("split_strategy") == "data" else "-"
        knn = [v for v in res.get("knn_acc1") or [] if is_finite_number(v)]
        rows.append([
            res.get("run", name), res.get("method") or "-", res.get("distiller") or "none (fine-tuning)",
            fmt(res.get("final_acc"), 2),
            fmt(res.get("forgetting"), 2) if is_finite_number(res.get("forgetting")) else na,
            fmt(res.get("forward_transfer"), 2) if is_finite_number(res.get("forward_transfer")) else na,
            fmt((res.get("knn_acc1") or [None])[-1], 2) if knn else "-",
        ])
    return "\n".join(markdown_table(header, rows))


def latest_checkpoint(run_dir: str) -> str:
    """The final checkpoint of the last finished task of a run folder (from its manifest)."""
    from cassle.utils.checkpoint import RunManifest

    if not os.path.isdir(run_dir):
        raise CassleError(f"run folder {run_dir} does not exist")
    if not os.path.isfile(os.path.join(run_dir, "manifest.json")):
        raise CassleError(f"{run_dir} has no finished task (no manifest.json)")
    manifest = RunManifest(run_dir)
    finished = manifest.finished_tasks()
    if not finished:
        raise CassleError(f"run folder {run_dir} has no finished task (manifest.json lists none)")
    path = manifest.checkpoint(finished[-1])
    if not os.path.isfile(path):
        raise CheckpointError(f"the manifest of {run_dir} lists {path} for task {finished[-1]}, which does not exist")
    return path


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cassle.evaluation",
                                     description="Summaries of evaluated runs; the last checkpoint of a run.")
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="one markdown table of the runs' results.json")
    summary.add_argument("run_dirs", nargs="+")
    latest = sub.add_parser("latest-checkpoint", help="print the final checkpoint of the last finished task")
    latest.add_argument("run_dir")
    opts = parser.parse_args(argv)
    try:
        if opts.command == "summary":
            print(summarize_runs(opts.run_dirs))
        else:
            print(latest_checkpoint(opts.run_dir))
    except CassleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
