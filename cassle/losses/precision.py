"""Run a loss in at least float32, also inside an autocast region.

Mixed-precision training hands the losses float16/bfloat16 projections, and autocast would run
their matrix products in half precision as well. With temperatures of 0.07-0.2 the logits reach
5-15, where half precision loses about 0.05 per logit, so every loss in this package is wrapped by
:func:`full_precision`: half-precision tensor arguments (also inside list or tuple arguments, such
as the per-crop lists of the multi-crop losses) are upcast to float32 and autocast is switched off
for the duration of the call. float32 and float64 inputs are left as they are (float64
is what the reference tests use). Gradients flow back through the cast to the original dtype.
"""

import contextlib
import functools
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

__all__ = ["full_precision"]

_HALF_DTYPES = (torch.float16, torch.bfloat16)

F = TypeVar("F", bound=Callable[..., Any])


def _upcast(value: Any) -> Any:
    if isinstance(value, torch.Tensor) and value.dtype in _HALF_DTYPES:
        return value.float()
    if isinstance(value, (list, tuple)):
        return type(value)(_upcast(v) for v in value)
    return value


def _first_tensor(values: Iterable[Any]) -> torch.Tensor | None:
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
        if isinstance(value, (list, tuple)):
            found = _first_tensor(value)
            if found is not None:
                return found
    return None


def _autocast_off(values: Iterable[Any]) -> contextlib.AbstractContextManager:
    """Context that disables autocast for the device type of the first tensor in ``values``
    (looking inside list and tuple arguments too)."""
    tensor = _first_tensor(values)
    if tensor is not None and torch.amp.is_autocast_available(tensor.device.type):
        return torch.autocast(device_type=tensor.device.type, enabled=False)
    return contextlib.nullcontext()


def full_precision(fn: F) -> F:
    """Decorate a loss so that it computes in float32 (or float64) even under autocast.

    Args:
        fn: a function whose tensor arguments (or lists / tuples of tensors) are floating-point
            tensors of any dtype.

    Returns:
        The wrapped function: float16/bfloat16 tensors among the arguments are upcast with
        ``.float()`` and the body runs with autocast disabled for the arguments' device type.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        args = tuple(_upcast(a) for a in args)
        kwargs = {k: _upcast(v) for k, v in kwargs.items()}
        with _autocast_off(list(args) + list(kwargs.values())):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
