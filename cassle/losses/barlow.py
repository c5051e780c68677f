"""Barlow Twins' redundancy-reduction loss (docs/official.md §4.4), and its multi-crop form."""

from collections.abc import Sequence

import torch
import torch.distributed as dist

from cassle.losses.crops import symmetric_pairs
from cassle.losses.precision import full_precision

__all__ = ["barlow_loss_func", "barlow_multicrop_loss_func", "batch_standardise", "cross_correlation"]

BN_EPS = 1e-5


def batch_standardise(z: torch.Tensor, eps: float = BN_EPS) -> torch.Tensor:
    """Standardise each dimension with batch statistics, as BatchNorm1d(affine=False) in training.

    Args:
        z: (N, D) tensor, N >= 2.
        eps: added to the biased variance under the square root.

    Returns:
        (N, D) tensor ``(z - mean) / sqrt(var_biased + eps)``.
    """
    mean = z.mean(dim=0, keepdim=True)
    var = z.var(dim=0, unbiased=False, keepdim=True)
    return (z - mean) / torch.sqrt(var + eps)


def cross_correlation(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Cross-correlation matrix of the standardised inputs, averaged over devices under DDP.

    Each device standardises its own batch. When torch.distributed is initialised the local
    matrices are averaged with a plain (not autograd-aware) all-reduce, as the official code does:
    the forward value is the device average, while the gradient only flows through the local matrix
    and is scaled by 1/W (W = world size), see docs/decisions.md "Distributed".

    Args:
        z1: (N, D) tensor.
        z2: (N, D) tensor.

    Returns:
        (D, D) tensor ``C = n(z1)^T n(z2) / N``.
    """
    c = batch_standardise(z1).t() @ batch_standardise(z2) / z1.size(0)
    if dist.is_available() and dist.is_initialized():
        summed = c.detach().clone()
        dist.all_reduce(summed)
        # forward: the sum over devices; backward: identity into the local c.
        c = c + (summed - c.detach())
        c = c / dist.get_world_size()
    return c


@full_precision
def barlow_loss_func(
    z1: torch.Tensor, z2: torch.Tensor, lamb: float, scale_loss: float
) -> torch.Tensor:
    """Barlow Twins loss ``s * [sum_i (1 - C_ii)^2 + lamb * sum_{i != j} C_ij^2]``.

    Args:
        z1: (N, D) projections of view 1 (or predictions, for the PNR positive term).
        z2: (N, D) projections of view 2 (or teacher outputs; detach those before calling if they
            must stay constant).
        lamb: weight of the off-diagonal (redundancy) term, lambda_off.
        scale_loss: overall scale s.

    Returns:
        Scalar loss.
    """
    c = cross_correlation(z1, z2)
    diag = torch.diagonal(c)
    on_diag = (1 - diag).pow(2).sum()
    off_diag = c.pow(2).sum() - diag.pow(2).sum()
    return scale_loss * (on_diag + lamb * off_diag)


@full_precision
def barlow_multicrop_loss_func(
    z: Sequence[torch.Tensor], num_large_crops: int, lamb: float, scale_loss: float
) -> torch.Tensor:
    """Barlow Twins over C crops: the mean of :func:`barlow_loss_func` over the crop pairs.

    The pairs are every unordered pair {a, b} with at least one large crop (a < b, a < L), each
    once (the loss is symmetric in its two inputs); each pair standardises its own two batches.
    With 2 crops this is ``barlow_loss_func(z_1, z_2)``.

    Args:
        z: C tensors of shape (N, D), the projections of every crop (large crops first).
        num_large_crops: L, 1 <= L <= C.
        lamb: weight of the off-diagonal term.
        scale_loss: overall scale.

    Returns:
        Scalar loss.
    """
    pairs = symmetric_pairs(num_large_crops, len(z))
    return torch.stack([barlow_loss_func(z[a], z[b], lamb, scale_loss) for a, b in pairs]).mean()
