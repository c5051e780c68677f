"""The typed, resolved configuration of a pretraining run (torch-free).

``main_pretrain.py`` parses the official flags with argparse (``cassle.args.pretrain``) and builds a
:class:`PretrainConfig` once, here: every default filled, every derived value computed (task split, per-view
augmentations, batch-scaled learning rate, run folder), every combination checked. The sections are frozen
dataclasses and each part of the code receives the one it needs: the LightningModule a :class:`ModelConfig`
(with its :class:`OptimConfig`), the loaders a :class:`DataConfig`, the driver the rest. Nothing changes a
configuration after it is built; the one later step, fixing the hardware when torch can look at it, returns
a new object (``dataclasses.replace``).

:meth:`PretrainConfig.to_flat` is the flat ``{flag: value}`` form that ``--dry_run`` prints, ``args.json``
stores and ``--resume`` compares.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from cassle.data.info import DatasetSpec, spec_from_args
from cassle.data.splits import DOMAINNET_DOMAINS, class_split
from cassle.data.views import pretrain_view_configs
from cassle.errors import CassleError
from cassle.registry import RegularizerParams, method_spec, methods_of, regularizer_spec

# Pretraining epochs per task of the paper's recipes, used when --max_epochs is not given.
DEFAULT_EPOCHS = {"cifar100": 500, "imagenet100": 400, "domainnet": 200, "digits": 10,
                  # no official recipe: the epochs of the nearest benchmark (CIFAR-100's, ImageNet-100's)
                  "cifar10": 500, "stl10": 400, "imagenet": 400, "custom": 400}

# Flags that never change what a run computes: they may differ when a run is resumed.
NON_RESULT_FLAGS = frozenset(
    {
        "wandb", "project", "entity", "offline", "num_workers", "resume", "checkpoint_dir", "name",
        "task_idx", "pretrained_model", "checkpoint_frequency", "progress_bar", "eval_every_task",
        "linear_max_epochs", "data_dir", "train_dir", "val_dir", "devices", "accelerator", "strategy",
        "num_nodes", "limit_val_batches", "check_val_every_n_epoch", "knn_eval", "knn_k", "run_dir",
    }
)


# ============================================================================ sections
@dataclass(frozen=True)
class ViewConfig:
    """The augmentation pipeline of one crop (``cassle.data.augmentations``, ``cassle.data.views``)."""

    brightness: float
    contrast: float
    saturation: float
    hue: float
    gaussian_prob: float
    solarization_prob: float
    min_scale: float
    size: int
    horizontal_flip_prob: float
    max_scale: float = 1.0

    def as_dict(self) -> dict[str, Any]:
        """The settings dict of ``cassle.data.views``: a large crop's has no ``max_scale`` (its area's
        upper bound is 1), a small crop's has it."""
        out = dataclasses.asdict(self)
        if out["max_scale"] == 1.0:
            del out["max_scale"]
        return out


@dataclass(frozen=True)
class TaskSplit:
    """How the training data is cut into tasks.

    Attributes:
        strategy: ``class``, ``data`` or ``domain``.
        num_tasks: number of tasks.
        classes: class split: the classes of each task; otherwise None.
        names: one name per task (``task<t>``, or the DomainNet domain), used in metric names.
    """

    strategy: str
    num_tasks: int
    classes: tuple[tuple[int, ...], ...] | None
    names: tuple[str, ...]


@dataclass(frozen=True)
class DataConfig:
    dataset: str
    data_dir: str
    train_dir: str | None
    val_dir: str | None
    num_classes: int
    small_images: bool
    mean: tuple[float, ...]
    std: tuple[float, ...]
    spec: DatasetSpec  # the dataset's facts under the data flags (cassle.data.info.resolve_dataset)
    no_labels: bool
    small_stem: bool
    views: tuple[ViewConfig, ...]  # the large crops first, then the small ones (multi-crop)
    num_large_crops: int
    batch_size: int
    num_workers: int
    fast_data: bool


@dataclass(frozen=True)
class OptimConfig:
    """Optimiser and per-epoch learning-rate schedule of one task (restarted at every task)."""

    optimizer: str
    lars: bool
    grad_clip_lars: bool
    eta_lars: float
    exclude_bias_n_norm: bool
    scheduler: str
    lr: float
    lr_scaled: float
    classifier_lr: float
    weight_decay: float
    warmup_epochs: int
    warmup_start_lr: float
    min_lr: float
    lr_decay_steps: tuple[int, ...]
    max_epochs: int


@dataclass(frozen=True)
class ModelConfig:
    """Everything a method's LightningModule needs.

    Attributes:
        params: the method's own hyperparameters (its ``MethodSpec.params`` dataclass).
        regularizer: the regulariser hyperparameters (read only by a regularised model, from task 1 on).
        split: the task split (per-task validation accuracies).
        small_images: the small-image stem (3x3 first convolution, no max-pool).
    """

    method: str
    encoder: str
    small_images: bool
    zero_init_residual: bool
    num_classes: int
    proj_hidden_dim: int
    output_dim: int
    params: Any
    regularizer: RegularizerParams
    optim: OptimConfig
    split: TaskSplit
    num_large_crops: int
    online_eval: bool
    knn_eval: bool
    knn_k: int
    teacher_bn_train: bool
    channels_last: bool
    compile: bool
    keep_unused_parameters: bool = False  # --strategy ddp_find_unused_parameters_true: as officially


@dataclass(frozen=True)
class ContinualConfig:
    """Attributes:
        task_idx: the first task to train; None when ``--task_idx`` is not given (0, or with ``--resume``
            the stored run's), see :attr:`start_task`.
        pretrained_model: the checkpoint the first task starts from (``--task_idx`` > 0).
    """

    split: TaskSplit
    task_idx: int | None
    distiller: str | None
    pretrained_model: str | None
    resume: bool

    @property
    def start_task(self) -> int:
        return self.task_idx or 0


@dataclass(frozen=True)
class TrainerConfig:
    """Hardware and Lightning Trainer settings (Lightning 2.x names).

    ``devices`` is a count, a list of ids or ``"auto"``; ``num_devices`` is the number of devices per node
    that the flags ask for (``"auto"`` counts as 1 until the hardware is known); ``precision`` is None until
    the hardware is known (then a Lightning 2.x name such as ``16-mixed``), unless the flags fix it.
    """

    accelerator: str
    devices: Any
    strategy: str
    num_nodes: int
    num_devices: int
    precision: str | None
    sync_batchnorm: bool
    check_val_every_n_epoch: int
    limit_train_batches: float | None
    limit_val_batches: float | None
    progress_bar: bool

    @property
    def world_size(self) -> int:
        return self.num_devices * self.num_nodes


@dataclass(frozen=True)
class RunConfig:
    name: str
    checkpoint_dir: str
    run_dir: str
    checkpoint_frequency: int
    seed: int
    wandb: bool
    project: str | None
    entity: str | None
    offline: bool
    eval_every_task: bool
    linear_max_epochs: int | None


@dataclass(frozen=True)
class PretrainConfig:
    data: DataConfig
    model: ModelConfig
    continual: ContinualConfig
    trainer: TrainerConfig
    run: RunConfig
    notes: tuple[str, ...] = ()

    @property
    def optim(self) -> OptimConfig:
        return self.model.optim

    @property
    def split(self) -> TaskSplit:
        return self.continual.split

    def to_flat(self) -> dict[str, Any]:
        """``{flag: value}``, JSON-serialisable: what ``--dry_run`` prints and ``args.json`` stores."""
        d, m, c, t, r, o = self.data, self.model, self.continual, self.trainer, self.run, self.model.optim
        flat: dict[str, Any] = {
            "method": m.method, "encoder": m.encoder, "zero_init_residual": m.zero_init_residual,
            "proj_hidden_dim": m.proj_hidden_dim, "output_dim": m.output_dim,
            **dataclasses.asdict(m.params), **dataclasses.asdict(m.regularizer),
            "dataset": d.dataset, "data_dir": d.data_dir, "train_dir": d.train_dir, "val_dir": d.val_dir,
            "num_classes": d.num_classes, "small_images": d.small_images, "mean": list(d.mean), "std": list(d.std),
            "dataset_spec": d.spec.as_dict(), "no_labels": d.no_labels, "small_stem": d.small_stem,
            "transform_kwargs": [v.as_dict() for v in d.views], "num_crops": d.num_large_crops,
            "num_small_crops": len(d.views) - d.num_large_crops,
            "batch_size": d.batch_size, "num_workers": d.num_workers, "fast_data": d.fast_data,
            "split_strategy": c.split.strategy, "num_tasks": c.split.num_tasks,
            "tasks": [list(block) for block in c.split.classes] if c.split.classes is not None else None,
            "task_names": list(c.split.names), "task_idx": c.start_task, "distiller": c.distiller,
            "pretrained_model": c.pretrained_model, "resume": c.resume,
            "teacher_bn_train": m.teacher_bn_train, "online_eval": m.online_eval, "knn_eval": m.knn_eval,
            "knn_k": m.knn_k, "channels_last": m.channels_last, "compile": m.compile,
            **{f.name: getattr(o, f.name) for f in dataclasses.fields(o)},
            "lr_decay_steps": list(o.lr_decay_steps),
            "accelerator": t.accelerator, "devices": t.devices, "strategy": t.strategy, "num_nodes": t.num_nodes,
            "num_devices": t.num_devices, "precision": t.precision or "auto", "sync_batchnorm": t.sync_batchnorm,
            "check_val_every_n_epoch": t.check_val_every_n_epoch, "limit_train_batches": t.limit_train_batches,
            "limit_val_batches": t.limit_val_batches, "progress_bar": t.progress_bar,
            **dataclasses.asdict(r),
        }
        return dict(sorted(flat.items()))


def lightning_batch_limit(value: float | None) -> float | int | None:
    """``--limit_*_batches`` as Lightning reads it: a count (int) from 1 up, else a fraction; None: all."""
    if value is None:
        return None
    return int(value) if value >= 1 else value


# ============================================================================ resolution
def resolve_views(ns: Any, spec: DatasetSpec) -> tuple[ViewConfig, ...]:
    """Per-crop augmentation settings (``cassle.data.views``): the large crops, then the small ones.
    ``custom --small_stem`` crops at ``spec.size`` (32 unless ``--size``) and its small crops at three
    quarters of it, as CIFAR."""
    size, small_size = ns.size, ns.small_size
    if spec.name == "custom" and ns.small_stem:
        size = size if size is not None else [spec.size]
        small_size = small_size if small_size is not None else [max(1, round(spec.size * 3 / 4))]
    configs = pretrain_view_configs(
        ns.dataset, ns.brightness, ns.contrast, ns.saturation, ns.hue, ns.gaussian_prob, ns.solarization_prob,
        min_scale=ns.min_scale, size=size, num_crops=ns.num_crops, num_small_crops=ns.num_small_crops,
        multicrop=ns.multicrop, small_size=small_size, small_min_scale=ns.small_min_scale,
        small_max_scale=ns.small_max_scale,
    )
    return tuple(ViewConfig(**config) for config in configs)


def resolve_split(strategy: str | None, spec: DatasetSpec, num_tasks: int, seed: int) -> TaskSplit:
    dataset, num_classes = spec.name, spec.num_classes
    if strategy is None:
        strategy = spec.default_split_strategy
    if strategy == "domain" and dataset != "domainnet":
        raise CassleError("--split_strategy domain needs --dataset domainnet")
    if dataset == "domainnet" and strategy != "domain":
        raise CassleError("--dataset domainnet supports only --split_strategy domain")
    if strategy not in spec.split_strategies:  # custom --no_labels: no classes to split
        raise CassleError(f"--split_strategy {strategy} needs labels: --dataset {dataset} --no_labels supports "
                          f"only --split_strategy data")
    if num_tasks < 1:
        raise CassleError(f"--num_tasks must be at least 1, got {num_tasks}")
    if strategy == "domain":
        if num_tasks != len(DOMAINNET_DOMAINS):
            raise CassleError(f"--num_tasks must be {len(DOMAINNET_DOMAINS)} for DomainNet (one task per domain)")
        return TaskSplit(strategy, num_tasks, None, tuple(DOMAINNET_DOMAINS))
    classes = None
    if strategy == "class":
        classes = tuple(tuple(block) for block in class_split(num_classes, num_tasks, seed))
    return TaskSplit(strategy, num_tasks, classes, tuple(f"task{t}" for t in range(num_tasks)))


def _dataclass_from(cls: type, ns: Any) -> Any:
    return cls(**{f.name: getattr(ns, f.name) for f in dataclasses.fields(cls)})


def build_config(ns: Any, trainer: TrainerConfig) -> PretrainConfig:
    """The :class:`PretrainConfig` of parsed flags ``ns`` (an ``argparse.Namespace`` of
    ``cassle.args.pretrain``) and the already-mapped trainer settings. Raises CassleError on values that
    cannot work."""
    data_spec = spec_from_args(ns)
    spec = method_spec(ns.method)
    notes: list[str] = []

    split = resolve_split(ns.split_strategy, data_spec, ns.num_tasks, ns.seed)
    if ns.task_idx is not None and not 0 <= ns.task_idx < split.num_tasks:
        raise CassleError(f"--task_idx must be in [0, {split.num_tasks - 1}], got {ns.task_idx}")

    if ns.distiller is not None:
        regularizer_spec(ns.distiller)
        if ns.distiller not in spec.regularizers:
            raise CassleError(f"--distiller {ns.distiller} works with --method "
                              f"{', '.join(methods_of(ns.distiller))}, not {ns.method}")
    regularizer = _dataclass_from(RegularizerParams, ns)
    if ns.distiller == "vicreg_pnr" and regularizer.negative_lamb >= regularizer.distill_lamb:
        raise CassleError(
            f"--negative_lamb ({regularizer.negative_lamb}) must be smaller than --distill_lamb "
            f"({regularizer.distill_lamb}) for vicreg_pnr: otherwise the objective is unbounded below"
        )
    params = _dataclass_from(spec.params, ns)
    two_view_objectives = ("simclr_pnr", "mocov2plus_pnr")  # they replace the SSL loss, on two views
    if ns.distiller in two_view_objectives and (ns.multicrop or ns.num_crops != 2):
        raise CassleError(f"--distiller {ns.distiller} replaces the SSL loss by a two-view objective from task 1 "
                          f"on: it takes two crops (no --multicrop, --num_crops 2); use --distiller contrastive "
                          f"or no regulariser with multi-crop")
    if getattr(params, "supervised", False) and ns.distiller == "simclr_pnr":
        raise CassleError("--supervised has no effect with --distiller simclr_pnr, whose objective replaces "
                          "SimCLR's loss from task 1 on (as officially): use --distiller contrastive or no regulariser")

    max_epochs = ns.max_epochs if ns.max_epochs is not None else DEFAULT_EPOCHS[ns.dataset]
    for flag, value, low in (("--max_epochs", max_epochs, 1), ("--batch_size", ns.batch_size, 1),
                             ("--num_workers", ns.num_workers, 0),
                             ("--checkpoint_frequency", ns.checkpoint_frequency, 1),
                             ("--warmup_epochs", ns.warmup_epochs, 0), ("--proj_hidden_dim", ns.proj_hidden_dim, 1),
                             ("--output_dim", ns.output_dim, 1), ("--num_nodes", ns.num_nodes, 1)):
        if value < low:
            raise CassleError(f"{flag} must be at least {low}, got {value}")
    for flag in ("lr", "classifier_lr", "weight_decay", "eta_lars", "warmup_start_lr", "min_lr"):
        if getattr(ns, flag) < 0:
            raise CassleError(f"--{flag} must not be negative, got {getattr(ns, flag)}")
    for flag, low in (("limit_train_batches", "a fraction in (0, 1]"), ("limit_val_batches", "a fraction in [0, 1]")):
        value = getattr(ns, flag)
        if value is not None and (value < 0 or (value == 0 and flag == "limit_train_batches")
                                  or (value > 1 and value != int(value))):
            raise CassleError(f"--{flag} takes {low} or a whole number of batches >= 1, got {value}")
    if ns.scheduler == "step" and not ns.lr_decay_steps:
        raise CassleError("--scheduler step needs --lr_decay_steps")
    world = trainer.world_size
    if spec.momentum and hasattr(params, "queue_size"):
        global_batch = ns.batch_size * world
        if params.queue_size % global_batch != 0:
            raise CassleError(f"--queue_size ({params.queue_size}) must be a multiple of the global batch "
                              f"({global_batch} = --batch_size x devices)")
    optim = OptimConfig(
        optimizer=ns.optimizer, lars=ns.lars, grad_clip_lars=ns.grad_clip_lars, eta_lars=ns.eta_lars,
        exclude_bias_n_norm=ns.exclude_bias_n_norm, scheduler=ns.scheduler, lr=ns.lr,
        # The official linear scaling rule: lr * batch_size * devices / 256 (classifier_lr is not scaled).
        lr_scaled=ns.lr * ns.batch_size * world / 256, classifier_lr=ns.classifier_lr,
        weight_decay=ns.weight_decay, warmup_epochs=ns.warmup_epochs, warmup_start_lr=ns.warmup_start_lr,
        min_lr=ns.min_lr, lr_decay_steps=tuple(ns.lr_decay_steps or ()), max_epochs=max_epochs,
    )

    online_eval = data_spec.online_eval if ns.online_eval is None else ns.online_eval
    if online_eval:
        data_spec.require_evaluation("--online_eval", every_train_label=True)
    if ns.knn_eval:
        data_spec.require_evaluation("--knn_eval", every_train_label=True)
    if ns.eval_every_task:
        data_spec.require_evaluation("--eval_every_task")
    data = DataConfig(
        dataset=ns.dataset, data_dir=ns.data_dir, train_dir=ns.train_dir, val_dir=ns.val_dir,
        num_classes=data_spec.num_classes, small_images=data_spec.small_images, mean=tuple(data_spec.mean),
        std=tuple(data_spec.std), spec=data_spec, no_labels=ns.no_labels, small_stem=ns.small_stem,
        views=resolve_views(ns, data_spec), num_large_crops=ns.num_crops, batch_size=ns.batch_size,
        num_workers=ns.num_workers, fast_data=ns.fast_data,
    )
    model = ModelConfig(
        method=ns.method, encoder=ns.encoder, small_images=data.small_images,
        zero_init_residual=ns.zero_init_residual, num_classes=data.num_classes,
        proj_hidden_dim=ns.proj_hidden_dim, output_dim=ns.output_dim, params=params, regularizer=regularizer,
        optim=optim, split=split, num_large_crops=ns.num_crops, online_eval=online_eval, knn_eval=ns.knn_eval,
        knn_k=ns.knn_k,
        teacher_bn_train=ns.teacher_bn_train, channels_last=ns.channels_last, compile=ns.compile,
        keep_unused_parameters=trainer.strategy == "ddp_find_unused_parameters_true",
    )
    continual = ContinualConfig(split=split, task_idx=ns.task_idx, distiller=ns.distiller,
                                pretrained_model=ns.pretrained_model, resume=ns.resume)

    name = ns.name or "-".join([ns.method, ns.distiller or "finetune", ns.dataset])
    if "/" in name or name in (".", ".."):
        raise CassleError(f"--name must be a plain folder name, got {name!r}")
    if ns.wandb and not ns.offline and not ns.project:
        raise CassleError("--wandb needs --project (or --offline)")
    run = RunConfig(
        name=name, checkpoint_dir=ns.checkpoint_dir, run_dir=os.path.join(ns.checkpoint_dir, name),
        checkpoint_frequency=ns.checkpoint_frequency, seed=ns.seed, wandb=ns.wandb, project=ns.project,
        entity=ns.entity, offline=ns.offline, eval_every_task=ns.eval_every_task,
        linear_max_epochs=ns.linear_max_epochs,
    )
    if ns.dali or ns.dali_device != "gpu":
        notes.append("note: --dali/--dali_device are accepted for the official scripts; images are decoded "
                     "by torchvision (or on the device with --fast_data)")
    if ns.save_checkpoint:
        notes.append("note: --save_checkpoint is accepted for the official scripts; every task's checkpoint "
                     "is always written")
    return PretrainConfig(data=data, model=model, continual=continual, trainer=trainer, run=run, notes=tuple(notes))
