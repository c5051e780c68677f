"""Checks shared by the loss tests: random inputs, autocast behaviour, gradient paths."""

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F


def randn(*shape: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=generator, dtype=dtype)


def unit_rows(n: int, d: int, seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return F.normalize(randn(n, d, seed=seed, dtype=dtype), dim=1)


def basis(d: int, *indices: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Rows e_k of the d-dimensional standard basis, one per index."""
    return torch.eye(d, dtype=dtype)[list(indices)]


def _map_tensors(fn: Callable[[torch.Tensor], torch.Tensor], args: Sequence) -> list:
    """Apply fn to every tensor argument, also to those inside list arguments (per-crop lists)."""
    def one(a):
        if isinstance(a, torch.Tensor):
            return fn(a)
        if isinstance(a, list):
            return [one(x) for x in a]
        return a

    return [one(a) for a in args]


def assert_autocast_close(loss_fn: Callable[..., torch.Tensor], args: Sequence) -> None:
    """The loss stays finite and in float32 under bfloat16 autocast.

    1. float32 inputs inside autocast: close to the plain float32 value (loose tolerance).
    2. bfloat16 inputs inside autocast (what an autocast model hands over): float32 result equal,
       to float32 precision, to the float32 computation on the same (rounded) values, i.e. the loss
       upcasts and does not run its products in bfloat16.
    """
    as32 = _map_tensors(lambda a: a.float(), args)
    expected = loss_fn(*as32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = loss_fn(*as32)
    assert torch.isfinite(got)
    torch.testing.assert_close(got.float(), expected, rtol=2e-2, atol=2e-2)

    as16 = _map_tensors(lambda a: a.to(torch.bfloat16), args)
    rounded = _map_tensors(lambda a: a.float(), as16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got16 = loss_fn(*as16)
    assert got16.dtype == torch.float32
    assert torch.isfinite(got16)
    torch.testing.assert_close(got16, loss_fn(*rounded), rtol=1e-5, atol=1e-6)


def leaves(*tensors: torch.Tensor) -> list:
    return [t.detach().clone().requires_grad_(True) for t in tensors]


def has_gradient(t: torch.Tensor) -> bool:
    return t.grad is not None and bool(t.grad.abs().sum() > 0)
