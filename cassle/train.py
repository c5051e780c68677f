"""The task-by-task driver behind ``main_pretrain.py``.

One process trains tasks ``--task_idx`` .. ``--num_tasks - 1``. Each task gets a fresh model,
Trainer, optimiser and schedule (spec 1.5), starts from the previous task's final weights, and
ends with an atomically written checkpoint and a manifest entry. The run folder
``<checkpoint_dir>/<name>`` holds ``args.json``, ``split.json``, ``manifest.json`` and
``task<t>/final.ckpt`` (``task<t>/last.ckpt`` while the task runs, for ``--resume``).
"""

from __future__ import annotations

import argparse
import math
import os
import time
from typing import Any

from cassle.args.pretrain import NON_RESULT_FLAGS, config_dict
from cassle.errors import CassleError, CheckpointError
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
def prepare_run_folder(args: argparse.Namespace) -> RunManifest:
    """Create the run folder, or check that ``--resume`` continues the same experiment."""
    args_path = os.path.join(args.run_dir, "args.json")
    config = config_dict(args)
    if os.path.exists(args_path):
        if not args.resume:
            raise CassleError(f"run folder {args.run_dir} exists: pass --resume to continue it, or choose another --name")
        stored = read_json(args_path, "run arguments")
        changed = sorted(
            key for key in set(stored) | set(config)
            if key not in NON_RESULT_FLAGS and stored.get(key) != _jsonable(config.get(key))
        )
        if changed:
            detail = ", ".join(f"--{k} {stored.get(k)!r} -> {_jsonable(config.get(k))!r}" for k in changed[:4])
            raise CassleError(f"--resume with flags that change results: {detail}")
    elif args.resume:
        raise CassleError(f"--resume: no run to continue in {args.run_dir} (args.json missing)")
    else:
        os.makedirs(args.run_dir, exist_ok=True)
        atomic_write_json(args_path, config)
        atomic_write_json(os.path.join(args.run_dir, "split.json"),
                          {"split_strategy": args.split_strategy, "tasks": args.tasks, "task_names": args.task_names})
    return RunManifest(args.run_dir)


def _jsonable(value: Any) -> Any:
    import json

    return json.loads(json.dumps(value, default=str))


# ---------------------------------------------------------------------------------------- hardware
def resolve_hardware(args: argparse.Namespace) -> None:
    import torch

    if args.accelerator == "auto":
        args.accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if args.accelerator == "gpu" and not torch.cuda.is_available():
        raise CassleError("no GPU found (the flags ask for one: --gpus/--accelerator); pass --accelerator cpu to run on the CPU")
    if args.accelerator == "cpu":
        if args.precision == "16-mixed":
            log("note: --precision 16 is not available on the CPU; using bf16-mixed")
            args.precision = "bf16-mixed"
        if args.devices == "auto" or isinstance(args.devices, list):
            args.devices = 1
    if args.devices == "auto":
        args.devices = 1 if args.accelerator != "gpu" else "auto"


# ---------------------------------------------------------------------------------------- data
class TaskData:
    """Datasets loaded once per run; loaders built per task."""

    def __init__(self, args: argparse.Namespace, datasets: tuple[Any, Any] | None = None):
        from cassle.data.augmentations import build_val_transform
        from cassle.data.datasets import build_datasets
        from cassle.data.info import spec_from_args

        self.args = args
        spec = spec_from_args(args)
        if datasets is None:
            datasets = build_datasets(args.dataset, data_dir=args.data_dir, train_dir=args.train_dir,
                                      val_dir=args.val_dir, no_labels=spec.no_labels)
        self.train, self.val = datasets
        if args.fast_data and not hasattr(self.train, "data") and not hasattr(self.train, "samples"):
            raise CassleError(f"--fast_data needs an in-memory dataset (cifar100, digits) or an image-file dataset "
                              f"(imagenet100, domainnet); {type(self.train).__name__} is neither")
        self.mean, self.std = spec.mean, spec.std
        self.val_transform = build_val_transform(spec)

    def task_indices(self, task: int) -> list[int]:
        from cassle.data.loaders import task_indices

        args = self.args
        return task_indices(self.train.targets, args.split_strategy, args.tasks, task, args.num_tasks,
                            domains=getattr(self.train, "domains", None))

    def train_loaders(self, task: int, device: Any) -> dict[str, Any]:
        args = self.args
        indices = self.task_indices(task)
        if len(indices) < args.batch_size:
            raise CassleError(f"task {task} has {len(indices)} training images, fewer than --batch_size {args.batch_size}")
        if args.fast_data:
            return self.device_loaders(task, indices, device)
        from cassle.data.augmentations import build_view_transform
        from cassle.data.loaders import build_pretrain_loaders

        views = [build_view_transform(cfg, self.mean, self.std) for cfg in args.transform_kwargs]
        online = views[-1] if args.online_eval else None  # official: the view-2 pipeline
        loaders = build_pretrain_loaders(self.train, indices, views, args.batch_size, args.num_workers,
                                         online_eval_transform=online)
        loaders[f"task{task}"] = loaders.pop("task")
        return loaders

    def device_loaders(self, task: int, indices: list[int], device: Any) -> dict[str, Any]:
        """--fast_data: both views are augmented on the device. In-memory datasets (``.data``) live there as
        uint8; file datasets (``.samples``: imagenet100, domainnet) are read as encoded bytes by
        --num_workers CPU workers and decoded on the device (cassle.data.gpu_decode)."""
        import torch

        from cassle.data.gpu_augment import BatchViewAugment, TwoViewBatchAugment

        args = self.args
        fmt = torch.channels_last if args.channels_last else torch.contiguous_format
        augment = TwoViewBatchAugment(args.transform_kwargs, self.mean, self.std, memory_format=fmt)
        online = None
        if args.online_eval:  # the view-2 pipeline over all training images, as officially
            online = BatchViewAugment(args.transform_kwargs[-1], self.mean, self.std, memory_format=fmt)
        task_seed, online_seed = args.seed * 1000 + task, args.seed * 1000 + 500 + task

        if not hasattr(self.train, "data"):
            from cassle.data.gpu_decode import DeviceFileEvalLoader, DeviceFileTaskLoader

            loaders: dict[str, Any] = {
                f"task{task}": DeviceFileTaskLoader(self.train, indices, args.batch_size, augment, device,
                                                    num_workers=args.num_workers, seed=task_seed)
            }
            if online is not None:
                loaders["online_eval"] = DeviceFileEvalLoader(self.train, args.batch_size, online, device,
                                                              num_workers=args.num_workers, seed=online_seed)
            return loaders

        from cassle.data.gpu_augment import DeviceDataset, DeviceEvalLoader, DeviceTaskLoader

        if getattr(self, "_device_dataset", None) is None or self._device_dataset.device != torch.device(device):
            self._device_dataset = DeviceDataset(self.train.data, self.train.targets, device=device)
        loaders = {
            f"task{task}": DeviceTaskLoader(self._device_dataset, indices, args.batch_size, augment,
                                            seed=task_seed)
        }
        if online is not None:
            loaders["online_eval"] = DeviceEvalLoader(self._device_dataset, args.batch_size, online,
                                                      seed=online_seed)
        return loaders

    def val_loader(self) -> Any:
        from cassle.data.datasets import with_transform
        from cassle.data.loaders import build_val_loader

        return build_val_loader(with_transform(self.val, self.val_transform), self.args.batch_size, self.args.num_workers)


# ---------------------------------------------------------------------------------------- model
def build_model(args: argparse.Namespace, task: int):
    from cassle.distillers import DISTILLERS
    from cassle.methods import METHODS

    model_cls = METHODS[args.method]
    distiller = args.distiller if task > 0 else None  # task 0 is always plain SSL (spec 1.3)
    if distiller is not None:
        model_cls = DISTILLERS[distiller](model_cls)
    return model_cls(args)


def init_from_checkpoint(model: Any, path: str, args: argparse.Namespace) -> None:
    from cassle.distillers import IGNORED_ON_LOAD, OPTIONAL_AT_TASK_START
    from cassle.utils.checkpoint import load_model_state

    load_model_state(model, path, args.method, optional=OPTIONAL_AT_TASK_START, ignored=IGNORED_ON_LOAD)


# ---------------------------------------------------------------------------------------- callbacks
def make_callbacks(args: argparse.Namespace, task: int, task_dir: str) -> list[Any]:
    import pytorch_lightning as pl

    class MidTaskCheckpoint(pl.Callback):
        """``last.ckpt`` after every --checkpoint_frequency epochs, written atomically (for --resume)."""

        def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            epoch = trainer.current_epoch + 1
            if epoch % args.checkpoint_frequency == 0 and epoch < trainer.max_epochs:
                save_atomic(trainer, os.path.join(task_dir, "last.ckpt"))

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


def make_loggers(args: argparse.Namespace, task: int, task_dir: str, model: Any) -> list[Any]:
    from pytorch_lightning.loggers import CSVLogger

    loggers: list[Any] = [CSVLogger(save_dir=task_dir, name="", version="")]
    if args.wandb:
        from pytorch_lightning.loggers import WandbLogger

        wandb_logger = WandbLogger(name=f"{args.name}-task{task}", project=args.project, entity=args.entity,
                                   offline=args.offline, save_dir=args.run_dir, reinit=True)
        if task == args.task_idx:
            wandb_logger.watch(model, log="gradients", log_freq=100)
            wandb_logger.log_hyperparams(config_dict(args))
        loggers.append(wandb_logger)
    return loggers


# ---------------------------------------------------------------------------------------- tasks
def train_task(args: argparse.Namespace, task: int, init_checkpoint: str | None, data: TaskData,
               manifest: RunManifest) -> dict[str, float]:
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import CombinedLoader

    task_dir = os.path.join(args.run_dir, f"task{task}")
    os.makedirs(task_dir, exist_ok=True)
    # Re-seed at every task before the model is built (DECISIONS.md): starting at task 1 from a
    # task-0 checkpoint then equals the run that trained task 0 itself.
    pl.seed_everything(args.seed, verbose=False)
    model = build_model(args, task)
    model.current_task_idx = task
    if init_checkpoint is not None:
        init_from_checkpoint(model, init_checkpoint, args)
    if task > 0 and args.distiller is not None:
        model.build_teacher()
    if args.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)

    resume_from = os.path.join(task_dir, "last.ckpt")
    resume_from = resume_from if args.resume and os.path.exists(resume_from) else None
    if resume_from:
        log(f"task {task}: continuing from {resume_from}")

    trainer = pl.Trainer(
        max_epochs=args.max_epochs,
        accelerator=args.accelerator,
        devices=args.devices,
        num_nodes=args.num_nodes,
        strategy=args.strategy,
        precision=args.precision,
        sync_batchnorm=args.sync_batchnorm and args.num_devices * args.num_nodes > 1,
        logger=make_loggers(args, task, task_dir, model),
        callbacks=make_callbacks(args, task, task_dir),
        enable_checkpointing=False,
        enable_progress_bar=args.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=args.check_val_every_n_epoch,
        limit_train_batches=_limit(args.limit_train_batches),
        limit_val_batches=_limit(args.limit_val_batches),
        log_every_n_steps=1,
    )
    device = trainer.strategy.root_device
    train_loaders = CombinedLoader(data.train_loaders(task, device), mode="min_size")
    val_loader = data.val_loader() if args.online_eval else None
    start = time.time()
    trainer.fit(model, train_dataloaders=train_loaders, val_dataloaders=val_loader, ckpt_path=resume_from)
    if trainer.interrupted:
        raise KeyboardInterrupt
    final = os.path.join(task_dir, "final.ckpt")
    save_atomic(trainer, final)
    if os.path.exists(os.path.join(task_dir, "last.ckpt")):
        os.remove(os.path.join(task_dir, "last.ckpt"))
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)}
    if args.wandb:
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


def run_continual(args: argparse.Namespace) -> RunManifest:
    """Train every remaining task of the run; returns the manifest."""
    quiet_lightning()
    resolve_hardware(args)
    if args.task_idx > 0 and not args.pretrained_model and not args.resume:
        raise CheckpointError(f"--task_idx {args.task_idx} starts from the end of task {args.task_idx - 1}: "
                              f"pass --pretrained_model (or --resume a run that finished it)")
    # Everything that can fail on bad input happens before the run folder is created.
    data = TaskData(args)
    manifest = prepare_run_folder(args)
    for task in range(args.task_idx, args.num_tasks):
        if manifest.finished(task):
            log(f"task {task}: finished earlier, skipped ({manifest.checkpoint(task)})")
            continue
        if task > 0 and manifest.finished(task - 1):
            init = manifest.checkpoint(task - 1)
        elif task == args.task_idx and args.pretrained_model:
            init = args.pretrained_model
        elif task == 0:
            init = None
        else:
            raise CheckpointError(f"task {task} needs the final checkpoint of task {task - 1}: pass --pretrained_model")
        log(f"task {task}: {'from ' + init if init else 'from scratch'}"
            f"{', regulariser ' + args.distiller if task > 0 and args.distiller else ''}")
        train_task(args, task, init, data, manifest)
    print(format_online_table(args, manifest))
    if args.eval_every_task:
        evaluate_every_task(args)
    return manifest


def evaluate_every_task(args: argparse.Namespace) -> None:
    """--eval_every_task: linear-probe every finished task of this run (cassle/evaluation.py)."""
    from cassle.args.common import data_flag_argv
    from cassle.args.linear import parse_args as parse_linear_args
    from cassle.evaluation import evaluate_run, format_results_md

    argv = ["--run_dir", args.run_dir, *data_flag_argv(args),
            "--encoder", args.encoder, "--method", args.method, "--lr", "0.1", "--seed", str(args.seed),
            "--num_tasks", str(args.num_tasks), "--split_strategy", args.split_strategy,
            "--batch_size", str(args.batch_size), "--num_workers", str(args.num_workers),
            "--accelerator", args.accelerator, "--knn_k", str(args.knn_k)]
    if args.accelerator == "cpu":
        argv.append("--cache_features")
    else:
        argv += ["--precision", args.precision]
        argv += ["--gpus", ",".join(str(d) for d in args.devices)] if isinstance(args.devices, list) else []
    if args.linear_max_epochs is not None:
        argv += ["--max_epochs", str(args.linear_max_epochs)]
    if args.wandb:
        argv += ["--wandb", "--name", f"{args.name}-linear"] + (["--offline"] if args.offline else [])
        argv += [f for flag in ("project", "entity") if getattr(args, flag) for f in (f"--{flag}", getattr(args, flag))]
    print(format_results_md(evaluate_run(args.run_dir, parse_linear_args(argv))))


def format_online_table(args: argparse.Namespace, manifest: RunManifest) -> str:
    """Accuracy of the online classifier on each task's classes after each task (percent)."""
    names = args.task_names
    header = ["after task"] + names + ["all"]
    rows = []
    for task in manifest.finished_tasks():
        metrics = manifest.metrics(task)
        row = [str(task)] + [fmt(metrics.get(f"val_acc1_{n}")) for n in names] + [fmt(metrics.get("val_acc1"))]
        rows.append(row)
    title = f"online linear accuracy (%) of {args.name}" if args.online_eval else f"run {args.name}: online evaluation off"
    return "\n".join([title] + markdown_table(header, rows))
