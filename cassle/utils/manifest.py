"""``manifest.json`` of a run folder: which tasks finished, their checkpoints and metrics (torch-free).

A task is listed only once its final checkpoint is completely on disk, with the checkpoint's size and
SHA-256, so that a resume can tell a damaged or missing checkpoint from a good one.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Any

from cassle.errors import CassleError
from cassle.utils.files import atomic_write_json, read_json

MANIFEST = "manifest.json"


def file_digest(path: str) -> str:
    """SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunManifest:
    """The manifest of ``run_dir`` (read if it exists, else empty until the first task finishes)."""

    def __init__(self, run_dir: str):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, MANIFEST)
        self.data: dict[str, Any] = {"tasks": {}}
        if os.path.exists(self.path):
            data = read_json(self.path, "run manifest")
            tasks = data.get("tasks")
            if not isinstance(tasks, dict) or not all(
                    isinstance(entry, dict) and isinstance(entry.get("checkpoint"), str) and str(k).isdigit()
                    for k, entry in tasks.items()):
                raise CassleError(f"run manifest {self.path} is corrupt (expected {{\"tasks\": {{\"<task>\": "
                                  f"{{\"checkpoint\": ...}}}}}}): restore it, or start a new run with another --name")
            self.data = data

    @property
    def tasks(self) -> dict[str, Any]:
        return self.data["tasks"]

    def finished(self, task: int) -> bool:
        return str(task) in self.tasks

    def checkpoint(self, task: int) -> str:
        return os.path.join(self.run_dir, self.tasks[str(task)]["checkpoint"])

    def metrics(self, task: int) -> dict[str, float]:
        return self.tasks[str(task)].get("metrics") or {}

    def finished_tasks(self) -> list[int]:
        return sorted(int(t) for t in self.tasks)

    def mark_finished(self, task: int, checkpoint: str, metrics: dict[str, float], seconds: float) -> None:
        self.tasks[str(task)] = {
            "checkpoint": os.path.relpath(checkpoint, self.run_dir),
            "bytes": os.path.getsize(checkpoint),
            "sha256": file_digest(checkpoint),
            "metrics": metrics,
            "seconds": round(seconds, 1),
            "finished_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        }
        self.save()

    def forget(self, task: int) -> None:
        """Drop a task from the manifest (its checkpoint is damaged: it will be trained again)."""
        self.tasks.pop(str(task), None)
        self.save()

    def damage(self, task: int) -> str | None:
        """Why task ``task``'s checkpoint cannot be trusted (missing, wrong size, wrong SHA-256), or None."""
        entry, path = self.tasks[str(task)], self.checkpoint(task)
        if not os.path.isfile(path):
            return f"{path} is missing"
        size = os.path.getsize(path)
        if "bytes" in entry and size != entry["bytes"]:
            return f"{path} has {size} bytes, the manifest recorded {entry['bytes']}"
        if "sha256" in entry and file_digest(path) != entry["sha256"]:
            return f"{path} does not match the SHA-256 the manifest recorded"
        return None

    def save(self) -> None:
        atomic_write_json(self.path, self.data)
