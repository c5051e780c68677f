"""BYOL's normalised regression loss (spec 4.3, base loss)."""

import torch
import torch.nn.functional as F

from cassle.losses.precision import full_precision

__all__ = ["byol_loss_func", "cosine_rows"]


def cosine_rows(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Cosine similarity of matching rows.

    Args:
        a: (N, D) tensor.
        b: (N, D) tensor.

    Returns:
        (N,) tensor, cos(a_n, b_n) computed as n(a_n).n(b_n).
    """
    return (F.normalize(a, dim=1) * F.normalize(b, dim=1)).sum(dim=1)


@full_precision
def byol_loss_func(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """``mean_n [2 - 2 cos(p_n, z_n)]`` with the target z detached.

    Args:
        p: (B, D) predictions (gradient flows into them).
        z: (B, D) targets, e.g. momentum projections (constant, detached here).

    Returns:
        Scalar loss in [0, 4].
    """
    return (2 - 2 * cosine_rows(p, z.detach())).mean()
