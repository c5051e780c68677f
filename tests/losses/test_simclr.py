import math

import pytest
import torch

from cassle.losses import simclr_loss_func

from . import reference
from .checks import assert_autocast_close, basis, has_gradient, leaves, randn

BATCH_SIZES = [2, 3, 8]
DIMS = [4, 16]
TEMPERATURES = [0.07, 0.2, 0.5]


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_matches_explicit_reference(batch_size, dim, temperature):
    z1 = randn(batch_size, dim, seed=1)
    z2 = randn(batch_size, dim, seed=2)
    got = simclr_loss_func(z1, z2, temperature)
    assert got.dtype == torch.float64
    assert got.item() == pytest.approx(reference.simclr(z1, z2, temperature), rel=1e-10)


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
def test_symmetric_in_the_views(batch_size):
    z1, z2 = randn(batch_size, 8, seed=3), randn(batch_size, 8, seed=4)
    torch.testing.assert_close(simclr_loss_func(z1, z2, 0.2), simclr_loss_func(z2, z1, 0.2))


def test_normalises_its_inputs():
    z1, z2 = randn(4, 8, seed=5), randn(4, 8, seed=6)
    scales = torch.tensor([[0.1], [3.0], [7.0], [0.5]], dtype=torch.float64)
    torch.testing.assert_close(
        simclr_loss_func(z1 * scales, z2 * 4.0, 0.2), simclr_loss_func(z1, z2, 0.2)
    )


@pytest.mark.parametrize("batch_size", [2, 3, 4])
@pytest.mark.parametrize("temperature", TEMPERATURES)
def test_aligned_orthogonal_embeddings(batch_size, temperature):
    # u_i . u_i' = 1, every other pair orthogonal: each row sees e^{1/T} + (2B - 2) e^0.
    z = basis(8, *range(batch_size))
    expected = math.log(1 + (2 * batch_size - 2) * math.exp(-1 / temperature))
    assert simclr_loss_func(z, z.clone(), temperature).item() == pytest.approx(expected, rel=1e-10)


def test_gradient_reaches_both_views():
    z1, z2 = leaves(randn(4, 8, seed=7), randn(4, 8, seed=8))
    simclr_loss_func(z1, z2, 0.2).backward()
    assert has_gradient(z1) and has_gradient(z2)


def test_autocast_bfloat16():
    assert_autocast_close(simclr_loss_func, [randn(8, 16, seed=9), randn(8, 16, seed=10), 0.1])


def test_stable_at_a_tiny_temperature_in_float32():
    # logits reach 1 / 0.005 = 200: exp would overflow float32 without the row-max shift
    z1, z2 = randn(4, 8, seed=11), randn(4, 8, seed=12)
    got = simclr_loss_func(z1.float(), z2.float(), 0.005)
    assert got.item() == pytest.approx(reference.simclr(z1, z2, 0.005), rel=1e-4)
