import pytest
import torch

from cassle.losses import byol_loss_func

from . import reference
from .checks import assert_autocast_close, has_gradient, leaves, randn


@pytest.mark.parametrize("batch_size", [2, 3, 8])
@pytest.mark.parametrize("dim", [4, 16])
def test_matches_explicit_reference(batch_size, dim):
    p, z = randn(batch_size, dim, seed=1), randn(batch_size, dim, seed=2)
    assert byol_loss_func(p, z).item() == pytest.approx(reference.byol(p, z), rel=1e-10)


def test_identical_directions_give_zero():
    p = randn(5, 8, seed=3)
    assert byol_loss_func(p, 3.0 * p).item() == pytest.approx(0.0, abs=1e-12)


def test_opposite_directions_give_four():
    p = randn(5, 8, seed=4)
    assert byol_loss_func(p, -0.5 * p).item() == pytest.approx(4.0, rel=1e-12)


def test_is_a_batch_mean_not_a_sum():
    # rows: cos = 1 (loss 0) and cos = -1 (loss 4): mean 2.
    p = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    z = torch.tensor([[2.0, 0.0], [0.0, -1.0]], dtype=torch.float64)
    assert byol_loss_func(p, z).item() == pytest.approx(2.0)


def test_target_is_detached():
    p, z = leaves(randn(4, 8, seed=5), randn(4, 8, seed=6))
    byol_loss_func(p, z).backward()
    assert has_gradient(p)
    assert z.grad is None


def test_autocast_bfloat16():
    assert_autocast_close(byol_loss_func, [randn(8, 16, seed=7), randn(8, 16, seed=8)])
