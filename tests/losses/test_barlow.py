import pytest
import torch
import torch.distributed as dist

from cassle.losses import barlow_loss_func

from . import reference
from .checks import assert_autocast_close, has_gradient, leaves, randn


@pytest.mark.parametrize("batch_size", [2, 3, 8])
@pytest.mark.parametrize("dim", [4, 16])
@pytest.mark.parametrize("lamb,scale", [(0.0, 1.0), (5e-3, 0.1), (0.3, 0.025)])
def test_matches_explicit_reference(batch_size, dim, lamb, scale):
    z1 = randn(batch_size, dim, seed=1) * 3 + 1
    z2 = randn(batch_size, dim, seed=2) * 0.2 - 2
    got = barlow_loss_func(z1, z2, lamb, scale)
    assert got.item() == pytest.approx(reference.barlow(z1, z2, lamb, scale), rel=1e-9)


def test_standardises_like_batchnorm_in_training_mode():
    z1, z2 = randn(6, 5, seed=3) * 0.01, randn(6, 5, seed=4) * 0.01  # small variance: eps matters
    bn = torch.nn.BatchNorm1d(5, affine=False, dtype=torch.float64).train()
    c = bn(z1).t() @ bn(z2) / 6
    off = c - torch.diag(torch.diagonal(c))
    expected = 0.1 * ((1 - torch.diagonal(c)).pow(2).sum() + 5e-3 * off.pow(2).sum())
    torch.testing.assert_close(barlow_loss_func(z1, z2, 5e-3, 0.1), expected)


def test_identical_inputs_with_no_off_diagonal_weight_give_zero():
    # standardised columns: C_ii = 1 / (1 + eps), so the loss is D (eps / (1 + eps))^2 ~ 0.
    z = randn(16, 6, seed=5)
    z = (z - z.mean(0)) / z.std(0, unbiased=False)
    assert barlow_loss_func(z, z.clone(), 0.0, 1.0).item() == pytest.approx(0.0, abs=1e-8)


def test_off_diagonal_weight_and_scale():
    z1, z2 = randn(8, 4, seed=6), randn(8, 4, seed=7)
    base = barlow_loss_func(z1, z2, 0.0, 1.0)
    with_off = barlow_loss_func(z1, z2, 1.0, 1.0)
    off = with_off - base
    assert off.item() > 0
    torch.testing.assert_close(barlow_loss_func(z1, z2, 0.25, 0.1), 0.1 * (base + 0.25 * off))


def test_invariant_to_per_dimension_affine_maps():
    z1, z2 = randn(8, 4, seed=8), randn(8, 4, seed=9)
    scale = torch.tensor([0.5, 2.0, 3.0, 10.0], dtype=torch.float64)
    shift = torch.tensor([1.0, -4.0, 0.0, 7.0], dtype=torch.float64)
    torch.testing.assert_close(
        barlow_loss_func(z1 * scale + shift, z2, 5e-3, 0.1),
        barlow_loss_func(z1, z2, 5e-3, 0.1),
        rtol=1e-4, atol=1e-6,
    )


def test_gradient_reaches_both_inputs():
    z1, z2 = leaves(randn(8, 4, seed=10), randn(8, 4, seed=11))
    barlow_loss_func(z1, z2, 5e-3, 0.1).backward()
    assert has_gradient(z1) and has_gradient(z2)


def test_distributed_average_is_forward_only(monkeypatch):
    """Under DDP: C averaged over devices in the forward; gradient of the local part times 1/W."""
    other_device = randn(4, 4, seed=12) * 0.1
    calls = []

    def fake_all_reduce(tensor, *args, **kwargs):
        calls.append(tensor.shape)
        tensor.add_(other_device)  # sum with the other device's matrix, in place like NCCL

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda *a, **k: 2)
    monkeypatch.setattr(dist, "all_reduce", fake_all_reduce)

    z1, z2 = leaves(randn(8, 4, seed=13), randn(8, 4, seed=14))
    loss = barlow_loss_func(z1, z2, 0.5, 0.1)
    loss.backward()
    assert calls == [torch.Size([4, 4])]

    # Reference: the local C with autograd plus the other device's C as a constant, over W = 2.
    r1, r2 = leaves(z1, z2)
    n1 = torch.nn.functional.batch_norm(r1, None, None, training=True, eps=1e-5)
    n2 = torch.nn.functional.batch_norm(r2, None, None, training=True, eps=1e-5)
    c = (n1.t() @ n2 / 8 + other_device) / 2
    off = c - torch.diag(torch.diagonal(c))
    expected = 0.1 * ((1 - torch.diagonal(c)).pow(2).sum() + 0.5 * off.pow(2).sum())
    expected.backward()
    torch.testing.assert_close(loss, expected)
    torch.testing.assert_close(z1.grad, r1.grad)
    torch.testing.assert_close(z2.grad, r2.grad)


def test_no_all_reduce_without_process_group(monkeypatch):
    def fail(*args, **kwargs):
        raise AssertionError("all_reduce called without an initialised process group")

    monkeypatch.setattr(dist, "all_reduce", fail)
    barlow_loss_func(randn(4, 3, seed=15), randn(4, 3, seed=16), 5e-3, 0.1)


def test_autocast_bfloat16():
    args = [randn(16, 32, seed=17), randn(16, 32, seed=18), 5e-3, 0.1]
    assert_autocast_close(barlow_loss_func, args)
