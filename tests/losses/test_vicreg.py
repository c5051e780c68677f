import pytest
import torch

from cassle.losses import covariance_loss, invariance_loss, variance_loss, vicreg_loss_func

from . import reference
from .checks import assert_autocast_close, has_gradient, leaves, randn

GRID = pytest.mark.parametrize("batch_size,dim", [(2, 4), (3, 16), (8, 4), (8, 16)])


def _inputs(batch_size, dim):
    # dimensions with std well below and well above 1, so that the hinge is partly active
    spread = torch.linspace(0.2, 2.0, dim, dtype=torch.float64)
    return randn(batch_size, dim, seed=1) * spread, randn(batch_size, dim, seed=2) * spread + 0.5


@GRID
def test_invariance_matches_reference(batch_size, dim):
    z1, z2 = _inputs(batch_size, dim)
    assert invariance_loss(z1, z2).item() == pytest.approx(reference.mse(z1, z2), rel=1e-10)


@GRID
def test_variance_matches_reference(batch_size, dim):
    z1, z2 = _inputs(batch_size, dim)
    expected = reference.vicreg_variance(z1, z2)
    assert variance_loss(z1, z2).item() == pytest.approx(expected, rel=1e-10)


@GRID
def test_covariance_matches_reference(batch_size, dim):
    z1, z2 = _inputs(batch_size, dim)
    expected = reference.vicreg_covariance(z1, z2)
    assert covariance_loss(z1, z2).item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(
    "weights", [(25.0, 25.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0, 0.0), (0.0, 0.0, 1.0)]
)
def test_total_is_the_weighted_sum(weights):
    z1, z2 = _inputs(6, 8)
    expected = (
        weights[0] * reference.mse(z1, z2)
        + weights[1] * reference.vicreg_variance(z1, z2)
        + weights[2] * reference.vicreg_covariance(z1, z2)
    )
    assert vicreg_loss_func(z1, z2, *weights).item() == pytest.approx(expected, rel=1e-10)


def test_analytic_values():
    # columns of +-10 with zero mean and orthogonal: no hinge, no covariance, identical views.
    z = 10 * torch.tensor([[1, 1], [1, -1], [-1, 1], [-1, -1]], dtype=torch.float64)
    assert vicreg_loss_func(z, z.clone(), 25.0, 25.0, 1.0).item() == pytest.approx(0.0, abs=1e-12)
    # constant inputs: std = sqrt(1e-4) = 0.01, hinge 0.99 per dimension, for each of the inputs.
    c = torch.ones(4, 3, dtype=torch.float64)
    assert variance_loss(c, c).item() == pytest.approx(2 * 0.99, rel=1e-12)


def test_gradient_reaches_both_inputs():
    z1, z2 = leaves(*_inputs(6, 8))
    vicreg_loss_func(z1, z2, 25.0, 25.0, 1.0).backward()
    assert has_gradient(z1) and has_gradient(z2)


def test_autocast_bfloat16():
    z1, z2 = _inputs(16, 32)
    assert_autocast_close(vicreg_loss_func, [z1, z2, 25.0, 25.0, 1.0])
