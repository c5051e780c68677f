import math

import pytest
import torch

from cassle.losses import (
    contrastive_distill_loss_func,
    simclr_distill_loss_func,
    simclr_distill_reverse_loss_func,
)

from . import reference
from .checks import assert_autocast_close, basis, has_gradient, leaves, randn


def _inputs(batch_size, dim):
    return [randn(batch_size, dim, seed=s) for s in (1, 2, 3, 4)]  # p1, p2, f1, f2


@pytest.mark.parametrize("batch_size", [2, 3, 8])
@pytest.mark.parametrize("dim", [4, 16])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 0.5])
def test_matches_explicit_reference(batch_size, dim, temperature):
    p1, p2, f1, f2 = _inputs(batch_size, dim)
    q, v = reference.rows(p1) + reference.rows(p2), reference.rows(f1) + reference.rows(f2)
    forward = reference.contrastive_direction(q, v, temperature)
    reverse = reference.contrastive_direction(v, q, temperature)
    args = (p1, p2, f1, f2, temperature)
    assert simclr_distill_loss_func(*args).item() == pytest.approx(forward, rel=1e-10)
    assert simclr_distill_reverse_loss_func(*args).item() == pytest.approx(reverse, rel=1e-10)
    both = contrastive_distill_loss_func(*args).item()
    assert both == pytest.approx(0.5 * (forward + reverse), rel=1e-10)


def test_directions_differ():
    # guards against the reverse helper silently computing the forward direction
    p1, p2, f1, f2 = _inputs(4, 8)
    forward = simclr_distill_loss_func(p1, p2, f1, f2, 0.2)
    reverse = simclr_distill_reverse_loss_func(p1, p2, f1, f2, 0.2)
    assert abs(forward.item() - reverse.item()) > 1e-3


@pytest.mark.parametrize("batch_size", [1, 2, 4])
@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_positive_stays_in_its_own_denominator(batch_size, temperature):
    # q = v = orthonormal rows: -log(e^{1/T} / (e^{1/T} + (2B - 1))) in both directions.
    e = basis(8, *range(2 * batch_size))
    p1, p2 = e[:batch_size], e[batch_size:]
    expected = math.log(1 + (2 * batch_size - 1) * math.exp(-1 / temperature))
    args = (p1, p2, p1.clone(), p2.clone(), temperature)
    assert simclr_distill_loss_func(*args).item() == pytest.approx(expected, rel=1e-10)
    assert simclr_distill_reverse_loss_func(*args).item() == pytest.approx(expected, rel=1e-10)


def test_normalises_its_inputs():
    p1, p2, f1, f2 = _inputs(3, 8)
    torch.testing.assert_close(
        contrastive_distill_loss_func(5 * p1, 0.1 * p2, 2 * f1, 0.3 * f2, 0.2),
        contrastive_distill_loss_func(p1, p2, f1, f2, 0.2),
    )


@pytest.mark.parametrize(
    "loss_fn",
    [simclr_distill_loss_func, simclr_distill_reverse_loss_func, contrastive_distill_loss_func],
)
def test_teacher_constant_predictions_trained(loss_fn):
    p1, p2, f1, f2 = leaves(*_inputs(4, 8))
    loss_fn(p1, p2, f1, f2, 0.2).backward()
    assert has_gradient(p1) and has_gradient(p2)
    assert f1.grad is None and f2.grad is None


def test_swapping_arguments_gives_the_reverse_value_but_no_gradient_to_p():
    """Documents why the regulariser must call the reverse helper, not swap the arguments."""
    p1, p2, f1, f2 = leaves(*_inputs(4, 8))
    swapped = simclr_distill_loss_func(f1, f2, p1, p2, 0.2)
    torch.testing.assert_close(swapped, simclr_distill_reverse_loss_func(p1, p2, f1, f2, 0.2))
    swapped.backward()
    assert p1.grad is None and p2.grad is None


@pytest.mark.parametrize(
    "loss_fn",
    [simclr_distill_loss_func, simclr_distill_reverse_loss_func, contrastive_distill_loss_func],
)
def test_autocast_bfloat16(loss_fn):
    assert_autocast_close(loss_fn, _inputs(8, 16) + [0.2])


def test_stable_at_a_tiny_temperature_in_float32():
    p1, p2, f1, f2 = _inputs(4, 8)
    q, v = reference.rows(p1) + reference.rows(p2), reference.rows(f1) + reference.rows(f2)
    expected = 0.5 * (
        reference.contrastive_direction(q, v, 0.005) + reference.contrastive_direction(v, q, 0.005)
    )
    got = contrastive_distill_loss_func(p1.float(), p2.float(), f1.float(), f2.float(), 0.005)
    assert got.item() == pytest.approx(expected, rel=1e-4)
