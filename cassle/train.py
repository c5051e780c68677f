"""The task-by-task driver behind ``main_pretrain.py``.

One process trains tasks ``--task_idx`` .. ``--num_tasks - 1``. Each task gets a fresh model,
Trainer, optimiser and schedule (spec 1.5), starts from the previous task's final weights, and
ends with an atomically written checkpoint and a manifest entry. The run folder
``<checkpoint_dir>/<name>`` holds ``args.json``, ``split.json``, ``manifest.json`` and
``task<t>/final.ckpt`` (``task<t>/last.ckpt`` while the task runs, for ``--resume``).
"""

from __future__ import annotations

import dataclasses
import math
import os
import time
from typing import Any

from cassle.config import NON_RESULT_FLAGS, PretrainConfig
from cassle.errors import CassleError, CheckpointError
from cassle.registry import method_spec
from cassle.utils.checkpoint import RunManifest, atomic_write_json, read_json
from cassle.utils.report import fmt, log, markdown_table


def quiet_lightning() -> None:
    """Keep Lightning's start-up banners out of the way; warnings and errors still show."""
    import logging
    import warnings

    import pytorch_lightning  # noqa: F401  (its import sets its loggers to INFO: lower them after)

    for name in ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", message=".*weights_only.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*but have no `val_dataloader`.*")  # online eval off
    # The frozen teacher is in eval mode on purpose (spec 1.4 step 9).
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")


# ---------------------------------------------------------------------------------------- run folder
def prepare_run_folder(cfg: PretrainConfig) -> RunManifest:
    """Create the run folder, or check that ``--resume`` continues the same experiment."""
    run_dir = cfg.run.run_dir
    args_path = os.path.join(run_dir, "args.json")
    config = cfg.to_flat()
    if os.path.exists(args_path):
        if not cfg.continual.resume:
            raise CassleError(f"run folder {run_dir} exists: pass --resume to continue it, or choose another --name")
        stored = read_json(args_path, "run arguments")
        changed = sorted(
            key for key in set(stored) | set(config)
            if key not in NON_RESULT_FLAGS and stored.get(key) != _jsonable(config.get(key))
        )
        if changed:
            detail = ", ".join(f"--{k} {stored.get(k)!r} -> {_jsonable(config.get(k))!r}" for k in changed[:4])
            raise CassleError(f"--resume with flags that change results: {detail}")
    elif cfg.continual.resume:
        raise CassleError(f"--resume: no run to continue in {run_dir} (args.json missing)")
    else:
        os.makedirs(run_dir, exist_ok=True)
        atomic_write_json(args_path, config)
        split = cfg.split
        atomic_write_json(os.path.join(run_dir, "split.json"),
                          {"split_strategy": split.strategy, "tasks": config["tasks"], "task_names": list(split.names)})
    return RunManifest(run_dir)


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------- hardware
def resolve_hardware(cfg: PretrainConfig) -> PretrainConfig:
    """The configuration with the accelerator, devices and precision this machine gives (a new object)."""
    import torch

    t = cfg.trainer
    accelerator, devices, precision = t.accelerator, t.devices, t.precision
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise CassleError("no GPU found (the flags ask for one: --gpus/--accelerator); pass --accelerator cpu to run on the CPU")
    if accelerator == "cpu":
        if precision == "16-mixed":
            log("note: --precision 16 is not available on the CPU; using 32-true")
            precision = "32-true"
        if devices == "auto" or isinstance(devices, list):
            devices = 1
    if precision is None:
        precision = "16-mixed" if accelerator == "gpu" else "32-true"
    if devices == "auto":
        devices = 1 if accelerator != "gpu" else "auto"
    return dataclasses.replace(cfg, trainer=dataclasses.replace(t, accelerator=accelerator, devices=devices,
                                                                precision=precision))


# ---------------------------------------------------------------------------------------- data
class TaskData:
    """Datasets loaded once per run; loaders built per task."""

    def __init__(self, cfg: PretrainConfig, datasets: tuple[Any, Any] | None = None):
        from cassle.data.augmentations import build_val_transform
        from cassle.data.datasets import build_datasets

        self.cfg = cfg
        data = cfg.data
        if datasets is None:
            datasets = build_datasets(data.dataset, data_dir=data.data_dir, train_dir=data.train_dir,
                                      val_dir=data.val_dir)
        self.train, self.val = datasets
        if data.fast_data:
            from cassle.data.loaders import fast_data_kind

            fast_data_kind(self.train)  # a one-line error before the run folder is made
        self.val_transform = build_val_transform(data.dataset, data.mean, data.std)

    def task_indices(self, task: int) -> list[int]:
        from cassle.data.loaders import task_indices

        split = self.cfg.split
        classes = [list(block) for block in split.classes] if split.classes is not None else None
        return task_indices(self.train.targets, split.strategy, classes, task, split.num_tasks,
                            domains=getattr(self.train, "domains", None))

    def train_loaders(self, task: int, device: Any, rank: int = 0, world_size: int = 1) -> dict[str, Any]:
        """``{"task<t>": ..., "online_eval": ...}`` of this rank (cassle.data.loaders.build_train_loaders);
        --fast_data augments on ``device`` (cassle.data.device)."""
        import torch

        from cassle.data.loaders import build_train_loaders

        data, model = self.cfg.data, self.cfg.model
        views = [view.as_dict() for view in data.views]
        # The online classifier sees the last large crop's pipeline (the official view 2).
        online = views[data.num_large_crops - 1] if model.online_eval else None
        return build_train_loaders(
            self.train, self.task_indices(task), views, data.mean, data.std, data.batch_size, data.num_workers,
            seed=self.cfg.run.seed, task=task, rank=rank, world_size=world_size, online_eval_view=online,
            device=device, fast=data.fast_data,
            memory_format=torch.channels_last if model.channels_last else torch.contiguous_format)

    def val_loader(self) -> Any:
        from cassle.data.datasets import with_transform
        from cassle.data.loaders import build_val_loader

        data = self.cfg.data
        return build_val_loader(with_transform(self.val, self.val_transform), data.batch_size, data.num_workers)


# ---------------------------------------------------------------------------------------- model
def build_model(cfg: PretrainConfig, task: int) -> Any:
    """The LightningModule of ``task``: plain SSL at task 0 (as officially), regularised from task 1 on."""
    regularizer = cfg.continual.distiller if task > 0 else None
    return method_spec(cfg.model.method).model_class(regularizer)(cfg.model, task)


def init_from_checkpoint(model: Any, path: str, cfg: PretrainConfig) -> None:
    from cassle.distillers import OPTIONAL_AT_TASK_START, TEACHER_PREFIXES
    from cassle.utils.checkpoint import load_model_state

    load_model_state(model, path, cfg.model.method, optional=OPTIONAL_AT_TASK_START, ignored=TEACHER_PREFIXES)


def checkpoint_metadata(cfg: PretrainConfig, task: int) -> dict[str, Any]:
    """What a task checkpoint says about itself (``checkpoint["cassle"]``): the probe and the loaders read it."""
    m = cfg.model
    return {
        "method": m.method, "encoder": m.encoder, "dataset": cfg.data.dataset,
        "distiller": cfg.continual.distiller if task > 0 else None, "task_idx": task,
        "num_tasks": cfg.split.num_tasks, "num_classes": m.num_classes, "small_images": m.small_images,
        "output_dim": m.output_dim, "seed": cfg.run.seed, "split_strategy": cfg.split.strategy,
        "tasks": cfg.to_flat()["tasks"],
    }


# ---------------------------------------------------------------------------------------- callbacks
def make_callbacks(cfg: PretrainConfig, task: int, task_dir: str) -> list[Any]:
    import pytorch_lightning as pl

    frequency = cfg.run.checkpoint_frequency
    metadata = checkpoint_metadata(cfg, task)

    class MidTaskCheckpoint(pl.Callback):
        """``last.ckpt`` after every --checkpoint_frequency epochs, written atomically (for --resume)."""

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            epoch = trainer.current_epoch + 1
            if epoch % frequency == 0 and epoch < trainer.max_epochs:
                save_atomic(trainer, os.path.join(task_dir, "last.ckpt"))

        def on_save_checkpoint(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                               checkpoint: dict[str, Any]) -> None:
            checkpoint["cassle"] = dict(metadata)

    class EpochPrinter(pl.Callback):
        """One line per epoch: long runs show progress without a progress bar."""

        def on_train_epoch_start(self, trainer, pl_module) -> None:
            self.start = time.time()

        def on_train_epoch_end(self, trainer, pl_module) -> None:
            if not trainer.is_global_zero:
                return
            metrics = trainer.callback_metrics
            parts = [f"task {task}", f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}"]
            for key in ("train_loss", "val_acc1", "knn_acc1"):
                if key in metrics:
                    parts.append(f"{key} {float(metrics[key]):.3f}")
            parts.append(f"{time.time() - self.start:.1f}s")
            log("  ".join(parts))

    return [MidTaskCheckpoint(), EpochPrinter()]


def save_atomic(trainer: Any, path: str) -> None:
    """Write a full Lightning checkpoint to ``path`` via a temporary file and a rename."""
    tmp = path + ".tmp"
    trainer.save_checkpoint(tmp, weights_only=False)
    if trainer.is_global_zero:
        os.replace(tmp, path)


def make_loggers(cfg: PretrainConfig, task: int, task_dir: str, model: Any) -> list[Any]:
    from pytorch_lightning.loggers import CSVLogger

    run = cfg.run
    loggers: list[Any] = [CSVLogger(save_dir=task_dir, name="", version="")]
    if run.wandb:
        from pytorch_lightning.loggers import WandbLogger

        wandb_logger = WandbLogger(name=f"{run.name}-task{task}", project=run.project, entity=run.entity,
                                   offline=run.offline, save_dir=run.run_dir, reinit=True)
        if task == cfg.continual.task_idx:
            wandb_logger.watch(model, log="gradients", log_freq=100)
            wandb_logger.log_hyperparams(cfg.to_flat())
        loggers.append(wandb_logger)
    return loggers


# ---------------------------------------------------------------------------------------- tasks
def train_task(cfg: PretrainConfig, task: int, init_checkpoint: str | None, data: TaskData,
               manifest: RunManifest) -> dict[str, float]:
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import CombinedLoader

    t = cfg.trainer
    task_dir = os.path.join(cfg.run.run_dir, f"task{task}")
    os.makedirs(task_dir, exist_ok=True)
    # Re-seed at every task before the model is built (docs/decisions.md): starting at task 1 from a
    # task-0 checkpoint then equals the run that trained task 0 itself.
    pl.seed_everything(cfg.run.seed, verbose=False)
    model = build_model(cfg, task)
    if init_checkpoint is not None:
        init_from_checkpoint(model, init_checkpoint, cfg)
    if task > 0 and cfg.continual.distiller is not None:
        model.build_teacher()
    if cfg.model.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)

    resume_from = os.path.join(task_dir, "last.ckpt")
    resume_from = resume_from if cfg.continual.resume and os.path.exists(resume_from) else None
    if resume_from:
        log(f"task {task}: continuing from {resume_from}")

    trainer = pl.Trainer(
        max_epochs=cfg.optim.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        sync_batchnorm=t.sync_batchnorm and t.world_size > 1,
        logger=make_loggers(cfg, task, task_dir, model),
        callbacks=make_callbacks(cfg, task, task_dir),
        enable_checkpointing=False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        limit_train_batches=_limit(t.limit_train_batches),
        limit_val_batches=_limit(t.limit_val_batches),
        log_every_n_steps=1,
    )
    device = trainer.strategy.root_device
    loaders = data.train_loaders(task, device, rank=trainer.global_rank, world_size=trainer.world_size)
    train_loaders = CombinedLoader(loaders, mode="min_size")
    val_loader = data.val_loader() if cfg.model.online_eval else None
    start = time.time()
    trainer.fit(model, train_dataloaders=train_loaders, val_dataloaders=val_loader, ckpt_path=resume_from)
    if trainer.interrupted:
        raise KeyboardInterrupt
    final = os.path.join(task_dir, "final.ckpt")
    save_atomic(trainer, final)
    if os.path.exists(os.path.join(task_dir, "last.ckpt")):
        os.remove(os.path.join(task_dir, "last.ckpt"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)}
    if cfg.run.wandb:
        import wandb

        wandb.finish()
    manifest.mark_finished(task, final, metrics, time.time() - start)
    return metrics


def _limit(value: float | None) -> float | int | None:
    if value is None:
        return None
    return int(value) if value >= 1 else value


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def run_continual(cfg: PretrainConfig) -> RunManifest:
    """Train every remaining task of the run; returns the manifest."""
    quiet_lightning()
    for note in cfg.notes:
        log(note)
    cfg = resolve_hardware(cfg)
    continual = cfg.continual
    if continual.task_idx > 0 and not continual.pretrained_model and not continual.resume:
        raise CheckpointError(f"--task_idx {continual.task_idx} starts from the end of task {continual.task_idx - 1}: "
                              f"pass --pretrained_model (or --resume a run that finished it)")
    # Everything that can fail on bad input happens before the run folder is created.
    data = TaskData(cfg)
    manifest = prepare_run_folder(cfg)
    for task in range(continual.task_idx, cfg.split.num_tasks):
        if manifest.finished(task):
            log(f"task {task}: finished earlier, skipped ({manifest.checkpoint(task)})")
            continue
        if task > 0 and manifest.finished(task - 1):
            init = manifest.checkpoint(task - 1)
        elif task == continual.task_idx and continual.pretrained_model:
            init = continual.pretrained_model
        elif task == 0:
            init = None
        else:
            raise CheckpointError(f"task {task} needs the final checkpoint of task {task - 1}: pass --pretrained_model")
        log(f"task {task}: {'from ' + init if init else 'from scratch'}"
            f"{', regulariser ' + continual.distiller if task > 0 and continual.distiller else ''}")
        train_task(cfg, task, init, data, manifest)
    print(format_online_table(cfg, manifest))
    if cfg.run.eval_every_task:
        evaluate_every_task(cfg)
    return manifest


def evaluate_every_task(cfg: PretrainConfig) -> None:
    """--eval_every_task: linear-probe every finished task of this run (cassle/evaluation/run.py)."""
    from cassle.evaluation.config import linear_config_for_run
    from cassle.evaluation.report import format_results_md
    from cassle.evaluation.run import evaluate_run

    print(format_results_md(evaluate_run(linear_config_for_run(cfg.to_flat()))))


def format_online_table(cfg: PretrainConfig, manifest: RunManifest) -> str:
    """Accuracy of the online classifier on each task's classes after each task (percent)."""
    names = list(cfg.split.names)
    header = ["after task"] + names + ["all"]
    rows = []
    for task in manifest.finished_tasks():
        metrics = manifest.metrics(task)
        row = [str(task)] + [fmt(metrics.get(f"val_acc1_{n}")) for n in names] + [fmt(metrics.get("val_acc1"))]
        rows.append(row)
    name = cfg.run.name
    title = f"online linear accuracy (%) of {name}" if cfg.model.online_eval else f"run {name}: online evaluation off"
    return "\n".join([title] + markdown_table(header, rows))
