"""Multi-crop BYOL, MoCo V2+, Barlow Twins and VICReg against explicit references; with 2 crops
each equals its two-view loss."""

import math

import pytest
import torch

from cassle.losses import (
    barlow_loss_func,
    barlow_multicrop_loss_func,
    byol_loss_func,
    byol_multicrop_loss_func,
    moco_loss_func,
    moco_multicrop_loss_func,
    vicreg_loss_func,
    vicreg_multicrop_loss_func,
)
from cassle.losses.crops import symmetric_pairs, target_pairs

from . import reference
from .checks import assert_autocast_close, basis, has_gradient, leaves, randn, unit_rows

# (large crops L, small crops M): two-view, the usual 2 + small, more large crops, one large crop
CROP_GRID = [(2, 0), (2, 1), (2, 3), (3, 0), (3, 2), (1, 2)]
QUEUE_SIZE = 7


def _crops(num, batch_size, dim, first_seed, unit=False):
    make = unit_rows if unit else randn
    return [make(batch_size, dim, seed=first_seed + k) for k in range(num)]


# ------------------------------------------------------------------------------------- pairs


def test_target_pairs():
    assert target_pairs(2, 2) == [(0, 1), (1, 0)]
    assert target_pairs(2, 4) == [(0, 1), (0, 2), (0, 3), (1, 0), (1, 2), (1, 3)]
    assert target_pairs(1, 3) == [(0, 1), (0, 2)]
    assert len(target_pairs(3, 8)) == 3 * 7


def test_symmetric_pairs():
    assert symmetric_pairs(2, 2) == [(0, 1)]
    assert symmetric_pairs(2, 4) == [(0, 1), (0, 2), (0, 3), (1, 2), (1, 3)]  # never (2, 3)
    assert len(symmetric_pairs(3, 8)) == 3 + 3 * 5


@pytest.mark.parametrize("pairs", [target_pairs, symmetric_pairs])
@pytest.mark.parametrize("large, total", [(2, 1), (0, 3), (3, 2)])
def test_pairs_reject_impossible_crop_counts(pairs, large, total):
    with pytest.raises(ValueError):
        pairs(large, total)


# -------------------------------------------------------------------------------------- BYOL


@pytest.mark.parametrize("large, small", CROP_GRID)
@pytest.mark.parametrize("batch_size, dim", [(2, 4), (5, 16)])
def test_byol_matches_reference(large, small, batch_size, dim):
    p = _crops(large + small, batch_size, dim, first_seed=1)
    m = _crops(large, batch_size, dim, first_seed=20)
    got = byol_multicrop_loss_func(p, m)
    assert got.item() == pytest.approx(reference.byol_multicrop(p, m), rel=1e-10)


def test_byol_two_crops_equal_the_two_view_loss():
    p1, p2, m1, m2 = _crops(4, 6, 8, first_seed=30)
    expected = byol_loss_func(p1, m2) + byol_loss_func(p2, m1)  # the base BYOL sums both directions
    assert torch.equal(byol_multicrop_loss_func([p1, p2], [m1, m2]), expected)


@pytest.mark.parametrize("large, small", [(2, 0), (2, 4), (3, 1)])
def test_byol_is_a_sum_over_pairs(large, small):
    # every prediction opposite to every target: each of the L (C - 1) pairs costs 4
    m = randn(5, 8, seed=40)
    got = byol_multicrop_loss_func([-2.0 * m] * (large + small), [m] * large)
    assert got.item() == pytest.approx(4.0 * large * (large + small - 1), rel=1e-12)
    aligned = byol_multicrop_loss_func([m] * (large + small), [3 * m] * large)
    assert aligned.item() == pytest.approx(0, abs=1e-12)


def test_byol_gradient_into_predictions_only():
    p = leaves(*_crops(4, 4, 8, first_seed=50))
    m = leaves(*_crops(2, 4, 8, first_seed=60))
    byol_multicrop_loss_func(p, m).backward()
    assert all(has_gradient(x) for x in p)
    assert all(x.grad is None for x in m)


def test_byol_autocast_bfloat16():
    assert_autocast_close(byol_multicrop_loss_func, [_crops(3, 8, 16, 70), _crops(2, 8, 16, 80)])


# -------------------------------------------------------------------------------------- MoCo


@pytest.mark.parametrize("large, small", CROP_GRID)
@pytest.mark.parametrize("temperature", [0.07, 0.2, 0.5])
def test_moco_matches_reference(large, small, temperature):
    q = _crops(large + small, 3, 8, first_seed=1, unit=True)
    k = _crops(large, 3, 8, first_seed=20, unit=True)
    queues = torch.stack([unit_rows(QUEUE_SIZE, 8, seed=40 + t).t() for t in range(large)])
    got = moco_multicrop_loss_func(q, k, queues, temperature)
    expected = reference.moco_multicrop(q, k, list(queues), temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_moco_two_crops_equal_the_two_view_loss():
    q1, q2, k1, k2 = _crops(4, 6, 8, first_seed=50, unit=True)
    queue = torch.stack([unit_rows(QUEUE_SIZE, 8, seed=s).t() for s in (60, 61)])
    expected = 0.5 * (moco_loss_func(q1, k2, queue[1], 0.2) + moco_loss_func(q2, k1, queue[0], 0.2))
    assert torch.equal(moco_multicrop_loss_func([q1, q2], [k1, k2], queue, 0.2), expected)


def test_moco_each_key_uses_its_own_queue():
    q = _crops(3, 4, 8, first_seed=70, unit=True)
    k = _crops(2, 4, 8, first_seed=80, unit=True)
    queues = [unit_rows(QUEUE_SIZE, 8, seed=90).t(), unit_rows(QUEUE_SIZE, 8, seed=91).t()]
    swapped = moco_multicrop_loss_func(q, k, queues[::-1], 0.2)
    assert abs((swapped - moco_multicrop_loss_func(q, k, queues, 0.2)).item()) > 1e-4


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_moco_aligned_key_and_orthogonal_queue(temperature):
    # every query equals every key and every queue column is orthogonal: log(1 + K e^{-1/T}) per pair
    z = basis(8, 0, 1)
    queue = basis(8, 2, 3, 4, 5, 6).t()
    got = moco_multicrop_loss_func([z] * 4, [z] * 2, [queue, queue], temperature)
    assert got.item() == pytest.approx(math.log(1 + 5 * math.exp(-1 / temperature)), rel=1e-10)


def test_moco_gradient_into_queries_only():
    q = leaves(*_crops(3, 4, 8, first_seed=100, unit=True))
    k = leaves(*_crops(2, 4, 8, first_seed=110, unit=True))
    queues = leaves(unit_rows(QUEUE_SIZE, 8, seed=120).t(), unit_rows(QUEUE_SIZE, 8, seed=121).t())
    moco_multicrop_loss_func(q, k, queues, 0.2).backward()
    assert all(has_gradient(x) for x in q)
    assert all(x.grad is None for x in k + queues)


def test_moco_needs_one_queue_per_large_crop():
    q = _crops(3, 4, 8, first_seed=130, unit=True)
    with pytest.raises(ValueError, match="queue"):
        moco_multicrop_loss_func(q, q[:2], [unit_rows(QUEUE_SIZE, 8, seed=1).t()], 0.2)


def test_moco_autocast_bfloat16():
    q = _crops(3, 8, 16, first_seed=140, unit=True)
    k = _crops(2, 8, 16, first_seed=150, unit=True)
    queues = torch.stack([unit_rows(32, 16, seed=160 + t).t() for t in range(2)])
    assert_autocast_close(moco_multicrop_loss_func, [q, k, queues, 0.2])


# ------------------------------------------------------------------------------ Barlow Twins


@pytest.mark.parametrize("large, small", CROP_GRID)
@pytest.mark.parametrize("lamb, scale", [(0.0, 1.0), (5e-3, 0.1)])
def test_barlow_matches_reference(large, small, lamb, scale):
    z = [x * (1 + k) + k for k, x in enumerate(_crops(large + small, 6, 4, first_seed=1))]
    got = barlow_multicrop_loss_func(z, large, lamb, scale)
    assert got.item() == pytest.approx(reference.barlow_multicrop(z, large, lamb, scale), rel=1e-9)


def test_barlow_two_crops_equal_the_two_view_loss():
    z1, z2 = _crops(2, 8, 6, first_seed=20)
    expected = barlow_loss_func(z1, z2, 5e-3, 0.1)
    assert torch.equal(barlow_multicrop_loss_func([z1, z2], 2, 5e-3, 0.1), expected)


def test_barlow_small_crops_are_never_paired_together():
    # L = 2 large, 2 small crops; crops 0-2 equal, crop 3 different: of the 5 pairs, (0, 3) and
    # (1, 3) see the difference; (2, 3) would too, but two small crops are never a pair.
    z = _crops(2, 8, 6, first_seed=30)
    crops = [z[0], z[0].clone(), z[0].clone(), z[1]]
    same = barlow_loss_func(z[0], z[0], 5e-3, 0.1)
    different = barlow_loss_func(z[0], z[1], 5e-3, 0.1)
    expected = (3 * same + 2 * different) / 5
    torch.testing.assert_close(barlow_multicrop_loss_func(crops, 2, 5e-3, 0.1), expected)


def test_barlow_gradient_reaches_every_crop():
    z = leaves(*_crops(3, 8, 4, first_seed=40))
    barlow_multicrop_loss_func(z, 2, 5e-3, 0.1).backward()
    assert all(has_gradient(x) for x in z)


def test_barlow_autocast_bfloat16():
    assert_autocast_close(barlow_multicrop_loss_func, [_crops(3, 16, 32, 50), 2, 5e-3, 0.1])


# ------------------------------------------------------------------------------------ VICReg


def _vicreg_crops(num, batch_size, dim, first_seed):
    spread = torch.linspace(0.2, 2.0, dim, dtype=torch.float64)
    return [x * spread + 0.3 * k for k, x in enumerate(_crops(num, batch_size, dim, first_seed))]


@pytest.mark.parametrize("large, small", CROP_GRID)
@pytest.mark.parametrize("weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)])
def test_vicreg_matches_reference(large, small, weights):
    z = _vicreg_crops(large + small, 5, 4, first_seed=1)
    got = vicreg_multicrop_loss_func(z, large, *weights)
    assert got.item() == pytest.approx(reference.vicreg_multicrop(z, large, *weights), rel=1e-10)


def test_vicreg_two_crops_equal_the_two_view_loss():
    z1, z2 = _vicreg_crops(2, 6, 8, first_seed=20)
    assert torch.equal(vicreg_multicrop_loss_func([z1, z2], 2, 25.0, 25.0, 1.0),
                       vicreg_loss_func(z1, z2, 25.0, 25.0, 1.0))


def test_vicreg_analytic_zero():
    # zero-mean, orthogonal columns of +-10 in every crop: no hinge, no covariance, no distance
    z = 10 * torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=torch.float64)
    got = vicreg_multicrop_loss_func([z.clone() for _ in range(5)], 2, 25.0, 25.0, 1.0)
    assert got.item() == pytest.approx(0.0, abs=1e-12)


def test_vicreg_gradient_reaches_every_crop():
    z = leaves(*_vicreg_crops(4, 6, 8, first_seed=30))
    vicreg_multicrop_loss_func(z, 2, 25.0, 25.0, 1.0).backward()
    assert all(has_gradient(x) for x in z)


def test_vicreg_autocast_bfloat16():
    assert_autocast_close(vicreg_multicrop_loss_func, [_vicreg_crops(3, 16, 32, 40), 2, 25.0, 25.0, 1.0])
