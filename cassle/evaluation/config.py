"""The linear probe's configuration: one frozen dataclass, resolved once, torch-free.

``main_linear.py`` parses its flags with argparse (``cassle.args.linear``) and ends with
:func:`resolve_linear_config`; a pretraining run evaluates itself through
:func:`linear_config_for_run`, straight from its stored flags. Nothing changes a
:class:`LinearConfig` afterwards: variants (the split of a run folder, one DomainNet domain) are
derived with :func:`dataclasses.replace`.

The field defaults are the defaults of ``main_linear.py``'s flags (the parser takes them from here):
the official probe (docs/official.md §6): 100 epochs, SGD without momentum, steps at epochs 60 and
80 by 0.1, weight decay 0; ``--batch_size`` 128 and ``--lr`` 0.1 are the parser's, the scripts pass
the recipe's 256 and per-method learning rate.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cassle.data.info import DatasetSpec, resolve_dataset
from cassle.data.splits import DOMAINNET_DOMAINS, class_split
from cassle.errors import CassleError

#: Fields computed by :func:`resolve_linear_config` (from the dataset and the split), never given.
DERIVED_FIELDS = frozenset({"num_classes", "small_images", "data_spec", "tasks", "task_names", "num_devices"})
#: Fields that ``main_linear.py`` resolves from ``--gpus``/``--devices``/``--accelerator``/``--strategy``
#: (``cassle.args.common.parse_accelerator``) rather than taking a flag's default.
HARDWARE_FIELDS = frozenset({"accelerator", "devices", "strategy"})

#: ``--semi_supervised``: the official split's fixed ``random_state`` (scikit-learn's train_test_split).
SEMI_SUPERVISED_SEED = 42


@dataclass(frozen=True)
class LinearConfig:
    """Everything a linear probe (of one checkpoint, or of every task of a run) needs."""

    # what to evaluate
    pretrained_feature_extractor: str | None = None
    run_dir: str | None = None
    random_init: bool = False
    method: str | None = None
    encoder: str = "resnet18"
    # data
    dataset: str = "digits"
    data_dir: str = "./datasets"
    train_dir: str | None = None
    val_dir: str | None = None
    no_labels: bool = False  # refused: a probe needs labels (the flag is shared with pretraining)
    small_stem: bool = False
    size: tuple[int, ...] | None = None  # one value: the probe's crop (custom --small_stem)
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    dali: bool = False  # accepted for the official scripts; images are read by torchvision
    num_workers: int = 4
    batch_size: int = 128
    # split and training subset
    split_strategy: str | None = None
    num_tasks: int = 5
    domain: str | None = None
    domain_aware: bool = False
    label_fraction: float = 1.0
    semi_supervised: float | None = None
    # optimisation
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.0
    weight_decay: float = 0.0
    scheduler: str = "step"
    lr_decay_steps: tuple[int, ...] = (60, 80)
    lr_decay_gamma: float = 0.1
    max_epochs: int = 100
    # hardware (Lightning 2.x names)
    accelerator: str = "auto"
    devices: int | str | tuple[int, ...] = 1
    strategy: str = "auto"
    precision: str = "auto"  # the machine's policy (cassle.utils.hardware) picks it on the probe's device
    check_val_every_n_epoch: int = 1
    limit_train_batches: float | None = None
    limit_val_batches: float | None = None
    # probe path, logging, outputs
    cache_features: bool = False
    knn_k: int = 20
    seed: int = 5
    name: str | None = None
    wandb: bool = False
    project: str | None = None
    entity: str | None = None
    offline: bool = False
    save_checkpoint: bool = False
    checkpoint_dir: str = "trained_models"
    output: str | None = None
    progress_bar: bool = False
    dry_run: bool = False
    # derived (DERIVED_FIELDS)
    num_classes: int = 0
    small_images: bool = False
    data_spec: DatasetSpec | None = None
    tasks: tuple[tuple[int, ...], ...] | None = None
    task_names: tuple[str, ...] = ()
    num_devices: int = 1

    def to_dict(self) -> dict[str, Any]:
        """Plain fields (tuples stay tuples; ``json.dumps`` writes them as lists)."""
        return dataclasses.asdict(self)

    def lr_factor(self, epoch: int) -> float:
        """Multiplier of ``lr`` at a 0-based epoch (``step``: MultiStepLR at ``lr_decay_steps``)."""
        from cassle.utils.schedulers import lr_at_epoch

        return lr_at_epoch(self.scheduler, epoch, 1.0, milestones=self.lr_decay_steps, gamma=self.lr_decay_gamma,
                           max_epochs=self.max_epochs)

    def labels_used(self) -> str:
        """Which training labels the probe sees, in words (for result titles and files)."""
        if self.semi_supervised is not None:
            return (f"--semi_supervised {self.semi_supervised:g}: official stratified split "
                    f"(random_state {SEMI_SUPERVISED_SEED})")
        if self.label_fraction < 1.0:
            return f"--label_fraction {self.label_fraction:g}: class-balanced subset drawn with --seed {self.seed}"
        return "all training labels"


FIELD_NAMES = tuple(f.name for f in dataclasses.fields(LinearConfig))


def flag_defaults() -> dict[str, Any]:
    """Defaults of the fields that are plain ``main_linear.py`` flags (the parser's defaults)."""
    return {f.name: f.default for f in dataclasses.fields(LinearConfig)
            if f.name not in DERIVED_FIELDS | HARDWARE_FIELDS}


def _num_devices(devices: Any) -> int:
    if isinstance(devices, tuple):
        return len(devices)
    return devices if isinstance(devices, int) and devices > 0 else 1


def resolve_linear_config(values: Mapping[str, Any]) -> LinearConfig:
    """Check the probe's settings and fill the derived ones: the single place both the command line
    and :func:`linear_config_for_run` go through.

    Args:
        values: field values (missing ones take the defaults); not the derived fields.

    Returns:
        The frozen configuration.

    Raises:
        CassleError: a bad value or combination, named by its flag, on one line.
    """
    unknown = set(values) - set(FIELD_NAMES)
    derived = set(values) & DERIVED_FIELDS
    if unknown or derived:
        raise ValueError(f"not configuration fields of the probe: {sorted(unknown | derived)}")
    v: dict[str, Any] = {f.name: f.default for f in dataclasses.fields(LinearConfig) if f.name not in DERIVED_FIELDS}
    v.update(values)
    for flag in ("size", "mean", "std"):
        if v[flag] is not None:
            v[flag] = tuple(v[flag])
    if v["size"] is not None and len(v["size"]) != 1:
        raise CassleError(f"--size takes one value for the probe, got {len(v['size'])}")
    spec = resolve_dataset(v["dataset"], data_dir=v["data_dir"], train_dir=v["train_dir"], val_dir=v["val_dir"],
                           no_labels=v["no_labels"], mean=v["mean"], std=v["std"],
                           size=v["size"][0] if v["size"] else None, small_stem=v["small_stem"])
    spec.require_evaluation("the linear probe")
    v["data_spec"] = spec
    v["num_classes"] = spec.num_classes
    v["small_images"] = spec.small_images
    sources = [bool(v["pretrained_feature_extractor"]), bool(v["run_dir"]), bool(v["random_init"])]
    if sum(sources) != 1:
        raise CassleError("give exactly one of --pretrained_feature_extractor, --run_dir, --random_init")
    if v["split_strategy"] is None:
        v["split_strategy"] = spec.default_split_strategy
    if v["split_strategy"] == "domain" and v["dataset"] != "domainnet":
        raise CassleError("--split_strategy domain needs --dataset domainnet")
    for flag in ("domain", "domain_aware"):
        if v[flag] and v["dataset"] != "domainnet":
            raise CassleError(f"--{flag} needs --dataset domainnet")
    if v["domain_aware"] and v["domain"] is not None:
        raise CassleError("--domain_aware trains one probe per domain itself: do not combine it with --domain")
    if v["batch_size"] < 1:
        raise CassleError(f"--batch_size must be at least 1, got {v['batch_size']}")
    if v["knn_k"] < 0:
        raise CassleError(f"--knn_k must be 0 (off) or positive, got {v['knn_k']}")
    if v["split_strategy"] == "domain":
        v["num_tasks"] = len(DOMAINNET_DOMAINS)
    tasks = class_split(v["num_classes"], v["num_tasks"], v["seed"]) if v["split_strategy"] == "class" else None
    v["tasks"] = tuple(tuple(int(c) for c in t) for t in tasks) if tasks is not None else None
    v["task_names"] = tuple(DOMAINNET_DOMAINS) if v["split_strategy"] == "domain" else tuple(
        f"task{t}" for t in range(v["num_tasks"]))
    if not 0.0 < v["label_fraction"] <= 1.0:
        raise CassleError(f"--label_fraction must be in (0, 1], got {v['label_fraction']}")
    if v["semi_supervised"] is not None:
        if not 0.0 < v["semi_supervised"] < 1.0:
            raise CassleError(f"--semi_supervised must be in (0, 1) (the fraction of labelled training images), "
                              f"got {v['semi_supervised']}")
        if v["label_fraction"] < 1.0:
            raise CassleError("give either --semi_supervised (the official stratified split) or --label_fraction "
                              "(a class-balanced subset drawn with --seed), not both")
    if v["max_epochs"] < 1:
        raise CassleError(f"--max_epochs must be at least 1, got {v['max_epochs']}")
    for path, flag in ((v["pretrained_feature_extractor"], "--pretrained_feature_extractor"),
                       (v["run_dir"], "--run_dir")):
        if path and not v["dry_run"] and not os.path.exists(path):
            raise CassleError(f"{flag} {path} does not exist")
    if v["name"] is None:
        source = v["run_dir"] or v["pretrained_feature_extractor"] or "random"
        v["name"] = os.path.basename(os.path.normpath(source)).replace(".ckpt", "") + "-linear"
    if v["wandb"] and not v["offline"] and not v["project"]:
        raise CassleError("--wandb needs --project (or --offline)")
    v["lr_decay_steps"] = tuple(int(s) for s in v["lr_decay_steps"])
    if isinstance(v["devices"], list):
        v["devices"] = tuple(v["devices"])
    v["num_devices"] = _num_devices(v["devices"])
    return LinearConfig(**v)


#: Pretraining flags (keys of a run's ``args.json``) that the whole-run evaluation takes as they are.
RUN_FLAGS_KEPT = ("dataset", "data_dir", "train_dir", "val_dir", "small_stem", "encoder", "method", "seed", "num_tasks",
                  "split_strategy", "batch_size", "num_workers", "knn_k", "wandb", "project", "entity",
                  "offline")


def linear_config_for_run(run_flags: Mapping[str, Any], **overrides: Any) -> LinearConfig:
    """The whole-run evaluation's configuration, from a pretraining run's stored flags.

    ``run_flags`` are the resolved pretraining flags (a run folder's ``args.json``, or
    ``vars(args)`` of the run itself). The probe takes the run's data, encoder, method, seed, split,
    batch size, workers, kNN k and wandb settings; on the CPU it trains on cached features in
    float32 (``cache_features``, ``precision 32-true``: the fast CPU path), elsewhere it keeps the
    run's accelerator, GPU ids and precision; ``max_epochs`` is the run's ``linear_max_epochs`` when
    set; the name is ``<run name>-linear``. Everything else is the probe's default.

    Args:
        run_flags: the run's flags; needs ``run_dir`` and ``name``.
        **overrides: probe fields that win over all of the above (``lr``, ``max_epochs``,
            ``cache_features``, ...).

    Returns:
        The resolved :class:`LinearConfig` with ``run_dir`` set.
    """
    cpu = run_flags.get("accelerator") == "cpu"
    devices = run_flags.get("devices")
    values: dict[str, Any] = {key: run_flags[key] for key in RUN_FLAGS_KEPT if key in run_flags}
    values.update(
        run_dir=run_flags["run_dir"],
        name=f"{run_flags['name']}-linear",
        accelerator=run_flags.get("accelerator") or "auto",
        # one GPU probes (docs/official.md §6); a list of ids says which one
        devices=tuple(devices) if isinstance(devices, (list, tuple)) and not cpu else 1,
        precision="32-true" if cpu else run_flags.get("precision") or "32-true",
        cache_features=cpu,
    )
    views = run_flags.get("transform_kwargs") or []
    if run_flags.get("dataset") == "custom":  # the run's normalisation and crop size (the first view's)
        values.update({flag: tuple(run_flags[flag]) for flag in ("mean", "std") if run_flags.get(flag)})
        if views:
            values["size"] = (int(views[0]["size"]),)
    if run_flags.get("linear_max_epochs"):
        values["max_epochs"] = run_flags["linear_max_epochs"]
    values.update(overrides)
    return resolve_linear_config(values)
