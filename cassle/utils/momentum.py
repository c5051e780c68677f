"""Momentum (EMA) encoders: initialisation, update and the official tau schedule.

``theta_m <- tau * theta_m + (1 - tau) * theta`` on parameters only (BatchNorm buffers of the
momentum network are not averaged), with
``tau(s) = final_tau - (final_tau - base_tau) * (cos(pi * s / max_steps) + 1) / 2``.

Official order (a Lightning 1.5 artefact, kept here): after optimiser step ``k`` (1-based,
counted from the start of the task) step 1 gets no EMA update, and step ``k >= 2`` applies the
EMA with ``tau(k - 2)``. A task of ``S`` optimiser steps therefore does ``S - 1`` EMA updates.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def cosine_tau(step: int, max_steps: int, base_tau: float, final_tau: float) -> float:
    """Cosine schedule of the EMA coefficient.

    Args:
        step: schedule position ``s`` (0 gives ``base_tau``).
        max_steps: ``s`` at which ``final_tau`` is reached (steps per epoch x max epochs);
            ``<= 0`` gives ``base_tau``.
        base_tau: initial coefficient.
        final_tau: final coefficient.

    Returns:
        ``final_tau - (final_tau - base_tau) * (cos(pi * step / max_steps) + 1) / 2``.
    """
    if max_steps <= 0:
        return float(base_tau)
    return final_tau - (final_tau - base_tau) * (math.cos(math.pi * step / max_steps) + 1) / 2


def ema_schedule_for_step(
    k: int, max_steps: int, base_tau: float, final_tau: float
) -> float | None:
    """Tau of the EMA update that follows optimiser step ``k`` (official order).

    Args:
        k: 1-based index of the optimiser step just taken, counted from the start of the task.
        max_steps: total optimiser steps of the task (steps per epoch x max epochs).
        base_tau: initial coefficient.
        final_tau: final coefficient.

    Returns:
        None for ``k == 1`` (no EMA update after the first step), else ``cosine_tau(k - 2, ...)``.
    """
    if k < 1:
        raise ValueError(f"optimiser steps are counted from 1, got k={k}")
    if k == 1:
        return None
    return cosine_tau(k - 2, max_steps, base_tau, final_tau)


def _check_same_names(kind: str, online_names: list, momentum_names: list) -> None:
    if online_names != momentum_names:
        raise ValueError(
            f"online and momentum networks have different {kind}: "
            f"{len(online_names)} vs {len(momentum_names)} entries"
        )


@torch.no_grad()
def initialize_momentum_params(online: nn.Module, momentum: nn.Module) -> None:
    """Copy the online network into the momentum network and freeze the latter.

    Parameters and buffers (BatchNorm running statistics included) are copied; the momentum
    parameters get ``requires_grad = False``.

    Args:
        online: the network trained by gradient descent.
        momentum: a network of the same structure.
    """
    online_params = list(online.named_parameters())
    momentum_params = list(momentum.named_parameters())
    _check_same_names(
        "parameters", [n for n, _ in online_params], [n for n, _ in momentum_params]
    )
    for (_, p), (_, mp) in zip(online_params, momentum_params):
        mp.data.copy_(p.data)
        mp.requires_grad = False
    online_buffers = list(online.named_buffers())
    momentum_buffers = list(momentum.named_buffers())
    _check_same_names(
        "buffers", [n for n, _ in online_buffers], [n for n, _ in momentum_buffers]
    )
    for (_, b), (_, mb) in zip(online_buffers, momentum_buffers):
        mb.copy_(b)


@torch.no_grad()
def ema_update(online: nn.Module, momentum: nn.Module, tau: float) -> None:
    """One EMA step on the parameters: ``theta_m <- tau * theta_m + (1 - tau) * theta``.

    Buffers (BatchNorm running statistics) of the momentum network are left alone.

    Args:
        online: the network trained by gradient descent.
        momentum: the momentum network (same structure).
        tau: EMA coefficient in [0, 1].
    """
    online_params = list(online.parameters())
    momentum_params = list(momentum.parameters())
    if len(online_params) != len(momentum_params):
        raise ValueError(
            "online and momentum networks have different parameters: "
            f"{len(online_params)} vs {len(momentum_params)}"
        )
    for p, mp in zip(online_params, momentum_params):
        mp.data.mul_(tau).add_(p.data, alpha=1.0 - tau)
