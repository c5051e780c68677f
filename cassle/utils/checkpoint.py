"""Run folders: atomic writes, the manifest of finished tasks, strict checkpoint loading."""

from __future__ import annotations

import json
import os
import tempfile
import time
from typing import Any, Iterable

import torch

from cassle.errors import CheckpointError


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: never half a file."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def atomic_write_json(path: str, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: str, what: str) -> Any:
    try:
        with open(path) as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise CheckpointError(f"{what} not found: {path}") from None
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{what} {path} is unreadable ({err.__class__.__name__})") from None


class RunManifest:
    """``manifest.json`` of a run folder: which tasks finished, their checkpoints and metrics.

    A task is listed only once its final checkpoint is on disk, so the manifest never points at a
    checkpoint that a failed or killed task left half-written.
    """

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, "manifest.json")
        self.data: dict[str, Any] = {"tasks": {}}
        if os.path.exists(self.path):
            self.data = read_json(self.path, "run manifest")

    @property
    def tasks(self) -> dict[str, Any]:
        return self.data["tasks"]

    def finished(self, task: int) -> bool:
        return str(task) in self.tasks

    def checkpoint(self, task: int) -> str:
        return os.path.join(self.run_dir, self.tasks[str(task)]["checkpoint"])

    def metrics(self, task: int) -> dict[str, float]:
        return self.tasks[str(task)]["metrics"]

    def mark_finished(self, task: int, checkpoint: str, metrics: dict[str, float], seconds: float) -> None:
        self.tasks[str(task)] = {
            "checkpoint": os.path.relpath(checkpoint, self.run_dir),
            "metrics": metrics,
            "seconds": round(seconds, 1),
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        atomic_write_json(self.path, self.data)

    def finished_tasks(self) -> list[int]:
        return sorted(int(t) for t in self.tasks)


def load_checkpoint(path: str) -> dict[str, Any]:
    """Read a Lightning checkpoint on the CPU; a missing or corrupt file is a one-line error."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # pickle, zip and torch errors all mean the same thing here
        raise CheckpointError(f"checkpoint {path} is corrupt or not a torch checkpoint ({err.__class__.__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} has no state_dict (not a Lightning checkpoint of this code)")
    return checkpoint


def _starts(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p) for p in prefixes)


def load_model_state(
    model: torch.nn.Module,
    path: str,
    method: str,
    optional: Iterable[str] = (),
    ignored: Iterable[str] = (),
) -> dict[str, Any]:
    """Load a checkpoint's ``state_dict`` strictly, with explicit exceptions (DECISIONS.md).

    Args:
        model: the freshly built model of this task.
        path: a checkpoint written by this code or by the official one.
        method: the ``--method`` of this run; a checkpoint of another method is refused.
        optional: key prefixes the checkpoint may lack (they keep their fresh initialisation).
        ignored: key prefixes of the checkpoint that are dropped (e.g. the old teacher).

    Returns:
        The checkpoint's metadata (``checkpoint["cassle"]``, empty for official checkpoints).
    """
    checkpoint = load_checkpoint(path)
    meta = checkpoint.get("cassle", {})
    if meta.get("method") not in (None, method):
        raise CheckpointError(f"checkpoint {path} was trained with --method {meta['method']}, this run uses --method {method}")
    state = {k: v for k, v in checkpoint["state_dict"].items() if not _starts(k, ignored)}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not _starts(k, optional) and not _starts(k, ignored)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"checkpoint {path} does not match --method {method}: {detail} "
                              f"({len(missing)} missing, {len(unexpected)} unexpected keys)")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"checkpoint {path} does not match this model's shape: {key} is {tuple(value.shape)} there, "
                f"{tuple(own[key].shape)} here (check --encoder, --proj_hidden_dim, --output_dim, --queue_size)"
            )
    model.load_state_dict(state, strict=False)
    return meta
