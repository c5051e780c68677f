"""The task-by-task driver behind ``main_pretrain.py``.

One command trains tasks ``--task_idx`` .. ``--num_tasks - 1``. Each task gets a fresh model, Trainer,
optimiser and schedule (docs/official.md §1.5), starts from the previous task's final weights, and ends
with an atomically written checkpoint and a manifest entry (``cassle/run_folder.py``).

Several processes (DDP through Lightning's launcher, ``torchrun`` or SLURM's ``srun``) all run this same
loop: global rank 0 owns the run folder and is the only one that writes into it; the others wait for it
before they start and after each task (a barrier), and read what it wrote.

Interruptions: SIGINT and SIGTERM stop training at the next batch on every rank (through Lightning's
SIGTERM path, which the ranks agree on); the run keeps its finished tasks and the checkpoint written at
the start of the current epoch, prints the command that continues it, and exits 130 or 143. A resumed
task restarts at that epoch and ends bit for bit where the uninterrupted one would (on the CPU).
"""

from __future__ import annotations

import dataclasses
import math
import os
import shlex
import signal
import sys
import time
from collections.abc import Sequence
from typing import Any

from cassle.config import PretrainConfig, lightning_batch_limit
from cassle.errors import CassleError, CheckpointError
from cassle.registry import method_spec
from cassle.run_folder import RunFolder, resumable_checkpoint, task_dir
from cassle.utils.hardware import resolve_precision
from cassle.utils.launch import launch_rank, requeue_slurm_job, slurm_requeues, under_slurm_tasks
from cassle.utils.manifest import RunManifest
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
    warnings.filterwarnings("ignore", message=".*checkpoint that ended before the epoch ended.*")  # see EpochCheckpoint
    # Validation metrics are sums reduced over ranks already, and tau is the same on every rank.
    warnings.filterwarnings("ignore", message=".*It is recommended to use `self.log\\(.*sync_dist=True.*")
    # The frozen teacher is in eval mode on purpose (docs/official.md §1.4 step 9).
    warnings.filterwarnings("ignore", message=".*module\\(s\\) in eval mode at the start of training.*")


# ---------------------------------------------------------------------------------------- interruptions
class Interrupted(BaseException):
    """SIGINT or SIGTERM stopped the run; what was finished is on disk. ``exit_code`` = 128 + signal.

    ``described``: the message already says what is kept and how to continue (:func:`_interrupted`); a bare
    one, raised by the signal handler outside training, gets that message where the run loop catches it.
    """

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or signal.Signals(signum).name)
        self.signum = signum
        self.exit_code = 128 + signum
        self.described = bool(message)


class _Signals:
    """SIGINT and SIGTERM, routed through Lightning's own stop flag (its SIGTERM path, which the ranks of a
    DDP run agree on at the next batch); outside training they stop the run at once.

    Under SLURM, SIGUSR1 (the warning SLURM sends before the time limit: ``--signal=USR1@<s>``) asks for a
    requeue. Its default action ends the process, so it is handled from the start of the run, not only
    while Lightning fits (Lightning then leaves SIGUSR1 to this handler). During training the requeue
    checkpoint (``hpc_ckpt_<n>.ckpt``, Lightning's own handler) is taken at the start of the next batch,
    where the weights, the schedulers and the loop counters agree (Lightning's handler, run between any
    two bytecodes, can save the weights of a step that its counters do not count yet); outside training
    the job is requeued at once (the finished tasks and ``last.ckpt`` are what it continues from).

    Attributes:
        trainer: the Trainer fitting now, or None.
        received: the first signal received, or None.
        task: the task being trained (for the message of an interruption), or None before the first.
        requeue: SIGUSR1 came during training and its checkpoint is still to be taken.
    """

    def __init__(self) -> None:
        self.trainer: Any = None
        self.received: int | None = None
        self.task: int | None = None
        self.requeue = False

    def install(self) -> None:
        self.received = None
        self.task = None
        self.requeue = False
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._handle)
        if slurm_requeues():
            signal.signal(signal.SIGUSR1, self._handle_requeue)

    def _handle_requeue(self, signum: int, frame: Any) -> None:
        if self.trainer is not None:
            self.requeue = True  # RequeueAtBatchStart takes the checkpoint and requeues
        else:
            self.requeue_now()

    def requeue_now(self) -> None:
        """Requeue the job without a checkpoint (global rank 0; outside training)."""
        self.requeue = False
        if launch_rank() == 0:
            log(requeue_slurm_job())

    def _handle(self, signum: int, frame: Any) -> None:
        first = self.received is None
        if first:
            self.received = signum
        if self.trainer is not None:
            self.request_stop(self.trainer)
        elif first:  # a second signal while the run is already stopping changes nothing
            raise Interrupted(signum)

    def request_stop(self, trainer: Any) -> None:
        """Ask ``trainer`` to stop after the current batch, if a signal came. ``Trainer.received_sigterm`` is a
        read-only view of its signal connector's flag: the flag itself is set (Lightning does the same
        for SIGTERM; SIGINT is not Lightning's)."""
        if self.received is not None:
            trainer._signal_connector.received_sigterm = True


SIGNALS = _Signals()


# ---------------------------------------------------------------------------------------- hardware
def resolve_hardware(cfg: PretrainConfig) -> PretrainConfig:
    """The configuration with the accelerator, devices and precision this machine gives (a new object)."""
    import torch

    t = cfg.trainer
    accelerator, devices, precision, sync_batchnorm = t.accelerator, t.devices, t.precision, t.sync_batchnorm
    if accelerator == "auto":
        accelerator = "gpu" if torch.cuda.is_available() else "cpu"
    if accelerator == "gpu" and not torch.cuda.is_available():
        raise CassleError("no GPU found (the flags ask for one: --gpus/--accelerator); "
                          "pass --accelerator cpu to run on the CPU")
    precision, note = resolve_precision(precision, accelerator)  # the machine's policy (cassle.utils.hardware)
    if note and launch_rank(t.num_devices) == 0:
        log(note)
    if accelerator == "cpu":
        if devices == "auto" or isinstance(devices, list):
            devices = 1
        if sync_batchnorm:
            log("note: --sync_batchnorm needs CUDA tensors: turned off on the CPU (each process keeps its own "
                "BatchNorm statistics)")
            sync_batchnorm = False
    if devices == "auto":
        devices = 1 if accelerator != "gpu" else "auto"
    return dataclasses.replace(cfg, trainer=dataclasses.replace(t, accelerator=accelerator, devices=devices,
                                                                precision=precision, sync_batchnorm=sync_batchnorm))


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
                                      val_dir=data.val_dir, no_labels=data.no_labels)
        self.train, self.val = datasets
        if data.fast_data:
            from cassle.data.loaders import fast_data_kind

            fast_data_kind(self.train)  # a one-line error before the run folder is made
        self.val_transform = build_val_transform(data.spec)

    def task_indices(self, task: int) -> list[int]:
        from cassle.data.loaders import task_indices

        split = self.cfg.split
        classes = [list(block) for block in split.classes] if split.classes is not None else None
        return task_indices(self.train.targets, split.strategy, classes, task, split.num_tasks,
                            domains=getattr(self.train, "domains", None))

    def check_tasks(self, first: int, world_size: int) -> None:
        """Every task to train has a full batch on every device (one-line error naming --batch_size)."""
        batch = self.cfg.data.batch_size
        for task in range(first, self.cfg.split.num_tasks):
            n = len(self.task_indices(task))
            if n // world_size < batch:
                devices = f" x {world_size} devices" if world_size > 1 else ""
                raise CassleError(f"task {task} has {n} training samples, fewer than --batch_size {batch}{devices}: "
                                  f"no full batch to train on (lower --batch_size)")

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

    def val_loader(self, rank: int = 0, world_size: int = 1) -> Any:
        """This rank's share of the validation set: every ``world_size``-th image from ``rank`` on, without
        padding (the accuracy sums are added over ranks, so every image counts exactly once)."""
        from torch.utils.data import Subset

        from cassle.data.datasets import with_transform
        from cassle.data.loaders import build_val_loader

        data = self.cfg.data
        dataset = with_transform(self.val, self.val_transform)
        if world_size > 1:
            dataset = Subset(dataset, range(rank, len(dataset), world_size))
        return build_val_loader(dataset, data.batch_size, data.num_workers)


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
def make_callbacks(cfg: PretrainConfig, task: int, folder: str, resume_epoch: int | None = None,
                   skip: int = 0) -> list[Any]:
    """The callbacks of a task's Trainer.

    Args:
        resume_epoch: the epoch a resumed task continues (None: the task starts).
        skip: batches of that epoch done before the checkpoint (``hpc_ckpt_*``); such an epoch does not
            start at its first batch, so no ``last.ckpt`` is written as it starts.
    """
    resumed_mid_epoch = resume_epoch if skip else None
    import pytorch_lightning as pl

    frequency = cfg.run.checkpoint_frequency

    class EpochCheckpoint(pl.Callback):
        """``last.ckpt`` at the start of every ``--checkpoint_frequency``-th epoch: the state a resumed task
        continues from. Written when the epoch starts rather than when the last one ends, so that every
        row the finished epoch logs (training and validation) is in ``metrics.csv`` by then."""

        def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
            epoch = trainer.current_epoch
            if epoch == 0 or epoch % frequency or trainer.received_sigterm or epoch == resumed_mid_epoch:
                return
            # The epoch loop's counters of the current epoch still count the finished one's batches here
            # (Lightning resets them when it fetches the first batch): restored from such a checkpoint,
            # Lightning took the epoch as done and skipped it. Reset them first, as Lightning is about to.
            loop = trainer.fit_loop.epoch_loop
            loop.batch_progress.reset_on_run()
            loop.scheduler_progress.reset_on_run()
            loop.automatic_optimization.optim_progress.reset_on_run()
            trainer.save_checkpoint(os.path.join(folder, "last.ckpt"))  # every rank: it holds a barrier

    class EpochPrinter(pl.Callback):
        """One line per epoch: long runs show progress without a progress bar."""

        def __init__(self) -> None:
            # An epoch resumed mid-way (hpc_ckpt_*) gets no on_train_epoch_start from Lightning.
            self.start = time.time()

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

    class StopOnSignal(pl.Callback):
        """A signal that came while the Trainer was being set up: Lightning clears its stop flag when it
        installs its own handlers at the start of ``fit``; set it again once training starts."""

        def on_train_start(self, trainer, pl_module) -> None:
            SIGNALS.request_stop(trainer)

    class StepCountAfterResume(pl.Callback):
        """Lightning's logging step (the ``step`` column of metrics.csv) after a resume: restoring a
        checkpoint taken at an epoch start or between batches, Lightning adds one to it (it expects
        checkpoints of the end of a batch or of validation). At the start of a batch it equals the
        optimizer steps taken (one optimizer, no accumulation), as in an uninterrupted run."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step

    class RequeueAtBatchStart(pl.Callback):
        """SIGUSR1 under SLURM (see ``_Signals``): the requeue checkpoint and ``scontrol requeue`` of
        Lightning's handler, at the start of a batch. Every rank decides alike: a rank that got the signal
        late still saves with the others (the save is a collective)."""

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
            requeue = SIGNALS.requeue
            if trainer.world_size > 1:
                requeue = trainer.strategy.reduce_boolean_decision(requeue, all=False)
            if requeue:
                SIGNALS.requeue = False
                trainer._signal_connector._slurm_sigusr_handler_fn(signal.SIGUSR1, None)

    resumed = [StepCountAfterResume()] if resume_epoch is not None else []
    requeue = [RequeueAtBatchStart()] if slurm_requeues() else []
    return [StopOnSignal(), EpochCheckpoint(), EpochPrinter(), *resumed, *requeue, *extra_callbacks()]


def extra_callbacks() -> list[Any]:
    """Lightning callbacks named in ``$CASSLE_CALLBACKS`` (``module:Class``, comma-separated), added to every
    task's Trainer: a hook for debugging and inspection (the DDP tests read each rank's weights with one)."""
    from cassle.registry import import_object

    names = [name.strip() for name in os.environ.get("CASSLE_CALLBACKS", "").split(",") if name.strip()]
    return [import_object(name)() for name in names]


def make_loggers(cfg: PretrainConfig, task: int, folder: str, model: Any, resume_epoch: int | None,
                 owner: bool) -> list[Any]:
    from cassle.utils.csv_logger import TaskCSVLogger

    run = cfg.run
    csv_logger = TaskCSVLogger(folder)
    csv_logger.resume_at(resume_epoch or 0)
    loggers: list[Any] = [csv_logger]
    if run.wandb:
        from pytorch_lightning.loggers import WandbLogger

        # One wandb run per task; its id is kept in the task folder so that a resume continues it.
        id_path = os.path.join(folder, "wandb_id.txt")
        run_id = open(id_path).read().strip() if resume_epoch is not None and os.path.exists(id_path) else None
        wandb_logger = WandbLogger(name=f"{run.name}-task{task}", project=run.project, entity=run.entity,
                                   offline=run.offline, save_dir=run.run_dir, id=run_id,
                                   resume="allow" if run_id else None)
        if run_id is None and owner:
            from cassle.utils.files import atomic_write_text

            atomic_write_text(id_path, wandb_logger.experiment.id + "\n")
        if task == cfg.continual.start_task and run_id is None:
            wandb_logger.watch(model, log="gradients", log_freq=100)
            wandb_logger.log_hyperparams(cfg.to_flat())
        loggers.append(wandb_logger)
    return loggers


def barrier() -> None:
    """Wait for every rank (no-op in a single process)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()


# ---------------------------------------------------------------------------------------- tasks
def _resume_position(path: str) -> tuple[int, int]:
    """``(epoch, batches done in it)`` of a checkpoint: where its task continues."""
    from cassle.utils.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path, mmap=True)  # the loop counters only: no tensor is read
    try:
        done = checkpoint["loops"]["fit_loop"]["epoch_loop.batch_progress"]["current"]["completed"]
    except (KeyError, TypeError):
        done = 0
    return int(checkpoint.get("epoch", 0)), int(done)


def train_task(cfg: PretrainConfig, task: int, init_checkpoint: str | None, data: TaskData,
               folder: RunFolder, resume_from: str | None) -> dict[str, float] | None:
    """Train one task; returns its final metrics (rank 0; None on the other ranks)."""
    import pytorch_lightning as pl
    from pytorch_lightning.utilities import CombinedLoader
    from pytorch_lightning.utilities.exceptions import SIGTERMException

    from cassle.utils.checkpoint import atomic_checkpoint_io

    t = cfg.trainer
    out = task_dir(cfg.run.run_dir, task)
    if folder.owner:
        os.makedirs(out, exist_ok=True)
    # Re-seed at every task before the model is built (docs/decisions.md): starting at task 1 from a
    # task-0 checkpoint then equals the run that trained task 0 itself.
    pl.seed_everything(cfg.run.seed, verbose=False)
    model = build_model(cfg, task)
    model.checkpoint_metadata = checkpoint_metadata(cfg, task)
    if init_checkpoint is not None:
        init_from_checkpoint(model, init_checkpoint, cfg)
    if task > 0 and cfg.continual.distiller is not None:
        model.build_teacher()
    if cfg.model.channels_last:
        import torch

        model = model.to(memory_format=torch.channels_last)

    resume_epoch, skip = _resume_position(resume_from) if resume_from else (None, 0)
    if resume_epoch is not None and resume_epoch >= cfg.optim.max_epochs:
        raise CheckpointError(f"{resume_from} is at epoch {resume_epoch + 1}, past --max_epochs {cfg.optim.max_epochs}")
    if resume_from and folder.owner:
        log(f"task {task}: continuing from {resume_from} (epoch {resume_epoch + 1}"
            f"{f', after {skip} batches' if skip else ''})")
    plugins: list[Any] = [atomic_checkpoint_io()]
    if under_slurm_tasks():
        from lightning_fabric.plugins.environments import SLURMEnvironment

        plugins.append(SLURMEnvironment(auto_requeue=True))  # SIGUSR1: checkpoint, then requeue
    trainer = pl.Trainer(
        max_epochs=cfg.optim.max_epochs,
        accelerator=t.accelerator,
        devices=t.devices,
        num_nodes=t.num_nodes,
        strategy=t.strategy,
        precision=t.precision,
        sync_batchnorm=t.sync_batchnorm and t.world_size > 1,
        logger=make_loggers(cfg, task, out, model, resume_epoch, folder.owner),
        callbacks=make_callbacks(cfg, task, out, resume_epoch, skip),
        plugins=plugins,
        default_root_dir=out,  # Lightning's SLURM checkpoints (hpc_ckpt_*) land in this task's folder only
        use_distributed_sampler=False,  # the loaders shard every epoch themselves
        enable_checkpointing=False,
        enable_progress_bar=t.progress_bar,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        check_val_every_n_epoch=t.check_val_every_n_epoch,
        limit_train_batches=lightning_batch_limit(t.limit_train_batches),
        limit_val_batches=lightning_batch_limit(t.limit_val_batches),
        log_every_n_steps=1,
    )
    rank, world = trainer.global_rank, trainer.world_size
    loaders = data.train_loaders(task, trainer.strategy.root_device, rank=rank, world_size=world)
    if skip:
        for loader in loaders.values():
            loader.sampler.skip_first(resume_epoch, skip)
    val_loader = data.val_loader(rank, world) if cfg.model.online_eval else None
    start = time.time()
    SIGNALS.trainer = trainer
    try:
        trainer.fit(model, train_dataloaders=CombinedLoader(loaders, mode="min_size"), val_dataloaders=val_loader,
                    ckpt_path=resume_from)
    except SIGTERMException:
        raise _interrupted(cfg, SIGNALS.received or signal.SIGTERM, task, trainer.current_epoch) from None
    finally:
        SIGNALS.trainer = None
        if SIGNALS.requeue:  # SIGUSR1 during the task's last batch: no batch is left to take its checkpoint
            SIGNALS.requeue_now()
    if trainer.interrupted:
        raise _interrupted(cfg, SIGNALS.received or signal.SIGTERM, task, trainer.current_epoch)
    if trainer.global_step == 0:
        raise CassleError(f"task {task} trained no step (check --limit_train_batches and --batch_size)")
    final = os.path.join(out, "final.ckpt")
    # Weights, buffers and metadata: the next task starts a fresh optimiser, so its state is not kept.
    trainer.save_checkpoint(final, weights_only=True)  # every rank (a collective); rank 0 writes
    metrics = {k: float(v) for k, v in trainer.callback_metrics.items() if _is_number(v)}
    if cfg.run.wandb:
        import wandb

        wandb.finish()
    if folder.owner:
        folder.finish_task(task, final, metrics, time.time() - start)
    barrier()  # the other ranks read the manifest and the checkpoint after rank 0 wrote them
    if SIGNALS.received is not None:  # a signal during the task's last batch: the task finished, stop now
        raise _interrupted(cfg, SIGNALS.received, task)
    return metrics if folder.owner else None


def continue_command(run_dir: str) -> str:
    """The command that continues this run: the one that started it, with ``--resume`` once the run folder
    holds a run (without it while nothing was written: ``--resume`` would find no run)."""
    argv = list(sys.argv)
    started = os.path.exists(os.path.join(run_dir, "args.json"))
    if started and "--resume" not in argv:
        argv.append("--resume")
    if not started:
        argv = [a for a in argv if a != "--resume"]
    return " ".join(shlex.quote(a) for a in ["python", *argv])


def _interrupted(cfg: PretrainConfig, signum: int, task: int | None, epoch: int | None = None) -> Interrupted:
    """The one line of an interrupted run: where it stopped, what is kept, and the command that continues it.

    Args:
        signum: the signal.
        task: the task being trained or set up when it came (None: before the first task).
        epoch: the epoch Lightning was training (0-based), None outside ``fit``.
    """
    run_dir = cfg.run.run_dir
    name = signal.Signals(signum).name
    try:
        finished = RunManifest(run_dir).finished_tasks()
    except CassleError:
        finished = []
    if finished:
        kept = f"finished task{'s' if len(finished) > 1 else ''} {', '.join(map(str, finished))} " \
               f"{'are' if len(finished) > 1 else 'is'} kept"
    else:
        kept = "no task had finished"
    if task is None or not os.path.exists(os.path.join(run_dir, "args.json")):
        where = "before training started"
    elif task in finished:
        where = f"after task {task}"
    else:
        in_epoch = f", epoch {epoch + 1}/{cfg.optim.max_epochs}" if epoch is not None else ""
        resumable = resumable_checkpoint(run_dir, task)
        where = f"in task {task}{in_epoch}"
        kept += (f"; task {task} resumes at epoch {_resume_position(resumable)[0] + 1}" if resumable
                 else f"; task {task} restarts at its first epoch")
    return Interrupted(signum, f"interrupted by {name} {where}: {kept}; continue with: {continue_command(run_dir)}")


def _is_number(value: Any) -> bool:
    try:
        return math.isfinite(float(value)) or math.isnan(float(value))
    except (TypeError, ValueError):
        return False


def _check_start(cfg: PretrainConfig, data: TaskData, finished: Sequence[int] = ()) -> None:
    """The first task has what it starts from, every task a full batch (one-line errors).

    Args:
        finished: tasks a resumed run finished already (its first one then needs no start checkpoint).
    """
    continual = cfg.continual
    start = continual.start_task
    if start > 0 and not continual.pretrained_model and not continual.resume:
        raise CheckpointError(f"--task_idx {start} starts from the end of task {start - 1}: "
                              f"pass --pretrained_model (or --resume a run that finished it)")
    data.check_tasks(start, cfg.trainer.world_size)
    if start > 0 and continual.pretrained_model and start not in finished:
        init_from_checkpoint(build_model(cfg, start), continual.pretrained_model, cfg)  # one-line error if unfit


def run_continual(cfg: PretrainConfig) -> RunManifest:
    """Train every remaining task of the run; returns the manifest (as rank 0 wrote it).

    Raises:
        CassleError: a bad flag, input or run folder (one line).
        Interrupted: SIGINT or SIGTERM; its message says what is kept and how to continue.
    """
    SIGNALS.install()  # first: a signal during the imports is one line too
    try:
        quiet_lightning()
        return _run_tasks(cfg)
    except Interrupted as err:
        if err.described:
            raise
        raise _interrupted(cfg, err.signum, SIGNALS.task) from None


def _run_tasks(cfg: PretrainConfig) -> RunManifest:
    rank = launch_rank(cfg.trainer.num_devices)
    if rank == 0:
        for note in cfg.notes:
            log(note)
    cfg = resolve_hardware(cfg)
    # Everything that can fail on a flag or an input happens before the run folder is touched: a run that
    # cannot start leaves nothing behind. A --resume takes its first task and start checkpoint from the
    # stored run, so it is checked once the folder is open.
    data = TaskData(cfg)
    if not cfg.continual.resume:
        _check_start(cfg, data)
    if rank == 0:
        folder, cfg = RunFolder.open_as_owner(cfg)
    else:
        folder, cfg = RunFolder.open_as_follower(cfg, rank)
    try:
        if folder.owner and cfg.continual.resume:
            folder.verify_finished()
        if cfg.continual.resume:
            _check_start(cfg, data, folder.manifest.finished_tasks())
        for task in range(cfg.continual.start_task, cfg.split.num_tasks):
            SIGNALS.task = task
            folder.reload()
            manifest = folder.manifest
            if manifest.finished(task):
                if folder.owner:
                    log(f"task {task}: finished earlier, skipped ({manifest.checkpoint(task)})")
                continue
            if task > 0 and manifest.finished(task - 1):
                init = manifest.checkpoint(task - 1)
            elif task == cfg.continual.start_task and cfg.continual.pretrained_model:
                init = cfg.continual.pretrained_model
            elif task == 0:
                init = None
            else:
                raise CheckpointError(f"task {task} needs the final checkpoint of task {task - 1}: "
                                      f"pass --pretrained_model")
            # A task folder holds a resumable checkpoint only in a run that is continued: a new run's
            # folder has none (RunFolder refuses or clears a folder with computed state without --resume).
            resume_from = resumable_checkpoint(cfg.run.run_dir, task)
            if folder.owner:
                log(f"task {task}: {'from ' + init if init else 'from scratch'}"
                    f"{', regulariser ' + cfg.continual.distiller if task > 0 and cfg.continual.distiller else ''}")
            train_task(cfg, task, init, data, folder, resume_from)
        folder.reload()
        if folder.owner:
            print(format_online_table(cfg, folder.manifest))
            if cfg.run.eval_every_task:
                evaluate_every_task(cfg)
        return folder.manifest
    finally:
        folder.release()


def evaluate_every_task(cfg: PretrainConfig) -> None:
    """--eval_every_task: linear-probe every finished task of this run (cassle/evaluation/run.py)."""
    from cassle.evaluation.config import linear_config_for_run
    from cassle.evaluation.report import format_results_md
    from cassle.evaluation.run import evaluate_run

    print(format_results_md(evaluate_run(linear_config_for_run(cfg.to_flat()))))


def format_online_table(cfg: PretrainConfig, manifest: RunManifest) -> str:
    """Accuracy of the online classifier on each task's classes after each task (percent); one line when the
    online classifier is off (its table would hold only dashes)."""
    if not cfg.model.online_eval:
        return f"run {cfg.run.name}: {len(manifest.finished_tasks())} task(s) finished (online evaluation off)"
    names = list(cfg.split.names)
    header = ["after task"] + names + ["all"]
    rows = []
    for task in manifest.finished_tasks():
        metrics = manifest.metrics(task)
        row = [str(task)] + [fmt(metrics.get(f"val_acc1_{n}")) for n in names] + [fmt(metrics.get("val_acc1"))]
        rows.append(row)
    return "\n".join([f"online linear accuracy (%) of {cfg.run.name}"] + markdown_table(header, rows))
