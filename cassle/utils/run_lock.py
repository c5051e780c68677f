"""One job per run folder: an exclusive lock file that global rank 0 holds while it trains (torch-free).

``<run_dir>/.lock`` is created with ``O_CREAT | O_EXCL`` (atomic on local filesystems and on NFS v3+) and
holds who owns the folder: host, pid, start time, SLURM job and launch. A second job on the same folder is
refused with one line naming the holder. A lock is stale, and taken over, only when its holder is known to
be gone: on the same host with a dead pid, or when the holder was this very SLURM job before it was
requeued. The other ranks of a DDP, torchrun or SLURM launch never take the lock: they wait until rank 0
holds it for their launch (:func:`wait_for_owner`), which also shows that they see the same folder.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from cassle.errors import CassleError
from cassle.utils.files import atomic_write_json, describe_os_error, log_write, umask
from cassle.utils.launch import hostname, launch_id, slurm_job_id

LOCK_NAME = ".lock"


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def read_lock(path: str) -> dict[str, Any] | None:
    """The holder written in a lock file; None if the file is gone or unreadable (being written)."""
    try:
        with open(path) as handle:
            holder = json.load(handle)
    except (OSError, ValueError):
        return None
    return holder if isinstance(holder, dict) else None


class RunLock:
    """The lock of one run folder, held by global rank 0 (use as a context manager)."""

    def __init__(self, run_dir: str):
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.held = False

    def describe(self) -> dict[str, Any]:
        return {"host": hostname(), "pid": os.getpid(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "slurm_job_id": slurm_job_id(), "launch": launch_id()}

    def _stale(self, holder: dict[str, Any]) -> bool:
        job = slurm_job_id()
        if job is not None and holder.get("slurm_job_id") == job:
            return True  # this job, requeued: its earlier incarnation is gone
        return holder.get("host") == hostname() and isinstance(holder.get("pid"), int) and not pid_alive(holder["pid"])

    def acquire(self) -> None:
        """Take the lock or raise a one-line CassleError naming its holder."""
        mine = self.describe()
        deadline = time.time() + 15.0
        while True:
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666 & ~umask())
            except FileExistsError:
                holder = read_lock(self.path)
                if holder is None and time.time() - _mtime(self.path) < 10 and time.time() < deadline:
                    time.sleep(0.5)  # being written by another process (a lock that stays empty was killed)
                    continue
                if holder and not self._stale(holder):
                    raise CassleError(
                        f"run folder {os.path.dirname(self.path)} is in use by pid {holder.get('pid')} on host "
                        f"{holder.get('host')} (since {holder.get('started')}): wait for that job to end, or remove "
                        f"{self.path} if it is gone"
                    ) from None
                atomic_write_json(self.path, mine)  # take over a stale lock
                if (read_lock(self.path) or {}).get("pid") == mine["pid"]:
                    self.held = True
                    return
                if time.time() > deadline:
                    raise CassleError(f"could not take the lock {self.path} (another job keeps taking it)") from None
                continue
            except OSError as err:
                raise CassleError(describe_os_error(err, self.path)) from None
            try:
                with os.fdopen(fd, "w") as handle:
                    json.dump(mine, handle)
                    handle.flush()
                    os.fsync(handle.fileno())
            except OSError as err:  # a full disk: no half-written lock stays behind to block the next job
                os.remove(self.path)
                raise CassleError(describe_os_error(err, self.path)) from None
            log_write(self.path)
            self.held = True
            return

    def release(self) -> None:
        if self.held and (read_lock(self.path) or {}).get("pid") == os.getpid():
            try:
                os.remove(self.path)
            except OSError:
                pass
        self.held = False

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def _mtime(path: str) -> float:
    try:
        return os.path.getmtime(path)
    except OSError:
        return 0.0


def wait_for_owner(run_dir: str, rank: int, timeout: float = 300.0, poll: float = 0.5) -> None:
    """Rank ``rank`` > 0: wait until global rank 0 of this launch holds the run folder's lock.

    The holder is recognised by its launch id (torchrun, SLURM) or, for Lightning's own launcher, which
    starts ranks >= 1 from rank 0's process, by being this process's parent.

    Raises:
        CassleError: after ``timeout`` seconds without seeing it: the folder must be on a filesystem that
            every node sees.
    """
    path = os.path.join(run_dir, LOCK_NAME)
    mine, deadline = launch_id(), time.time() + timeout
    while time.time() < deadline:
        holder = read_lock(path)
        if holder is not None:
            if mine is not None and holder.get("launch") == mine:
                return
            if holder.get("host") == hostname() and holder.get("pid") == os.getppid():
                return
        time.sleep(poll)
    raise CassleError(
        f"rank {rank} cannot see rank 0's run folder {os.path.abspath(run_dir)} after {timeout:.0f} s: the run "
        f"folder (--checkpoint_dir) must be on a filesystem that every node sees"
    )
