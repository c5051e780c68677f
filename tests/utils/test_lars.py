"""LARS against a hand-written reference step (docs/official.md §3: trust ratio, clipping, exclusion, guards)."""

import copy
import math

import pytest
import torch
from torch import nn

from cassle.utils.lars import LARS


def _model(zero_bias: bool = False) -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3)).double()
    with torch.no_grad():
        # Non-trivial BN affine parameters so that their norms are not special.
        model[1].weight.copy_(torch.tensor([1.5, 0.7, 1.1]))
        model[1].bias.copy_(torch.tensor([0.2, -0.3, 0.1]))
        if zero_bias:
            model[0].bias.zero_()
    return model


def _set_grads(model: nn.Module, scales: dict, seed: int = 1) -> None:
    """Give every parameter a deterministic gradient, scaled per parameter name."""
    gen = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        p.grad = torch.randn(p.shape, generator=gen, dtype=p.dtype) * scales.get(name, 1.0)


def _reference_step(params, grads, bufs, lr, momentum, wd, eta, clip, exclude, nesterov=False):
    """The update written out in plain arithmetic, one parameter at a time."""
    new_params = {}
    for name, p in params.items():
        g = grads.get(name)
        if g is None:
            new_params[name] = p.clone()
            continue
        g = g.clone()
        p_norm = float(p.norm())
        g_norm = float(g.norm())
        if exclude and p.ndim == 1:
            pass  # plain SGD on the raw gradient, no weight decay
        elif p_norm == 0.0 or g_norm == 0.0:
            pass  # zero-norm guard: no trust ratio, no weight decay
        else:
            r = eta * p_norm / (g_norm + wd * p_norm + 1e-8)
            if clip:
                r = min(r / lr, 1.0)
            g = (g + wd * p) * r
        if name in bufs:
            bufs[name] = momentum * bufs[name] + g
        else:
            bufs[name] = g.clone()
        d = g + momentum * bufs[name] if nesterov else bufs[name]
        new_params[name] = p - lr * d
    return new_params


def _run_and_compare(clip, exclude, zero_bias=False, scales=None, steps=1, nesterov=False,
                     none_grad=()):
    lr, momentum, wd, eta = 0.3, 0.9, 0.05, 0.02
    model = _model(zero_bias)
    opt = LARS(model.parameters(), lr=lr, momentum=momentum, weight_decay=wd, eta=eta,
               clip_lr=clip, exclude_bias_n_norm=exclude, nesterov=nesterov)
    ref_params = {n: p.detach().clone() for n, p in model.named_parameters()}
    bufs = {}
    for step in range(steps):
        _set_grads(model, scales or {}, seed=1 + step)
        for name, p in model.named_parameters():
            if name in none_grad:
                p.grad = None
        grads = {n: (p.grad.clone() if p.grad is not None else None)
                 for n, p in model.named_parameters()}
        opt.step()
        ref_params = _reference_step(ref_params, grads, bufs, lr, momentum, wd, eta, clip,
                                     exclude, nesterov)
        for name, p in model.named_parameters():
            torch.testing.assert_close(p.detach(), ref_params[name], rtol=1e-12, atol=1e-12,
                                       msg=f"{name} after step {step + 1}")
    return model, opt


def test_plain_matches_reference():
    _run_and_compare(clip=False, exclude=False)


def test_clip_matches_reference_and_binds_for_some_params():
    # Small gradient on the Linear weight -> r / lr > 1 -> clipped to 1;
    # large gradient on the BN weight -> r / lr < 1 -> not clipped.
    scales = {"0.weight": 1e-3, "1.weight": 10.0}
    model = _model()
    _set_grads(model, scales)
    lr, wd, eta = 0.3, 0.05, 0.02
    ratios = {}
    for name, p in model.named_parameters():
        r = eta * float(p.norm()) / (float(p.grad.norm()) + wd * float(p.norm()) + 1e-8)
        ratios[name] = r / lr
    assert ratios["0.weight"] > 1.0 and ratios["1.weight"] < 1.0
    _run_and_compare(clip=True, exclude=False, scales=scales)


def test_exclusion_gives_plain_sgd_without_weight_decay_to_1d_params():
    model, _ = _run_and_compare(clip=True, exclude=True)
    # Explicit check for one 1-D parameter: p1 = p0 - lr * g (momentum buffer = g at step 1).
    fresh = _model()
    _set_grads(fresh, {})
    expected = fresh[1].bias.detach() - 0.3 * fresh[1].bias.grad
    torch.testing.assert_close(model[1].bias.detach(), expected, rtol=0, atol=1e-15)


def test_zero_norm_guard_zero_bias_without_exclusion():
    model, _ = _run_and_compare(clip=True, exclude=False, zero_bias=True)
    fresh = _model(zero_bias=True)
    _set_grads(fresh, {})
    # ||p|| == 0: no trust ratio and no weight decay -> p1 = 0 - lr * g.
    expected = -0.3 * fresh[0].bias.grad
    torch.testing.assert_close(model[0].bias.detach(), expected, rtol=0, atol=1e-15)


def test_zero_gradient_gets_no_weight_decay():
    model = _model()
    opt = LARS(model.parameters(), lr=0.3, weight_decay=0.05, eta=0.02, clip_lr=True)
    _set_grads(model, {"0.weight": 0.0})
    before = model[0].weight.detach().clone()
    opt.step()
    torch.testing.assert_close(model[0].weight.detach(), before, rtol=0, atol=0)


def test_grad_none_is_skipped():
    model, opt = _run_and_compare(clip=True, exclude=False, none_grad=("1.bias",), steps=2)
    assert "momentum_buffer" not in opt.state.get(model[1].bias, {}) or \
        opt.state[model[1].bias]["momentum_buffer"] is None
    fresh = _model()
    torch.testing.assert_close(model[1].bias.detach(), fresh[1].bias.detach(), rtol=0, atol=0)


@pytest.mark.parametrize("clip,exclude", [(False, False), (True, False), (True, True)])
def test_two_consecutive_steps_use_the_momentum_buffer(clip, exclude):
    _run_and_compare(clip=clip, exclude=exclude, steps=2, scales={"0.weight": 1.0})


def test_nesterov_matches_reference():
    _run_and_compare(clip=True, exclude=False, steps=2, nesterov=True)


def test_weight_decay_restored_and_per_group_settings():
    model = _model()
    opt = LARS(
        [
            {"params": model[0].parameters(), "weight_decay": 0.05},
            {"params": model[1].parameters(), "lr": 0.1, "weight_decay": 0.0},
        ],
        lr=0.3, weight_decay=1e-4, eta=0.02, clip_lr=True,
    )
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    assert all(g["eta"] == 0.02 and g["clip_lr"] for g in opt.param_groups)
    ref = {n: p.detach().clone() for n, p in model.named_parameters()}
    _set_grads(model, {})
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    opt.step()
    assert [g["weight_decay"] for g in opt.param_groups] == [0.05, 0.0]
    exp0 = _reference_step({k: v for k, v in ref.items() if k.startswith("0.")}, grads, {},
                           0.3, 0.9, 0.05, 0.02, True, False)
    exp1 = _reference_step({k: v for k, v in ref.items() if k.startswith("1.")}, grads, {},
                           0.1, 0.9, 0.0, 0.02, True, False)
    for name, p in model.named_parameters():
        expected = exp0[name] if name.startswith("0.") else exp1[name]
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)
    # A group added later gets the LARS settings too.
    extra = nn.Parameter(torch.ones(2, dtype=torch.double))
    opt.add_param_group({"params": [extra]})
    assert opt.param_groups[-1]["eta"] == 0.02 and opt.param_groups[-1]["weight_decay"] == 1e-4


def test_closure_and_state_dict_roundtrip():
    model = _model()
    opt = LARS(model.parameters(), lr=0.3, weight_decay=1e-4, eta=0.02, clip_lr=True)
    x = torch.randn(8, 4, dtype=torch.double)

    def closure():
        opt.zero_grad()
        loss = model(x).pow(2).mean()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert torch.is_tensor(loss) and math.isfinite(float(loss))
    clone = _model()
    clone.load_state_dict(model.state_dict())
    opt2 = LARS(clone.parameters(), lr=0.3)
    opt2.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert opt2.param_groups[0]["clip_lr"] is True and opt2.param_groups[0]["eta"] == 0.02
    buf1 = opt.state[model[0].weight]["momentum_buffer"]
    buf2 = opt2.state[clone[0].weight]["momentum_buffer"]
    torch.testing.assert_close(buf1, buf2)


def test_step_hooks_fire_once_even_after_a_plain_sgd_exists():
    torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=0.1)  # hooks SGD.step on the class
    model = _model()
    opt = LARS(model.parameters(), lr=0.3, eta=0.02)
    calls = []
    opt.register_step_pre_hook(lambda *a: calls.append(1))
    _set_grads(model, {})
    opt.step()
    assert len(calls) == 1


def test_grad_scaler_unscales_before_lars():
    try:
        scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    except Exception as exc:  # pragma: no cover - depends on the torch build
        pytest.skip(f"no CPU GradScaler: {exc}")
    torch.manual_seed(0)
    model_a = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3))
    model_b = copy.deepcopy(model_a)
    x = torch.randn(8, 4)
    opt_a = LARS(model_a.parameters(), lr=0.3, weight_decay=1e-4, eta=0.02, clip_lr=True)
    opt_b = LARS(model_b.parameters(), lr=0.3, weight_decay=1e-4, eta=0.02, clip_lr=True)
    scaler.scale(model_a(x).pow(2).mean()).backward()
    scaler.step(opt_a)
    scaler.update()
    model_b(x).pow(2).mean().backward()
    opt_b.step()
    for pa, pb in zip(model_a.parameters(), model_b.parameters()):
        torch.testing.assert_close(pa, pb, rtol=1e-5, atol=1e-6)
