"""Closed-form, per-epoch learning-rate schedules (torch-free).

All schedules are functions of the 0-based epoch and are constant within an epoch (the official
code steps its schedulers once per epoch). They restart at every task.

* ``warmup_cosine``: linear warm-up then cosine annealing, the closed form of lightning-bolts
  0.5.0 ``LinearWarmupCosineAnnealingLR`` (note the ``W - 1`` divisor of the warm-up: epoch 0
  trains at ``warmup_start_lr`` and epoch ``W - 1`` already reaches the base lr).
* ``cosine``: ``torch.optim.lr_scheduler.CosineAnnealingLR`` with ``T_max = max_epochs``.
* ``step``: ``torch.optim.lr_scheduler.MultiStepLR``.
* ``none``: constant.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable, Sequence
from typing import Any

SCHEDULERS = ("warmup_cosine", "cosine", "step", "none")


def warmup_cosine_lr(
    epoch: int,
    base_lr: float,
    warmup_epochs: int,
    max_epochs: int,
    warmup_start_lr: float,
    eta_min: float,
) -> float:
    """Learning rate of linear warm-up + cosine annealing at a 0-based epoch.

    With ``W = warmup_epochs``, ``M = max_epochs``, ``ws = warmup_start_lr``:

    * ``e < W``: ``ws + e * (base_lr - ws) / max(1, W - 1)`` (so ``e == 0`` gives ``ws``);
    * ``e >= W``: ``eta_min + (base_lr - eta_min) * (1 + cos(pi * (e - W) / (M - W))) / 2``.

    When ``M <= W`` there is no cosine phase; epochs at or after ``W`` then use ``base_lr``
    (the value the cosine phase would start from) instead of dividing by zero.

    Args:
        epoch: 0-based epoch within the task.
        base_lr: the group's base learning rate (after batch-size scaling).
        warmup_epochs: number of warm-up epochs ``W`` (0 disables the warm-up).
        max_epochs: number of epochs of the task ``M``.
        warmup_start_lr: learning rate of epoch 0 during warm-up.
        eta_min: learning rate the cosine phase anneals towards.

    Returns:
        The learning rate for that epoch.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if epoch < warmup_epochs:
        return warmup_start_lr + epoch * (base_lr - warmup_start_lr) / max(1, warmup_epochs - 1)
    if max_epochs <= warmup_epochs:
        return float(base_lr)
    progress = (epoch - warmup_epochs) / (max_epochs - warmup_epochs)
    return eta_min + 0.5 * (base_lr - eta_min) * (1.0 + math.cos(math.pi * progress))


def cosine_lr(epoch: int, base_lr: float, max_epochs: int, eta_min: float = 0.0) -> float:
    """Cosine annealing without warm-up (closed form of ``CosineAnnealingLR(T_max=max_epochs)``).

    Args:
        epoch: 0-based epoch.
        base_lr: base learning rate.
        max_epochs: annealing period ``T_max``; ``<= 0`` gives a constant ``base_lr``.
        eta_min: minimum learning rate.

    Returns:
        ``eta_min + (base_lr - eta_min) * (1 + cos(pi * epoch / max_epochs)) / 2``.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    if max_epochs <= 0:
        return float(base_lr)
    return eta_min + 0.5 * (base_lr - eta_min) * (1.0 + math.cos(math.pi * epoch / max_epochs))


def step_lr(epoch: int, base_lr: float, milestones: Sequence[int], gamma: float = 0.1) -> float:
    """Multi-step decay (closed form of ``MultiStepLR``).

    Args:
        epoch: 0-based epoch.
        base_lr: base learning rate.
        milestones: epochs at which the learning rate is multiplied by ``gamma``.
        gamma: multiplicative factor.

    Returns:
        ``base_lr * gamma ** (number of milestones <= epoch)``.
    """
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    passed = bisect.bisect_right(sorted(int(m) for m in milestones), epoch)
    return base_lr * gamma**passed


def _constant_lr(epoch: int, base_lr: float) -> float:
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return float(base_lr)


_FUNCTIONS: dict[str, Callable[..., float]] = {
    "warmup_cosine": warmup_cosine_lr,
    "cosine": cosine_lr,
    "step": step_lr,
    "none": _constant_lr,
}

_KNOWN_KWARGS = frozenset(
    {"warmup_epochs", "max_epochs", "warmup_start_lr", "eta_min", "milestones", "gamma"}
)

_USED_KWARGS: dict[str, frozenset] = {
    "warmup_cosine": frozenset({"warmup_epochs", "max_epochs", "warmup_start_lr", "eta_min"}),
    "cosine": frozenset({"max_epochs", "eta_min"}),
    "step": frozenset({"milestones", "gamma"}),
    "none": frozenset(),
}


def lr_at_epoch(scheduler: str, epoch: int, base_lr: float, **kw: Any) -> float:
    """Learning rate of a named schedule at a 0-based epoch.

    Callers may pass every schedule setting they have (``warmup_epochs``, ``max_epochs``,
    ``warmup_start_lr``, ``eta_min``, ``milestones``, ``gamma``); the ones the chosen schedule
    does not use are ignored. Any other keyword is a ``TypeError``.

    Args:
        scheduler: one of ``"warmup_cosine"``, ``"cosine"``, ``"step"``, ``"none"``.
        epoch: 0-based epoch within the task.
        base_lr: the group's base learning rate.
        **kw: schedule settings (see above).

    Returns:
        The learning rate for that epoch.

    Raises:
        ValueError: unknown schedule name.
        TypeError: unknown keyword, or a setting the schedule needs is missing.
    """
    if scheduler not in _FUNCTIONS:
        raise ValueError(
            f"unknown --scheduler {scheduler!r}; choose one of {', '.join(SCHEDULERS)}"
        )
    unknown = sorted(set(kw) - _KNOWN_KWARGS)
    if unknown:
        raise TypeError(f"lr_at_epoch got unknown schedule settings: {', '.join(unknown)}")
    used = {k: v for k, v in kw.items() if k in _USED_KWARGS[scheduler]}
    return float(_FUNCTIONS[scheduler](epoch, base_lr, **used))
