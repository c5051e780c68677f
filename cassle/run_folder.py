"""The run folder ``<checkpoint_dir>/<name>``: who owns it, what run it holds, and what is finished.

Global rank 0 owns the folder (:meth:`RunFolder.open_as_owner`): it takes the lock, creates the folder
or checks that the command continues the run stored there, and is the only process that writes into
it. The other ranks of a DDP, torchrun or SLURM launch (:meth:`RunFolder.open_as_follower`) wait until
rank 0 holds it, then only read.

What a folder holds::

    args.json       the run's flags (the flat configuration), compared on --resume
    run.json        its identity: the SLURM job that created it, the SHA-256 of --pretrained_model
    split.json      the task split
    manifest.json   finished tasks: checkpoint (with size and SHA-256) and metrics
    .lock           the holder while a job runs (cassle.utils.run_lock)
    task<t>/        final.ckpt, last.ckpt (while the task runs), metrics.csv

Every check that can fail on a flag or an input happens in the driver before this module creates
anything; a folder in which nothing was computed yet may be started again with other flags.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import shutil
from typing import Any

from cassle.config import NON_RESULT_FLAGS, PretrainConfig
from cassle.errors import CassleError
from cassle.utils.files import atomic_write_json, describe_os_error, read_json
from cassle.utils.launch import slurm_job_id, slurm_restarted
from cassle.utils.manifest import RunManifest, file_digest
from cassle.utils.report import log
from cassle.utils.run_lock import RunLock, wait_for_owner


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def task_dir(run_dir: str, task: int) -> str:
    return os.path.join(run_dir, f"task{task}")


def resumable_checkpoint(run_dir: str, task: int) -> str | None:
    """The newest checkpoint a task can continue from: ``last.ckpt`` (written at the start of an epoch) or
    one that Lightning wrote on SLURM's requeue signal (``hpc_ckpt_<n>.ckpt``); None if there is none."""
    candidates = _resumables(run_dir, task)
    return max(candidates, key=os.path.getmtime) if candidates else None


def _resumables(run_dir: str, task: int) -> list[str]:
    """Every checkpoint that only serves to resume ``task``: ``last.ckpt`` and Lightning's ``hpc_ckpt_*``."""
    folder = task_dir(run_dir, task)
    return glob.glob(os.path.join(folder, "hpc_ckpt_*.ckpt")) + glob.glob(os.path.join(folder, "last.ckpt"))


class RunFolder:
    """A run folder opened by this process: its manifest, and the lock when this process owns it."""

    def __init__(self, run_dir: str, lock: RunLock | None):
        self.run_dir = run_dir
        self.lock = lock
        self.manifest = RunManifest(run_dir)

    @property
    def owner(self) -> bool:
        return self.lock is not None

    def release(self) -> None:
        if self.lock is not None:
            self.lock.release()

    def reload(self) -> None:
        """Read the manifest again (a follower, after rank 0 finished a task)."""
        self.manifest = RunManifest(self.run_dir)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open_as_follower(cls, cfg: PretrainConfig, rank: int) -> tuple[RunFolder, PretrainConfig]:
        """Rank ``rank`` > 0: wait for rank 0 to hold the folder, then take the run it continues."""
        run_dir = cfg.run.run_dir
        wait_for_owner(run_dir, rank)
        stored = read_json(os.path.join(run_dir, "args.json"), "run arguments")
        return cls(run_dir, None), _adopt_start(cfg, stored, _read_identity(run_dir), check=False)

    @classmethod
    def open_as_owner(cls, cfg: PretrainConfig) -> tuple[RunFolder, PretrainConfig]:
        """Global rank 0: take the lock and create the folder, or check that ``cfg`` continues its run.

        Returns the folder and the configuration of the run it holds (``--resume`` without ``--task_idx``
        or ``--pretrained_model`` takes the stored run's).
        """
        run_dir = cfg.run.run_dir
        args_path = os.path.join(run_dir, "args.json")
        exists = os.path.exists(args_path)
        if not exists and cfg.continual.resume:
            raise CassleError(f"--resume: no run to continue in {run_dir} (no args.json there)")
        made = not os.path.isdir(run_dir)
        try:
            os.makedirs(run_dir, exist_ok=True)
        except OSError as err:
            raise CassleError(describe_os_error(err, run_dir, "create")) from None
        lock = RunLock(run_dir)
        try:
            lock.acquire()
        except BaseException:
            if made:  # an empty folder made by this process (a folder another job holds is never empty)
                _remove_if_empty(run_dir)
            raise
        try:
            if exists:
                cfg = _continue(cfg, run_dir)
                _remove_leftovers(run_dir)
            else:
                _create(cfg, run_dir)
            return cls(run_dir, lock), cfg
        except BaseException:
            lock.release()
            if made:  # this process made the folder and held it: what is in it is half a start, not a run
                shutil.rmtree(run_dir, ignore_errors=True)
            raise

    # ------------------------------------------------------------------ tasks
    def verify_finished(self) -> None:
        """Check the checkpoint of every finished task (size, SHA-256); a damaged one is set aside and its
        task trained again (training is deterministic: on the same machine it gives the same weights)."""
        for task in self.manifest.finished_tasks():
            why = self.manifest.damage(task)
            if why is None:
                continue
            path = self.manifest.checkpoint(task)
            if os.path.exists(path):
                os.replace(path, path + ".damaged")
            self.manifest.forget(task)
            log(f"task {task}: its checkpoint cannot be trusted ({why}): it is trained again"
                f"{' (the damaged file is kept as ' + path + '.damaged)' if os.path.exists(path + '.damaged') else ''}")

    def finish_task(self, task: int, final: str, metrics: dict[str, float], seconds: float) -> None:
        """Record a finished task, then remove what only served to resume it."""
        self.manifest.mark_finished(task, final, metrics, seconds)
        for path in _resumables(self.run_dir, task):
            os.remove(path)


# ============================================================================ helpers
def _identity(cfg: PretrainConfig) -> dict[str, Any]:
    pretrained = cfg.continual.pretrained_model
    return {"slurm_job_id": slurm_job_id(),
            "pretrained_model": os.path.abspath(pretrained) if pretrained else None,
            "pretrained_model_sha256": file_digest(pretrained) if pretrained else None}


def _read_identity(run_dir: str) -> dict[str, Any]:
    path = os.path.join(run_dir, "run.json")
    return read_json(path, "run identity") if os.path.exists(path) else {}


def _write_run(cfg: PretrainConfig, run_dir: str) -> None:
    flat = cfg.to_flat()
    atomic_write_json(os.path.join(run_dir, "run.json"), _identity(cfg))
    atomic_write_json(os.path.join(run_dir, "split.json"),
                      {"split_strategy": cfg.split.strategy, "tasks": flat["tasks"], "task_names": flat["task_names"]})
    atomic_write_json(os.path.join(run_dir, "args.json"), flat)  # last: its presence means a complete folder


def _create(cfg: PretrainConfig, run_dir: str) -> None:
    _write_run(cfg, run_dir)


def _remove_leftovers(run_dir: str) -> None:
    """Remove what a killed job left behind: half-written files (``.tmp-*``: only the lock holder writes
    here, and this process holds it now) and the resumable checkpoints of tasks it had finished."""
    manifest = RunManifest(run_dir)
    leftovers = glob.glob(os.path.join(run_dir, ".tmp-*")) + glob.glob(os.path.join(run_dir, "task*", ".tmp-*"))
    for task in manifest.finished_tasks():
        leftovers += _resumables(run_dir, task)
    for path in leftovers:
        try:
            os.remove(path)
        except OSError as err:
            raise CassleError(describe_os_error(err, path, "remove")) from None
    if leftovers:
        log(f"note: removed {len(leftovers)} file(s) that an interrupted job left unfinished in {run_dir}")


def _remove_if_empty(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError:
        pass


def _computed_anything(run_dir: str, manifest: RunManifest) -> bool:
    return bool(manifest.finished_tasks()) or bool(
        glob.glob(os.path.join(run_dir, "task*", "last.ckpt"))
        + glob.glob(os.path.join(run_dir, "task*", "hpc_ckpt_*.ckpt")))


def _continue(cfg: PretrainConfig, run_dir: str) -> PretrainConfig:
    """The folder holds a run: continue it (``--resume``, or a requeued SLURM job), or start it again if
    nothing was computed in it yet, or refuse."""
    manifest = RunManifest(run_dir)  # a corrupt manifest is a one-line error here
    identity = _read_identity(run_dir)
    requeued = slurm_restarted() and identity.get("slurm_job_id") not in (None, "") \
        and identity.get("slurm_job_id") == slurm_job_id()
    if not (cfg.continual.resume or requeued):
        if _computed_anything(run_dir, manifest):
            raise CassleError(f"run folder {run_dir} exists: pass --resume to continue it, or choose another --name")
        log(f"note: nothing was computed in {run_dir} yet: starting it again with these flags")
        for folder in glob.glob(os.path.join(run_dir, "task*")):
            shutil.rmtree(folder, ignore_errors=True)
        _write_run(cfg, run_dir)
        return cfg
    if requeued and not cfg.continual.resume:
        log(f"SLURM job {slurm_job_id()} was requeued: continuing the run in {run_dir}")
    stored = read_json(os.path.join(run_dir, "args.json"), "run arguments")
    cfg = _adopt_start(cfg, stored, identity, check=True)
    new = cfg.to_flat()
    changed = sorted(key for key in set(stored) | set(new)
                     if key not in NON_RESULT_FLAGS and stored.get(key) != _jsonable(new.get(key)))
    if changed:
        detail = ", ".join(f"--{k} {stored.get(k)!r} -> {_jsonable(new.get(k))!r}" for k in changed[:4])
        raise CassleError(f"--resume with flags that change results: {detail} (the run's flags are in "
                          f"{os.path.join(run_dir, 'args.json')})")
    return cfg


def _adopt_start(cfg: PretrainConfig, stored: dict[str, Any], identity: dict[str, Any], check: bool) -> PretrainConfig:
    """Where the stored run started (``--task_idx``) and from which checkpoint (``--pretrained_model``):
    taken from the run when the command does not give them, refused when it gives other ones."""
    continual = cfg.continual
    stored_start = int(stored.get("task_idx") or 0)
    if continual.task_idx is not None and continual.task_idx != stored_start and check:
        raise CassleError(f"--task_idx {continual.task_idx}: the run in {cfg.run.run_dir} started at task "
                          f"{stored_start} (drop --task_idx to continue it)")
    stored_model = identity.get("pretrained_model") or stored.get("pretrained_model")
    pretrained = continual.pretrained_model
    if check and pretrained and stored_start > 0:
        digest = identity.get("pretrained_model_sha256")
        if not os.path.isfile(pretrained):
            raise CassleError(f"--pretrained_model {pretrained} does not exist")
        if digest and file_digest(pretrained) != digest:
            raise CassleError(f"--pretrained_model {pretrained} is not the checkpoint the run in {cfg.run.run_dir} "
                              f"started from ({stored_model}): drop --pretrained_model to continue it")
    if check and pretrained and stored_start == 0:
        raise CassleError(f"--pretrained_model: the run in {cfg.run.run_dir} trained its own task 0 "
                          f"(drop --pretrained_model to continue it)")
    new_continual = dataclasses.replace(continual, task_idx=stored_start,
                                        pretrained_model=pretrained or stored_model)
    return dataclasses.replace(cfg, continual=new_continual)
