"""EMA helpers: tau schedule, official update order, parameter-only averaging."""

import math

import pytest
import torch
from torch import nn

from cassle.utils.momentum import (
    cosine_tau,
    ema_schedule_for_step,
    ema_update,
    initialize_momentum_params,
)


def test_cosine_tau_endpoints_and_midpoint():
    assert cosine_tau(0, 100, 0.99, 1.0) == pytest.approx(0.99)
    assert cosine_tau(100, 100, 0.99, 1.0) == pytest.approx(1.0)
    assert cosine_tau(50, 100, 0.99, 1.0) == pytest.approx(0.995)
    assert cosine_tau(0, 0, 0.99, 1.0) == 0.99  # no ZeroDivisionError


def test_schedule_order():
    assert ema_schedule_for_step(1, 10, 0.5, 1.0) is None
    assert ema_schedule_for_step(2, 10, 0.5, 1.0) == cosine_tau(0, 10, 0.5, 1.0) == 0.5
    assert ema_schedule_for_step(7, 10, 0.5, 1.0) == cosine_tau(5, 10, 0.5, 1.0)
    with pytest.raises(ValueError):
        ema_schedule_for_step(0, 10, 0.5, 1.0)
    # A task of S steps does S - 1 EMA updates.
    S = 39 * 3
    updates = [ema_schedule_for_step(k, S, 0.99, 1.0) for k in range(1, S + 1)]
    assert sum(u is not None for u in updates) == S - 1


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1, dtype=torch.double))
        self.bn = nn.BatchNorm1d(1).double()


def test_sequence_of_five_steps_by_hand():
    # max_steps = 4, base 0.5, final 1.0:
    #   tau(s) = 1 - 0.5 * (cos(pi * s / 4) + 1) / 2
    #   tau(0) = 0.5, tau(1) = 1 - 0.25 * (1 + sqrt(2)/2), tau(2) = 0.75, tau(3) = 1 - 0.25 * (1 - sqrt(2)/2)
    # The online weight equals k after optimiser step k; the momentum weight starts at 0.
    #   k=1: no update                      m = 0
    #   k=2: tau(0): 0.5 * 0 + 0.5 * 2      m = 1
    #   k=3: tau(1) * 1 + (1 - tau(1)) * 3
    #   k=4: tau(2) * m + 0.25 * 4
    #   k=5: tau(3) * m + (1 - tau(3)) * 5
    r = math.sqrt(2) / 2
    t1, t3 = 1 - 0.25 * (1 + r), 1 - 0.25 * (1 - r)
    m3 = t1 * 1 + (1 - t1) * 3
    m4 = 0.75 * m3 + 0.25 * 4
    m5 = t3 * m4 + (1 - t3) * 5
    expected = [0.0, 1.0, m3, m4, m5]

    online, momentum = _Tiny(), _Tiny()
    with torch.no_grad():
        momentum.w.fill_(123.0)
    initialize_momentum_params(online, momentum)
    assert momentum.w.item() == 0.0 and not momentum.w.requires_grad
    got = []
    for k in range(1, 6):
        with torch.no_grad():
            online.w.fill_(float(k))  # the optimiser step
        tau = ema_schedule_for_step(k, 4, 0.5, 1.0)
        if tau is not None:
            ema_update(online, momentum, tau)
        got.append(momentum.w.item())
    assert got == pytest.approx(expected, rel=1e-12)


def test_initialize_copies_buffers_and_ema_ignores_them():
    torch.manual_seed(0)
    online = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    momentum = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    online.train()
    online(torch.randn(8, 3))  # changes the online running stats
    initialize_momentum_params(online, momentum)
    for (n, a), b in zip(online.state_dict().items(), momentum.state_dict().values()):
        torch.testing.assert_close(a, b, msg=n)
    assert all(not p.requires_grad for p in momentum.parameters())
    assert all(p.requires_grad for p in online.parameters())

    mean_before = momentum[1].running_mean.clone()
    old = [p.detach().clone() for p in momentum.parameters()]
    online(torch.randn(8, 3) + 5)  # online stats move again
    with torch.no_grad():
        for p in online.parameters():
            p.add_(1.0)
    ema_update(online, momentum, 0.9)
    torch.testing.assert_close(momentum[1].running_mean, mean_before)
    for m_old, p, m in zip(old, online.parameters(), momentum.parameters()):
        torch.testing.assert_close(m, 0.9 * m_old + 0.1 * p.detach())


def test_mismatched_networks_are_refused():
    with pytest.raises(ValueError):
        initialize_momentum_params(nn.Linear(2, 2), nn.Linear(2, 2, bias=False))
    with pytest.raises(ValueError):
        ema_update(nn.Linear(2, 2), nn.Linear(2, 2, bias=False), 0.9)
