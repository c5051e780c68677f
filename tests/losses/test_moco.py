import math

import pytest

from cassle.losses import moco_loss_func

from . import reference
from .checks import assert_autocast_close, basis, has_gradient, leaves, unit_rows

QUEUE_SIZE = 7  # differs from B and D so that a transposed queue cannot pass


@pytest.mark.parametrize("batch_size", [2, 3, 8])
@pytest.mark.parametrize("dim", [4, 16])
@pytest.mark.parametrize("temperature", [0.07, 0.2, 0.5])
def test_matches_explicit_reference(batch_size, dim, temperature):
    query = unit_rows(batch_size, dim, seed=1)
    key = unit_rows(batch_size, dim, seed=2)
    queue = unit_rows(QUEUE_SIZE, dim, seed=3).t()
    got = moco_loss_func(query, key, queue, temperature)
    expected = reference.queue_infonce(query, key, [queue], temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_aligned_key_and_orthogonal_queue(temperature):
    # q_i = k_i and every queue column orthogonal to the queries: log(1 + K e^{-1/T}).
    query = basis(8, 0, 1)
    queue = basis(8, 2, 3, 4, 5, 6).t()
    expected = math.log(1 + 5 * math.exp(-1 / temperature))
    got = moco_loss_func(query, query.clone(), queue, temperature)
    assert got.item() == pytest.approx(expected, rel=1e-10)


def test_queue_column_aligned_with_query_raises_loss():
    query = basis(8, 0, 1)
    queue = basis(8, 2, 3, 4).t().clone()
    before = moco_loss_func(query, query.clone(), queue, 0.2)
    queue[:, 1] = query[0]
    after = moco_loss_func(query, query.clone(), queue, 0.2)
    # only row 0 changes: its denominator gains e^{1/T} - e^0, averaged over 2 rows.
    s = math.exp(5) + 3
    assert (after - before).item() == pytest.approx(0.5 * math.log((s - 1 + math.exp(5)) / s))


def test_gradient_only_into_the_query():
    query, key, queue = leaves(
        unit_rows(4, 8, seed=4), unit_rows(4, 8, seed=5), unit_rows(QUEUE_SIZE, 8, seed=6).t()
    )
    moco_loss_func(query, key, queue, 0.2).backward()
    assert has_gradient(query)
    assert key.grad is None
    assert queue.grad is None


def test_autocast_bfloat16():
    args = [unit_rows(8, 16, seed=7), unit_rows(8, 16, seed=8), unit_rows(32, 16, seed=9).t(), 0.2]
    assert_autocast_close(moco_loss_func, args)


def test_stable_at_a_tiny_temperature_in_float32():
    query, key = unit_rows(4, 8, seed=10), unit_rows(4, 8, seed=11)
    queue = unit_rows(6, 8, seed=12).t()
    got = moco_loss_func(query.float(), key.float(), queue.float(), 0.005)
    expected = reference.queue_infonce(query, key, [queue], 0.005)
    assert got.item() == pytest.approx(expected, rel=1e-4)
