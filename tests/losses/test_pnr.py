import math

import pytest
import torch
import torch.nn.functional as F

from cassle.losses import (
    barlow_pnr_loss_func,
    barlow_pnr_terms,
    byol_pnr_loss_func,
    byol_pnr_terms,
    moco_pnr_loss_func,
    moco_pnr_terms,
    simclr_pnr_loss_func,
    simclr_pnr_terms,
    vicreg_pnr_loss_func,
    vicreg_pnr_terms,
)

from . import reference
from .checks import assert_autocast_close, basis, has_gradient, leaves, randn, unit_rows

BATCH_SIZES = [2, 3, 8]
DIMS = [4, 16]


def _views(batch_size, dim, first_seed):
    return [randn(batch_size, dim, seed=first_seed + k) for k in range(2)]


# =============================================================================== SimCLR-PNR


def _simclr_inputs(batch_size, dim):
    return [randn(batch_size, dim, seed=s) for s in range(10, 16)]  # z1, z2, p1, p2, f1, f2


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("temperature", [0.07, 0.2, 0.5])
def test_simclr_pnr_matches_explicit_reference(batch_size, dim, temperature):
    args = _simclr_inputs(batch_size, dim)
    main_ref, reg_ref = reference.simclr_pnr(*args, temperature)
    main, reg = simclr_pnr_terms(*args, temperature)
    assert main.item() == pytest.approx(main_ref, rel=1e-10)
    assert reg.item() == pytest.approx(reg_ref, rel=1e-10)
    total = simclr_pnr_loss_func(*args, temperature)
    assert total.item() == pytest.approx(main_ref + reg_ref, rel=1e-10)


def test_simclr_pnr_is_symmetric_in_the_views():
    z1, z2, p1, p2, f1, f2 = _simclr_inputs(4, 8)
    torch.testing.assert_close(
        simclr_pnr_loss_func(z1, z2, p1, p2, f1, f2, 0.2),
        simclr_pnr_loss_func(z2, z1, p2, p1, f2, f1, 0.2),
    )


def _orthogonal_simclr_setup():
    """B = 2, D = 8: u = [e0, e1, e2, e3], v = [e4, e5, e6, e7], q = v; all dot products 0."""
    e = basis(8, *range(8))
    z1, z2, f1, f2 = e[0:2].clone(), e[2:4].clone(), e[4:6].clone(), e[6:8].clone()
    return z1, z2, f1.clone(), f2.clone(), f1, f2


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_simclr_pnr_main_keeps_other_view_teacher_as_negative(temperature):
    """[QUIRK] v_i' is a negative of row i in L_main: aligning it with u_i raises L_main."""
    z1, z2, p1, p2, f1, f2 = _orthogonal_simclr_setup()
    before, _ = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, temperature)
    f2[0] = z1[0]  # v_{0'} = v_2 := u_0
    after, _ = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, temperature)
    # row 0's denominator: 3 current + 3 teacher terms of e^0 = 6 -> 5 + e^{1/T}; 4 rows in the mean
    expected = 0.25 * math.log((5 + math.exp(1 / temperature)) / 6)
    assert (after - before).item() == pytest.approx(expected, rel=1e-10)


def test_simclr_pnr_main_leaves_out_own_teacher_row():
    z1, z2, p1, p2, f1, f2 = _orthogonal_simclr_setup()
    before, _ = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, 0.2)
    f1[0] = z1[0]  # v_0 := u_0, which only row 0 could see, and row 0 must leave it out
    after, _ = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, 0.2)
    assert after.item() == pytest.approx(before.item(), rel=1e-12)


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_simclr_pnr_main_positive_in_its_own_denominator(temperature):
    e = basis(8, *range(8))
    z = e[0:2]
    main, _ = simclr_pnr_terms(z, z.clone(), e[4:6], e[6:8], e[4:6], e[6:8], temperature)
    # row i: e^{1/T} / (e^{1/T} + 2 current + 3 teacher negatives at e^0)
    assert main.item() == pytest.approx(math.log(1 + 5 * math.exp(-1 / temperature)), rel=1e-10)


@pytest.mark.parametrize("temperature", [0.1, 0.2])
def test_simclr_pnr_reg_excludes_its_positive_from_the_denominator(temperature):
    """[QUIRK] L_reg,i = -q_i.v_i/T + log(sum_{j!=i} e^{q_i.v_j/T} + sum_{j!=i} e^{q_i.u_j/T})."""
    e = basis(8, *range(8))
    q1, q2 = e[0:2], e[2:4]  # q = v, orthogonal to u
    _, reg = simclr_pnr_terms(e[4:6], e[6:8], q1, q2, q1.clone(), q2.clone(), temperature)
    assert reg.item() == pytest.approx(math.log(6) - 1 / temperature, rel=1e-10)


def test_simclr_pnr_reg_leaves_out_own_current_row_but_not_the_other_view():
    e = basis(8, *range(8))
    p1, p2, f1, f2 = e[0:2], e[2:4], e[0:2].clone(), e[2:4].clone()
    z1, z2 = e[4:6].clone(), e[6:8].clone()
    _, before = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, 0.2)

    own = z1.clone()
    own[0] = p1[0]  # u_0 := q_0: row 0 leaves u_0 out, every other q_j is orthogonal to it
    _, after_own = simclr_pnr_terms(own, z2, p1, p2, f1, f2, 0.2)
    assert after_own.item() == pytest.approx(before.item(), rel=1e-12)

    other = z2.clone()
    other[0] = p1[0]  # u_{0'} = u_2 := q_0: a negative of row 0
    _, after_other = simclr_pnr_terms(z1, other, p1, p2, f1, f2, 0.2)
    expected = 0.25 * math.log((5 + math.exp(5)) / 6)
    assert (after_other - before).item() == pytest.approx(expected, rel=1e-10)


def test_simclr_pnr_gradients():
    z1, z2, p1, p2, f1, f2 = leaves(*_simclr_inputs(4, 8))
    simclr_pnr_loss_func(z1, z2, p1, p2, f1, f2, 0.2).backward()
    assert all(has_gradient(t) for t in (z1, z2, p1, p2))
    assert f1.grad is None and f2.grad is None


def test_simclr_pnr_reg_is_not_detached_from_u_and_main_ignores_q():
    z1, z2, p1, p2, f1, f2 = leaves(*_simclr_inputs(4, 8))
    main, reg = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, 0.2)
    reg.backward(retain_graph=True)
    assert has_gradient(z1) and has_gradient(z2)  # through the u_j negatives of q_i
    for t in (z1, z2, p1, p2):
        t.grad = None
    main.backward()
    assert p1.grad is None and p2.grad is None


def test_simclr_pnr_stable_at_a_tiny_temperature_in_float32():
    args = _simclr_inputs(4, 8)
    main_ref, reg_ref = reference.simclr_pnr(*args, 0.005)
    got = simclr_pnr_loss_func(*[a.float() for a in args], 0.005)
    assert got.item() == pytest.approx(main_ref + reg_ref, rel=1e-4)


def test_simclr_pnr_autocast_bfloat16():
    assert_autocast_close(simclr_pnr_loss_func, _simclr_inputs(8, 16) + [0.2])


# ================================================================================= MoCo-PNR

KEY_QUEUE, FROZEN_QUEUE = 5, 7  # differ from each other, B and D


def _moco_inputs(batch_size, dim):
    query, key, predicted, frozen = [unit_rows(batch_size, dim, seed=s) for s in range(20, 24)]
    key_queue = unit_rows(KEY_QUEUE, dim, seed=24).t()
    frozen_queue = unit_rows(FROZEN_QUEUE, dim, seed=25).t()
    return [query, key, predicted, frozen, key_queue, frozen_queue]


@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("temperature,distill_temperature", [(0.2, 0.5), (0.07, 0.2), (0.5, 0.1)])
def test_moco_pnr_matches_explicit_reference(batch_size, dim, temperature, distill_temperature):
    query, key, predicted, frozen, key_queue, frozen_queue = args = _moco_inputs(batch_size, dim)
    queues = [key_queue, frozen_queue]
    main_ref = reference.queue_infonce(query, key, queues, temperature)
    reg_ref = reference.queue_infonce(predicted, frozen, queues, distill_temperature)
    main, reg = moco_pnr_terms(*args, temperature, distill_temperature)
    assert main.item() == pytest.approx(main_ref, rel=1e-10)
    assert reg.item() == pytest.approx(reg_ref, rel=1e-10)
    total = moco_pnr_loss_func(*args, temperature, distill_temperature)
    assert total.item() == pytest.approx(main_ref + reg_ref, rel=1e-10)


@pytest.mark.parametrize("queue_index", [4, 5], ids=["key_queue", "frozen_queue"])
@pytest.mark.parametrize("term", ["main", "reg"])
def test_moco_pnr_both_queues_are_negatives_of_both_terms(queue_index, term):
    """q = k = [e0, e1], p = v = [e2, e3], queues made of e8..e15: all negatives at e^0."""
    temperature, distill_temperature = 0.2, 0.5
    e = basis(16, *range(16))
    args = [e[0:2], e[0:2].clone(), e[2:4], e[2:4].clone(), e[8:12].t(), e[12:16].t()]
    before = moco_pnr_terms(*args, temperature, distill_temperature)

    if term == "main":
        anchor, tau, changed = e[0], temperature, 0
    else:
        anchor, tau, changed = e[2], distill_temperature, 1
    queue = args[queue_index].clone()
    queue[:, 0] = anchor  # one negative of row 0 now equals its anchor
    args[queue_index] = queue
    after = moco_pnr_terms(*args, temperature, distill_temperature)

    s = math.exp(1 / tau) + 8
    expected = 0.5 * math.log((s - 1 + math.exp(1 / tau)) / s)
    assert (after[changed] - before[changed]).item() == pytest.approx(expected, rel=1e-10)
    assert after[1 - changed].item() == pytest.approx(before[1 - changed].item(), rel=1e-12)


def test_moco_pnr_gradients():
    query, key, predicted, frozen, key_queue, frozen_queue = leaves(*_moco_inputs(4, 8))
    moco_pnr_loss_func(query, key, predicted, frozen, key_queue, frozen_queue, 0.2, 0.2).backward()
    assert has_gradient(query) and has_gradient(predicted)
    for constant in (key, frozen, key_queue, frozen_queue):
        assert constant.grad is None


def test_moco_pnr_stable_at_a_tiny_temperature_in_float32():
    query, key, predicted, frozen, key_queue, frozen_queue = args = _moco_inputs(4, 8)
    queues = [key_queue, frozen_queue]
    expected = reference.queue_infonce(query, key, queues, 0.005) + reference.queue_infonce(
        predicted, frozen, queues, 0.004
    )
    got = moco_pnr_loss_func(*[a.float() for a in args], 0.005, 0.004)
    assert got.item() == pytest.approx(expected, rel=1e-4)


def test_moco_pnr_autocast_bfloat16():
    assert_autocast_close(moco_pnr_loss_func, _moco_inputs(8, 16) + [0.2, 0.5])


# ====================================================== BYOL / Barlow / VICReg: lambda P - mu Nn

BARLOW_LAMB, BARLOW_SCALE = 0.05, 0.3  # not the defaults, so a swap would show


def _barlow_loss(p1, p2, f1, f2, distill_lamb, negative_lamb):
    return barlow_pnr_loss_func(
        p1, p2, f1, f2, distill_lamb, negative_lamb,
        distill_barlow_lamb=BARLOW_LAMB, distill_scale_loss=BARLOW_SCALE,
    )


def _barlow_terms(p1, p2, f1, f2):
    return barlow_pnr_terms(
        p1, p2, f1, f2, distill_barlow_lamb=BARLOW_LAMB, distill_scale_loss=BARLOW_SCALE
    )


def _barlow_reference(p1, p2, f1, f2):
    return reference.barlow_pnr(p1, p2, f1, f2, BARLOW_LAMB, BARLOW_SCALE)


PULL_PUSH = {
    "byol": (byol_pnr_loss_func, byol_pnr_terms, reference.byol_pnr),
    "barlow": (_barlow_loss, _barlow_terms, _barlow_reference),
    "vicreg": (vicreg_pnr_loss_func, vicreg_pnr_terms, reference.vicreg_pnr),
}
METHODS = pytest.mark.parametrize("method", list(PULL_PUSH))


def _pull_push_inputs(batch_size, dim):
    return [randn(batch_size, dim, seed=s) for s in range(30, 34)]  # p1, p2, f1, f2


@METHODS
@pytest.mark.parametrize("batch_size", BATCH_SIZES)
@pytest.mark.parametrize("dim", DIMS)
@pytest.mark.parametrize("lambdas", [(1.0, 0.5), (1.0, 0.0), (0.0, 1.0), (25.0, 23.0)])
def test_pull_push_matches_explicit_reference(method, batch_size, dim, lambdas):
    loss_fn, terms_fn, reference_fn = PULL_PUSH[method]
    args = _pull_push_inputs(batch_size, dim)
    positive_ref, negative_ref = reference_fn(*args)
    positive, negative = terms_fn(*args)
    assert positive.item() == pytest.approx(positive_ref, rel=1e-9)
    assert negative.item() == pytest.approx(negative_ref, rel=1e-9)
    distill_lamb, negative_lamb = lambdas
    expected = distill_lamb * positive_ref - negative_lamb * negative_ref
    assert loss_fn(*args, distill_lamb, negative_lamb).item() == pytest.approx(
        expected, rel=1e-9, abs=1e-12
    )


@METHODS
def test_pull_push_teacher_is_constant(method):
    loss_fn = PULL_PUSH[method][0]
    p1, p2, f1, f2 = leaves(*_pull_push_inputs(4, 8))
    loss_fn(p1, p2, f1, f2, 1.0, 0.5).backward()
    assert has_gradient(p1) and has_gradient(p2)
    assert f1.grad is None and f2.grad is None


def _descent_step(loss_fn, p1, p2, f1, f2, distill_lamb, negative_lamb, lr=1e-3):
    p1, p2 = leaves(p1, p2)
    loss_fn(p1, p2, f1, f2, distill_lamb, negative_lamb).backward()
    return p1.detach() - lr * p1.grad, p2.detach() - lr * p2.grad


def _cross_cos(p1, p2, f1, f2):
    return F.cosine_similarity(p1, f2).mean() + F.cosine_similarity(p2, f1).mean()


def _cross_distance(p1, p2, f1, f2):
    return (p1 - f2).pow(2).sum() + (p2 - f1).pow(2).sum()


@METHODS
def test_pull_push_descent_pushes_away_from_the_other_view(method):
    """With mu > 0 (lambda = 0), a descent step moves p_a away from f_b."""
    loss_fn, terms_fn, _ = PULL_PUSH[method]
    p1, p2, f1, f2 = _pull_push_inputs(8, 16)
    n1, n2 = _descent_step(loss_fn, p1, p2, f1, f2, 0.0, 0.5)
    assert terms_fn(n1, n2, f1, f2)[1] > terms_fn(p1, p2, f1, f2)[1]
    if method == "vicreg":
        assert _cross_distance(n1, n2, f1, f2) > _cross_distance(p1, p2, f1, f2)
    else:
        assert _cross_cos(n1, n2, f1, f2) < _cross_cos(p1, p2, f1, f2)


@METHODS
def test_pull_push_descent_pulls_towards_the_same_view(method):
    """With lambda > 0 (mu = 0), a descent step lowers P."""
    loss_fn, terms_fn, _ = PULL_PUSH[method]
    p1, p2, f1, f2 = _pull_push_inputs(8, 16)
    n1, n2 = _descent_step(loss_fn, p1, p2, f1, f2, 1.0, 0.0)
    assert terms_fn(n1, n2, f1, f2)[0] < terms_fn(p1, p2, f1, f2)[0]


@pytest.mark.parametrize("method", ["byol", "barlow"])
def test_higher_cosine_to_the_other_view_raises_the_loss(method):
    loss_fn = PULL_PUSH[method][0]
    p1, p2, f1, f2 = _pull_push_inputs(8, 16)
    closer = 0.5 * f2 + 0.5 * p1 / p1.norm(dim=1, keepdim=True) * f2.norm(dim=1, keepdim=True)
    assert F.cosine_similarity(p1, closer).mean() > F.cosine_similarity(p1, f2).mean()
    assert loss_fn(p1, p2, f1, closer, 0.0, 0.5) > loss_fn(p1, p2, f1, f2, 0.0, 0.5)


def test_byol_pnr_analytic_values():
    p1, p2 = _views(4, 8, 40)
    # p_a along f_a: P = 0; p_a along -f_b: 2 - 2cos = 4, Nn = 4
    positive, negative = byol_pnr_terms(p1, p2, 2 * p1, 3 * p2)
    assert positive.item() == pytest.approx(0.0, abs=1e-12)
    positive, negative = byol_pnr_terms(p1, p2, -p2, -p1)
    assert negative.item() == pytest.approx(4.0, rel=1e-12)
    assert byol_pnr_loss_func(p1, p2, -p2, -p1, 1.0, 0.5).item() == pytest.approx(
        positive.item() - 2.0, rel=1e-12
    )


def test_barlow_pnr_negative_is_minus_cosine():
    p1, p2 = _views(4, 8, 41)
    _, negative = barlow_pnr_terms(p1, p2, -p2, 5 * p1, 5e-3, 0.1)  # cos(p1, f2)=1, cos(p2, f1)=-1
    assert negative.item() == pytest.approx(0.0, abs=1e-12)
    _, negative = barlow_pnr_terms(p1, p2, 2 * p2, 5 * p1, 5e-3, 0.1)
    assert negative.item() == pytest.approx(-1.0, rel=1e-12)


def test_vicreg_pnr_minimiser():
    """Per sample, lambda P - mu Nn is minimal at p_a = (lambda f_a - mu f_b) / (lambda - mu)."""
    f1, f2 = _views(4, 8, 42)
    lamb, mu = 25.0, 23.0
    p1, p2 = leaves((lamb * f1 - mu * f2) / (lamb - mu), (lamb * f2 - mu * f1) / (lamb - mu))
    loss = vicreg_pnr_loss_func(p1, p2, f1, f2, lamb, mu)
    loss.backward()
    torch.testing.assert_close(p1.grad, torch.zeros_like(p1), atol=1e-12, rtol=0)
    torch.testing.assert_close(p2.grad, torch.zeros_like(p2), atol=1e-12, rtol=0)
    shifted = vicreg_pnr_loss_func(p1.detach() + 0.01, p2.detach(), f1, f2, lamb, mu)
    assert shifted > loss


@METHODS
def test_pull_push_autocast_bfloat16(method):
    loss_fn = PULL_PUSH[method][0]
    assert_autocast_close(loss_fn, _pull_push_inputs(16, 32) + [1.0, 0.5])
