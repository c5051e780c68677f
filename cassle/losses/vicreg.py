"""VICReg's variance-invariance-covariance loss on the per-device batch (docs/official.md §4.5),
and its multi-crop form."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cassle.losses.crops import symmetric_pairs
from cassle.losses.precision import full_precision

__all__ = [
    "vicreg_loss_func",
    "vicreg_multicrop_loss_func",
    "invariance_loss",
    "variance_loss",
    "covariance_loss",
]

VAR_EPS = 1e-4


@full_precision
def invariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Mean squared error over all N*D entries.

    Args:
        z1: (N, D) tensor.
        z2: (N, D) tensor.

    Returns:
        Scalar ``mean_{n,d} (z1 - z2)^2``.
    """
    return F.mse_loss(z1, z2)


def _hinge_std(z: torch.Tensor) -> torch.Tensor:
    std = torch.sqrt(z.var(dim=0, unbiased=True) + VAR_EPS)
    return F.relu(1 - std).mean()


@full_precision
def variance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Hinge on the per-dimension standard deviation, summed over the two inputs.

    Args:
        z1: (N, D) tensor, N >= 2.
        z2: (N, D) tensor, N >= 2.

    Returns:
        Scalar ``sum_{z in (z1, z2)} mean_d relu(1 - sqrt(Var_unbiased(z_d) + 1e-4))``.
    """
    return _hinge_std(z1) + _hinge_std(z2)


def _off_diagonal_cov(z: torch.Tensor) -> torch.Tensor:
    n, d = z.shape
    centred = z - z.mean(dim=0, keepdim=True)
    cov = centred.t() @ centred / (n - 1)
    return (cov.pow(2).sum() - torch.diagonal(cov).pow(2).sum()) / d


@full_precision
def covariance_loss(z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """Squared off-diagonal covariances, divided by D, summed over the two inputs.

    Args:
        z1: (N, D) tensor, N >= 2.
        z2: (N, D) tensor, N >= 2.

    Returns:
        Scalar ``sum_{z in (z1, z2)} sum_{i != j} Cov(z)_ij^2 / D`` with the unbiased covariance
        (divisor N - 1).
    """
    return _off_diagonal_cov(z1) + _off_diagonal_cov(z2)


@full_precision
def vicreg_loss_func(
    z1: torch.Tensor,
    z2: torch.Tensor,
    sim_loss_weight: float,
    var_loss_weight: float,
    cov_loss_weight: float,
) -> torch.Tensor:
    """VICReg loss ``w_sim * MSE + w_var * V + w_cov * Cv`` (official weights 25, 25, 1).

    Args:
        z1: (N, D) projections of view 1.
        z2: (N, D) projections of view 2.
        sim_loss_weight: weight of :func:`invariance_loss`.
        var_loss_weight: weight of :func:`variance_loss`.
        cov_loss_weight: weight of :func:`covariance_loss`.

    Returns:
        Scalar loss.
    """
    return (
        sim_loss_weight * invariance_loss(z1, z2)
        + var_loss_weight * variance_loss(z1, z2)
        + cov_loss_weight * covariance_loss(z1, z2)
    )


@full_precision
def vicreg_multicrop_loss_func(
    z: Sequence[torch.Tensor],
    num_large_crops: int,
    sim_loss_weight: float,
    var_loss_weight: float,
    cov_loss_weight: float,
) -> torch.Tensor:
    """VICReg over C crops: the mean of :func:`vicreg_loss_func` over the crop pairs.

    The pairs are every unordered pair {a, b} with at least one large crop (a < b, a < L), each
    once (the loss is symmetric in its two inputs). A crop's variance and covariance terms count
    once per pair it is in. With 2 crops this is ``vicreg_loss_func(z_1, z_2)``.

    Args:
        z: C tensors of shape (N, D), the projections of every crop (large crops first).
        num_large_crops: L, 1 <= L <= C.
        sim_loss_weight: weight of :func:`invariance_loss`.
        var_loss_weight: weight of :func:`variance_loss`.
        cov_loss_weight: weight of :func:`covariance_loss`.

    Returns:
        Scalar loss.
    """
    weights = (sim_loss_weight, var_loss_weight, cov_loss_weight)
    pairs = symmetric_pairs(num_large_crops, len(z))
    return torch.stack([vicreg_loss_func(z[a], z[b], *weights) for a, b in pairs]).mean()
