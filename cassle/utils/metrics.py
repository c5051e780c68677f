"""Accuracy helpers, the validation accumulator and continual-learning summary metrics. All
accuracies are in percent.

:class:`AccuracyAccumulator` sums loss, top-1, top-5 and per-task (or per-domain) top-1 over the
batches of a validation, and over processes; the linear probe and the online classifier of
pretraining both report their ``val_*`` metrics through it.

Continual metrics take an accuracy matrix ``acc`` with ``acc[i][j]`` = accuracy (percent) on
task ``j`` after training task ``i`` (0-based, ``T x T``). Cells that a metric does not need
may be ``None`` or NaN (rows may also be shorter than ``T``); a cell a metric needs that is
missing raises ``ValueError`` naming it.

* final average accuracy: mean of the last row;
* forgetting: mean over ``j < T-1`` of ``max_{i in [j, T-2]} acc[i][j] - acc[T-1][j]``;
* forward transfer: mean over ``j >= 1`` of ``acc[j-1][j] - b[j]``, ``b[j]`` the accuracy of a
  probe on a randomly initialised backbone.

Data-incremental runs share the classes across tasks, so their matrix has a single column
(whole evaluation set after each task): forgetting and forward transfer are not applicable.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F


def accuracy_at_k(
    logits: torch.Tensor, targets: torch.Tensor, topk: Sequence[int] = (1,)
) -> list[torch.Tensor]:
    """Top-k accuracies in percent.

    A ``k`` larger than the number of classes is clamped to it (top-5 with 3 classes is
    top-3, i.e. 100%). An empty batch gives 0 for every ``k`` (weight it by its batch size 0).

    Args:
        logits: ``(N, C)`` scores.
        targets: ``(N,)`` integer labels.
        topk: the values of ``k``.

    Returns:
        One 0-d float tensor per ``k``, in percent.
    """
    with torch.no_grad():
        if logits.ndim != 2:
            raise ValueError(f"logits must be (N, C), got shape {tuple(logits.shape)}")
        n, num_classes = logits.shape
        ks = [max(1, min(int(k), num_classes)) for k in topk]
        if n == 0:
            return [torch.zeros((), device=logits.device) for _ in ks]
        maxk = max(ks)
        _, pred = logits.topk(maxk, dim=1, largest=True, sorted=True)
        correct = pred.eq(targets.view(-1, 1).to(pred.device))
        return [correct[:, :k].any(dim=1).float().sum() * (100.0 / n) for k in ks]


def class_to_task(tasks: Sequence[Sequence[int]], num_classes: int) -> list[int]:
    """The task of every class of a class-incremental split (``-1`` for a class in no task): the
    ``class_to_group`` of :class:`AccuracyAccumulator`.

    Args:
        tasks: the classes of each task, in task order.
        num_classes: the classifier's width.
    """
    lookup = [-1] * num_classes
    for t, classes in enumerate(tasks):
        for c in classes:
            lookup[int(c)] = t
    return lookup


class AccuracyAccumulator:
    """Loss, top-1, top-5 and per-group top-1 of a classifier, summed over batches (and processes).

    One flat float64 tensor holds every sum: ``[n, loss, correct1, correct5, count_g..., correct1_g...]``
    (one count and one top-1 count per group). Sums, unlike per-batch means, add up exactly across
    batches and across processes: :meth:`reduce` all-reduces that one tensor, then :meth:`compute`
    turns the totals into percentages. A group is a task (the task of each target's class) or a
    domain (a tag that comes with each sample).

    Args:
        group_names: name of each group, in index order (``task0``, ... or the DomainNet domains);
            empty: no per-group accuracy.
        class_to_group: group index of every class (class-incremental split), so that
            :meth:`update` can derive the groups from the targets; None: groups are passed to it.
        device: where the sums live before the first update (the all-reduce of a process that saw
            no batch needs them on the collective's device).
    """

    def __init__(self, group_names: Sequence[str] = (), class_to_group: Sequence[int] | None = None,
                 device: Any = None):
        self.group_names = list(group_names)
        self.class_to_group = (torch.as_tensor(list(class_to_group), dtype=torch.long)
                               if class_to_group is not None else None)
        self.sums = torch.zeros(4 + 2 * len(self.group_names), dtype=torch.float64, device=device)

    def update(self, logits: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor | None = None) -> None:
        """Add one batch.

        Args:
            logits: ``(B, C)`` classifier scores.
            targets: ``(B,)`` integer labels.
            groups: ``(B,)`` group index of each sample (e.g. DomainNet domain tags); None: derived
                from ``class_to_group`` (or no per-group counts without it). Indices outside
                ``[0, len(group_names))`` are not counted in any group.
        """
        with torch.no_grad():
            logits = logits.detach().float()
            targets = targets.to(logits.device).long()
            if self.sums.device != logits.device:
                self.sums = self.sums.to(logits.device)
            if targets.numel() == 0:
                return
            k5 = min(5, logits.shape[1])
            top = logits.topk(k5, dim=1).indices
            correct1 = top[:, 0].eq(targets).double()
            correct5 = top.eq(targets[:, None]).any(dim=1).double()
            loss = F.cross_entropy(logits, targets, reduction="sum").double()
            self.sums[0] += targets.numel()
            self.sums[1] += loss
            self.sums[2] += correct1.sum()
            self.sums[3] += correct5.sum()
            num_groups = len(self.group_names)
            if num_groups == 0:
                return
            if groups is None:
                if self.class_to_group is None:
                    raise ValueError("per-group accuracy needs the groups of the batch or class_to_group")
                self.class_to_group = self.class_to_group.to(logits.device)
                groups = self.class_to_group[targets]
            groups = groups.to(logits.device).long()
            valid = (groups >= 0) & (groups < num_groups)
            groups, correct1 = groups[valid], correct1[valid]
            self.sums[4:4 + num_groups].index_add_(0, groups, torch.ones_like(correct1))
            self.sums[4 + num_groups:].index_add_(0, groups, correct1)

    def reduce(self, all_reduce_sum: Callable[[torch.Tensor], torch.Tensor | None]) -> None:
        """Sum the sums over processes.

        Args:
            all_reduce_sum: sums one flat float64 tensor over processes, returning the result (e.g.
                ``lambda t: trainer.strategy.reduce(t, reduce_op="sum")``) or summing in place and
                returning None (``torch.distributed.all_reduce``).
        """
        reduced = all_reduce_sum(self.sums)
        if isinstance(reduced, torch.Tensor):
            self.sums = reduced.to(torch.float64)

    def compute(self, prefix: str = "val_") -> dict[str, float]:
        """``<prefix>loss`` (mean cross-entropy), ``<prefix>acc1``, ``<prefix>acc5`` and
        ``<prefix>acc1_<group name>``, all accuracies in percent; NaN where there is no sample
        (a group without evaluation images, or no batch at all)."""
        values = self.sums.cpu().tolist()
        n, loss, correct1, correct5 = values[:4]
        num_groups = len(self.group_names)
        counts, group_correct = values[4:4 + num_groups], values[4 + num_groups:]
        nan = float("nan")
        out = {
            f"{prefix}loss": loss / n if n else nan,
            f"{prefix}acc1": 100.0 * correct1 / n if n else nan,
            f"{prefix}acc5": 100.0 * correct5 / n if n else nan,
        }
        for name, count, correct in zip(self.group_names, counts, group_correct):
            out[f"{prefix}acc1_{name}"] = 100.0 * correct / count if count else nan
        return out


# ----------------------------------------------------------------------------------------------
# Continual metrics
# ----------------------------------------------------------------------------------------------


def _as_matrix(acc: Any) -> np.ndarray:
    """Turn a (possibly ragged) list of lists / array into a float matrix with NaN holes."""
    if isinstance(acc, np.ndarray):
        mat = np.array(acc, dtype=float)
        if mat.ndim != 2:
            raise ValueError(f"the accuracy matrix must be 2-D, got shape {mat.shape}")
        return mat
    if torch.is_tensor(acc):
        return _as_matrix(acc.detach().cpu().numpy())
    rows = [list(r) for r in acc]
    if not rows:
        raise ValueError("the accuracy matrix is empty")
    width = max(len(r) for r in rows)
    mat = np.full((len(rows), width), np.nan, dtype=float)
    for i, row in enumerate(rows):
        for j, v in enumerate(row):
            if v is not None:
                mat[i, j] = float(v)
    return mat


def _cell(mat: np.ndarray, i: int, j: int, metric: str) -> float:
    if i >= mat.shape[0] or j >= mat.shape[1] or math.isnan(mat[i, j]):
        raise ValueError(f"{metric} needs acc[{i}][{j}], which is missing")
    return float(mat[i, j])


def _square(acc: Any, metric: str) -> np.ndarray:
    mat = _as_matrix(acc)
    t, c = mat.shape
    if c != t:
        raise ValueError(
            f"{metric} needs a T x T accuracy matrix (class- or domain-incremental), got {t} x {c}; "
            "it is not applicable to data-incremental runs"
        )
    return mat


def average_accuracy(acc: Any) -> float:
    """Final average accuracy: the mean of the last row of the accuracy matrix.

    Args:
        acc: accuracy matrix (percent), ``acc[i][j]`` after task ``i`` on task ``j``.

    Returns:
        Mean of ``acc[T-1][:]`` (every entry of the last row must be present).
    """
    mat = _as_matrix(acc)
    last = mat.shape[0] - 1
    values = [_cell(mat, last, j, "average_accuracy") for j in range(mat.shape[1])]
    return float(sum(values) / len(values))


def forgetting(acc: Any) -> float | None:
    """Average forgetting.

    Mean over ``j < T-1`` of ``max_{i in [j, T-2]} acc[i][j] - acc[T-1][j]``.

    Args:
        acc: ``T x T`` accuracy matrix (percent).

    Returns:
        The forgetting in percentage points, or None when ``T == 1``.
    """
    mat = _as_matrix(acc)
    t = mat.shape[0]
    if t == 1:
        return None
    mat = _square(acc, "forgetting")
    drops = []
    for j in range(t - 1):
        best = max(_cell(mat, i, j, "forgetting") for i in range(j, t - 1))
        drops.append(best - _cell(mat, t - 1, j, "forgetting"))
    return float(sum(drops) / len(drops))


def forward_transfer(acc: Any, random_baseline: Sequence[float]) -> float | None:
    """Forward transfer.

    Mean over ``j >= 1`` of ``acc[j-1][j] - b[j]``.

    Args:
        acc: ``T x T`` accuracy matrix (percent).
        random_baseline: ``b[j]``, the accuracy (percent) on task ``j`` of a probe on a randomly
            initialised backbone; ``T`` entries (``b[0]`` is not used).

    Returns:
        The forward transfer in percentage points, or None when ``T == 1``.
    """
    mat = _as_matrix(acc)
    t = mat.shape[0]
    if t == 1:
        return None
    mat = _square(acc, "forward_transfer")
    baseline = list(random_baseline)
    if len(baseline) != t:
        raise ValueError(f"forward_transfer needs {t} random-baseline accuracies, got {len(baseline)}")
    gains = []
    for j in range(1, t):
        if baseline[j] is None or math.isnan(float(baseline[j])):
            raise ValueError(f"forward_transfer needs random_baseline[{j}], which is missing")
        gains.append(_cell(mat, j - 1, j, "forward_transfer") - float(baseline[j]))
    return float(sum(gains) / len(gains))


__all__: tuple[str, ...] = (
    "accuracy_at_k",
    "average_accuracy",
    "forgetting",
    "forward_transfer",
    "AccuracyAccumulator",
    "class_to_task",
)
