"""``task<t>/metrics.csv``: every logged value of a task, kept whole across resumes.

Lightning's CSVLogger appends to an open file and fixes its columns at the first write: after a resume it
either loses the rows logged before the kill or stops on keys it did not expect. This logger keeps the
rows in memory and rewrites the whole file atomically at every write (a task logs a few rows per epoch),
and :meth:`TaskCSVLogger.resume_at` reloads the rows of the epochs before the one a resumed task restarts
at, so the file of a resumed task equals the file of an uninterrupted one.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Mapping
from typing import Any

from pytorch_lightning.loggers.logger import Logger
from pytorch_lightning.utilities import rank_zero_only

from cassle.utils.files import atomic_write_text


def _cell(value: Any) -> str:
    if hasattr(value, "item"):
        value = value.item()
    return repr(float(value)) if isinstance(value, float) else str(value)


class TaskCSVLogger(Logger):
    """Rank 0 writes ``<folder>/metrics.csv``: one row per ``log_metrics`` call, columns ``epoch``,
    ``step`` and every metric key in the order first seen."""

    def __init__(self, folder: str):
        super().__init__()
        self.folder = folder
        self.path = os.path.join(folder, "metrics.csv")
        self.rows: list[dict[str, str]] = []
        self.columns: list[str] = ["epoch", "step"]

    @property
    def name(self) -> str:
        return "csv"

    @property
    def version(self) -> str:
        return ""

    @property
    def root_dir(self) -> str:
        return self.folder

    @property
    def log_dir(self) -> str:
        return self.folder

    def resume_at(self, epoch: int) -> None:
        """Keep the rows of the epochs before ``epoch`` (a task resumed at its start: none)."""
        if not os.path.exists(self.path):
            return
        with open(self.path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = [row for row in reader if row.get("epoch", "") != "" and int(float(row["epoch"])) < epoch]
            columns = list(reader.fieldnames or [])
        self.rows = [{k: v for k, v in row.items() if v not in ("", None)} for row in rows]
        self.columns = columns if rows else ["epoch", "step"]

    @rank_zero_only
    def log_hyperparams(self, params: Any, *args: Any, **kwargs: Any) -> None:
        """The run's configuration lives in ``args.json``; nothing to add here."""

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        row = {key: _cell(value) for key, value in metrics.items()}
        row["step"] = str(step if step is not None else row.get("step", ""))
        if "epoch" in row:
            row["epoch"] = str(int(float(row["epoch"])))
        for key in row:
            if key not in self.columns:
                self.columns.append(key)
        self.rows.append(row)
        self.save()

    @rank_zero_only
    def save(self) -> None:
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=self.columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.rows)
        atomic_write_text(self.path, out.getvalue())
