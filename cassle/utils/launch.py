"""Which process of a multi-process launch this is, read from the launcher's environment (torch-free).

A DDP run is several processes running the same command. They are started by Lightning itself (its
subprocess launcher re-runs the script for ranks 1.. with ``LOCAL_RANK``/``NODE_RANK`` set), by
``torchrun`` (``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``/``MASTER_PORT``) or by SLURM's
``srun`` (``SLURM_PROCID``, ``SLURM_NTASKS``, ``SLURM_JOB_ID``). Only global rank 0 owns the run folder;
the others must know they are not a second job on the same folder before they touch anything, which is
why this is read from the environment before torch is even imported.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Mapping


def _int(env: Mapping[str, str], name: str, default: int = 0) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        return default


def under_slurm_tasks(env: Mapping[str, str] | None = None) -> bool:
    """True when SLURM started this process as one task of several (``srun`` with ``--ntasks > 1``), the
    case where Lightning's SLURM environment takes the ranks from SLURM."""
    env = os.environ if env is None else env
    return _int(env, "SLURM_NTASKS", 1) > 1 and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def slurm_requeues(env: Mapping[str, str] | None = None) -> bool:
    """True when Lightning runs under its SLURM environment with automatic requeue: it detects SLURM by
    ``SLURM_NTASKS`` (a job step, ``srun`` or ``sbatch``) unless the job is named ``bash`` or
    ``interactive`` (``lightning_fabric.plugins.environments.slurm``)."""
    env = os.environ if env is None else env
    return "SLURM_NTASKS" in env and env.get("SLURM_JOB_NAME") not in ("bash", "interactive")


def requeue_slurm_job(env: Mapping[str, str] | None = None) -> str:
    """``scontrol requeue`` this job, as Lightning's SIGUSR1 handler does; returns a line saying how it went."""
    job = slurm_job_id(env)
    try:
        result = subprocess.run(["scontrol", "requeue", str(job)], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.SubprocessError) as err:
        return f"note: SIGUSR1: could not requeue SLURM job {job} (scontrol: {err.__class__.__name__})"
    if result.returncode != 0:
        return f"note: SIGUSR1: requeueing SLURM job {job} failed: {(result.stderr or '').strip()[:200]}"
    return f"note: SIGUSR1: SLURM job {job} requeued"


def launch_rank(devices_per_node: int = 1, env: Mapping[str, str] | None = None) -> int:
    """The global rank the launcher gave this process (0 for a plain ``python main_pretrain.py``).

    Args:
        devices_per_node: devices (processes) per node, for Lightning's own launcher, which sets only
            ``LOCAL_RANK`` and ``NODE_RANK``.
        env: the environment (default ``os.environ``).
    """
    env = os.environ if env is None else env
    if "RANK" in env:  # torchrun, torch.distributed.launch
        return _int(env, "RANK")
    if under_slurm_tasks(env) and "SLURM_PROCID" in env:
        return _int(env, "SLURM_PROCID")
    if "LOCAL_RANK" in env:  # Lightning's subprocess launcher: ranks >= 1 of this node
        return _int(env, "NODE_RANK") * devices_per_node + _int(env, "LOCAL_RANK")
    return 0


def launch_id(env: Mapping[str, str] | None = None) -> str | None:
    """What the processes of one torchrun or SLURM launch share (None for a plain process).

    Rank 0 writes it into the run folder's lock; the other ranks of the same launch recognise it there.
    """
    env = os.environ if env is None else env
    if "RANK" in env:
        parts = (env.get("MASTER_ADDR", ""), env.get("MASTER_PORT", ""), env.get("TORCHELASTIC_RUN_ID", ""))
        return "torchrun:" + ":".join(parts)
    if under_slurm_tasks(env):
        return f"slurm:{slurm_job_id(env)}:{env.get('SLURM_RESTART_COUNT', '0')}:{env.get('SLURM_STEP_ID', '')}"
    return None


def slurm_job_id(env: Mapping[str, str] | None = None) -> str | None:
    """The SLURM job (array jobs: ``<array job>_<task>``), which a requeued job keeps."""
    env = os.environ if env is None else env
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        return f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return env.get("SLURM_JOB_ID") or None


def slurm_restarted(env: Mapping[str, str] | None = None) -> bool:
    """True in a SLURM job that was requeued (SLURM counts the restarts)."""
    env = os.environ if env is None else env
    return _int(env, "SLURM_RESTART_COUNT") > 0


def hostname() -> str:
    return socket.gethostname()
