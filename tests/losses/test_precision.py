import pytest
import torch

from cassle.losses.precision import full_precision

from .checks import randn


@full_precision
def _matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return a @ b


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_inputs_are_computed_in_float32(dtype):
    a, b = randn(3, 4, seed=1, dtype=dtype), randn(4, 2, seed=2, dtype=dtype)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _matmul(a, b=b)  # keyword arguments are upcast as well
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, a.float() @ b.float())


def test_float64_is_kept_and_autocast_is_off():
    a = randn(3, 4, seed=3)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _matmul(a, a.t()).dtype == torch.float64
        assert _matmul(a.float(), a.float().t()).dtype == torch.float32
        assert (a.float() @ a.float().t()).dtype == torch.bfloat16  # what autocast does outside


def test_gradient_returns_in_the_input_dtype():
    a = randn(3, 4, seed=4, dtype=torch.bfloat16).requires_grad_(True)
    _matmul(a, a.detach().t()).sum().backward()
    assert a.grad is not None and a.grad.dtype == torch.bfloat16


def test_keeps_name_and_docstring():
    assert _matmul.__name__ == "_matmul"
    assert _matmul.__wrapped__ is not None


@full_precision
def _first_crop_product(crops: list, other: tuple) -> torch.Tensor:
    return crops[0] @ other[1]


def test_tensors_inside_lists_and_tuples_are_upcast_and_autocast_is_off():
    """The multi-crop losses take per-crop lists: their half tensors are upcast too, and a list as
    the first argument still turns autocast off."""
    a, b = randn(3, 4, seed=5, dtype=torch.bfloat16), randn(4, 2, seed=6, dtype=torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = _first_crop_product([a], (b, b))
        got32 = _first_crop_product([a.float()], (b.float(), b.float()))
    assert got.dtype == torch.float32 and got32.dtype == torch.float32
    torch.testing.assert_close(got, a.float() @ b.float())
