"""BYOL's normalised regression loss (docs/official.md §4.3, base loss), and its multi-crop form."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cassle.losses.crops import target_pairs
from cassle.losses.precision import full_precision

__all__ = ["byol_loss_func", "byol_multicrop_loss_func", "cosine_rows"]


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


@full_precision
def byol_multicrop_loss_func(
    p: Sequence[torch.Tensor], z_momentum: Sequence[torch.Tensor]
) -> torch.Tensor:
    """BYOL over C crops: ``sum_{t < L} sum_{c != t} byol_loss_func(p_c, m_t)``.

    Every crop's prediction p_c regresses the momentum projection m_t of every large crop t other
    than itself, and the L (C - 1) terms are summed, as solo-learn's BYOL does. The momentum branch
    sees the L large crops only. With 2 crops this is the two-view BYOL loss, the sum of its two
    directions; the sum grows with the number of pairs (4 L (C - 1) at most).

    Args:
        p: C tensors of shape (B, D), the predictions of every crop (large crops first).
        z_momentum: L tensors of shape (B, D), the momentum projections of the large crops
            (constant, detached here), 1 <= L <= C.

    Returns:
        Scalar loss.
    """
    pairs = target_pairs(len(z_momentum), len(p))
    return torch.stack([byol_loss_func(p[c], z_momentum[t]) for t, c in pairs]).sum()
