"""Closed-form learning-rate schedules."""

import math

import pytest
import torch

from cassle.utils.schedulers import cosine_lr, lr_at_epoch, step_lr, warmup_cosine_lr

B = 0.4 * 256 / 256  # any base lr


def _wc(e, b=B, W=10, M=500, ws=0.003, eta=0.0):
    return warmup_cosine_lr(e, b, W, M, ws, eta)


def test_official_recipe_landmarks():
    assert _wc(0) == pytest.approx(0.003, abs=1e-15)
    assert _wc(9) == pytest.approx(B, rel=1e-12)  # warm-up reaches b one epoch early (W - 1 divisor)
    assert _wc(10) == pytest.approx(B, rel=1e-12)  # cosine starts at b
    # last epoch: (1 + cos(pi * 489 / 490)) / 2 = sin^2(pi / 980) ~ 1.03e-5
    last = _wc(499)
    assert last == pytest.approx(B * math.sin(math.pi / 980) ** 2, rel=1e-9)
    assert 0.5e-5 * B < last < 2e-5 * B and last > 0
    after = [_wc(e) for e in range(10, 500)]
    assert all(a > b for a, b in zip(after, after[1:]))
    before = [_wc(e) for e in range(0, 10)]
    assert all(a < b for a, b in zip(before, before[1:]))


def test_small_table_against_direct_derivation():
    # b = 1.0, W = 3, M = 7, ws = 0.1, eta = 0.01
    # e=0: ws                                    = 0.1
    # e=1: 0.1 + 1 * (1.0 - 0.1) / (3 - 1)       = 0.55
    # e=2: 0.1 + 2 * 0.9 / 2                     = 1.0
    # e=3: 0.01 + 0.5 * 0.99 * (1 + cos(0))      = 1.0
    # e=4: 0.01 + 0.495 * (1 + cos(pi/4))        = 0.01 + 0.495 * 1.70710678 = 0.85501786
    # e=5: 0.01 + 0.495 * (1 + cos(pi/2))        = 0.505
    # e=6: 0.01 + 0.495 * (1 + cos(3pi/4))       = 0.01 + 0.495 * 0.29289322 = 0.15498214
    table = [0.1, 0.55, 1.0, 1.0, 0.85501786, 0.505, 0.15498214]
    got = [warmup_cosine_lr(e, 1.0, 3, 7, 0.1, 0.01) for e in range(7)]
    assert got == pytest.approx(table, abs=1e-8)


def test_warmup_edge_cases():
    # W = 1: only epoch 0 is in warm-up; epoch 1 starts the cosine at b.
    assert warmup_cosine_lr(0, 1.0, 1, 5, 0.1, 0.0) == pytest.approx(0.1)
    assert warmup_cosine_lr(1, 1.0, 1, 5, 0.1, 0.0) == pytest.approx(1.0)
    # W = 0: plain cosine from epoch 0.
    assert warmup_cosine_lr(0, 1.0, 0, 4, 0.1, 0.0) == pytest.approx(1.0)
    assert warmup_cosine_lr(2, 1.0, 0, 4, 0.1, 0.0) == pytest.approx(0.5)
    # M == W (no cosine phase): no ZeroDivisionError, base lr.
    assert warmup_cosine_lr(3, 1.0, 3, 3, 0.1, 0.0) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        warmup_cosine_lr(-1, 1.0, 3, 10, 0.1, 0.0)


def test_step_lr_matches_torch_multisteplr():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[6, 8], gamma=0.1)
    for epoch in range(10):
        assert step_lr(epoch, 0.5, [6, 8], 0.1) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-12)
        opt.step()
        sched.step()
    assert step_lr(59, 1.0, [60, 80], 0.1) == 1.0
    assert step_lr(60, 1.0, [80, 60], 0.1) == pytest.approx(0.1)
    assert step_lr(99, 1.0, [60, 80], 0.1) == pytest.approx(0.01)


def test_cosine_lr_matches_torch_cosine():
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=0.5)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=6, eta_min=0.01)
    for epoch in range(6):
        assert cosine_lr(epoch, 0.5, 6, 0.01) == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9)
        opt.step()
        sched.step()


def test_dispatcher():
    kw = dict(warmup_epochs=3, max_epochs=7, warmup_start_lr=0.1, eta_min=0.01,
              milestones=[2, 4], gamma=0.5)
    assert lr_at_epoch("warmup_cosine", 4, 1.0, **kw) == warmup_cosine_lr(4, 1.0, 3, 7, 0.1, 0.01)
    assert lr_at_epoch("cosine", 4, 1.0, **kw) == cosine_lr(4, 1.0, 7, 0.01)
    assert lr_at_epoch("step", 4, 1.0, **kw) == pytest.approx(0.25)
    assert lr_at_epoch("none", 4, 1.0, **kw) == 1.0
    assert lr_at_epoch("none", 0, 0.3) == 0.3
    with pytest.raises(ValueError, match="--scheduler"):
        lr_at_epoch("reduce", 0, 1.0, **kw)
    with pytest.raises(TypeError):
        lr_at_epoch("cosine", 0, 1.0, max_epoch=7)  # typo is not silently ignored
    with pytest.raises(TypeError):
        lr_at_epoch("step", 0, 1.0)  # milestones missing
