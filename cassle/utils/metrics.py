"""Accuracy helpers and continual-learning summary metrics. All accuracies are in percent.

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
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch


def accuracy_at_k(
    logits: torch.Tensor, targets: torch.Tensor, topk: Sequence[int] = (1,)
) -> List[torch.Tensor]:
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


def weighted_mean(
    outputs: Sequence[Mapping[str, Any]], key: str, batch_size_key: str = "batch_size"
) -> float:
    """Batch-size-weighted mean of ``key`` over a list of per-batch outputs.

    Args:
        outputs: per-batch dicts holding ``key`` and ``batch_size_key``.
        key: the value to average (number or 0-d tensor).
        batch_size_key: the weight of each batch.

    Returns:
        ``sum(value * n) / sum(n)``; NaN when the total weight is 0.
    """
    total = 0.0
    count = 0.0
    for out in outputs:
        n = float(out[batch_size_key])
        value = out[key]
        value = float(value.detach().float().cpu()) if torch.is_tensor(value) else float(value)
        total += value * n
        count += n
    if count == 0:
        return float("nan")
    return total / count


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


def forgetting(acc: Any) -> Optional[float]:
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


def forward_transfer(acc: Any, random_baseline: Sequence[float]) -> Optional[float]:
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


def continual_summary(
    acc: Any,
    random_baseline: Optional[Sequence[float]] = None,
    data_incremental: bool = False,
) -> Dict[str, Optional[float]]:
    """Final average accuracy, forgetting and forward transfer, None where not applicable.

    Forgetting and forward transfer are not applicable to data-incremental runs (flag set, or a
    single-column matrix with several rows) nor to a single task; forward transfer also needs
    ``random_baseline``.

    Args:
        acc: accuracy matrix (percent): ``T x T``, or ``T x 1`` for data-incremental runs.
        random_baseline: per-task accuracies of a probe on a random backbone, or None.
        data_incremental: whether the tasks share their classes.

    Returns:
        ``{"final_avg_acc": float, "forgetting": float | None, "forward_transfer": float | None}``.
    """
    mat = _as_matrix(acc)
    single_column = mat.shape[1] == 1 and mat.shape[0] > 1
    not_applicable = data_incremental or single_column
    return {
        "final_avg_acc": average_accuracy(mat),
        "forgetting": None if not_applicable else forgetting(mat),
        "forward_transfer": (
            None
            if not_applicable or random_baseline is None
            else forward_transfer(mat, random_baseline)
        ),
    }


__all__: Tuple[str, ...] = (
    "accuracy_at_k",
    "weighted_mean",
    "average_accuracy",
    "forgetting",
    "forward_transfer",
    "continual_summary",
)
