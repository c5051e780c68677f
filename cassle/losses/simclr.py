"""SimCLR's NT-Xent loss on the per-device batch (spec 4.1, base loss)."""

import torch
import torch.nn.functional as F

from cassle.losses.precision import full_precision

__all__ = ["simclr_loss_func", "partner_index", "self_mask"]


def partner_index(batch_size: int, device: torch.device) -> torch.Tensor:
    """Index of the other view of the same image for each of the 2B stacked rows.

    Rows 0..B-1 are view 1 and rows B..2B-1 view 2, so row i's partner is (i + B) mod 2B.

    Args:
        batch_size: B, the number of images.
        device: where to put the result.

    Returns:
        (2B,) long tensor.
    """
    rows = torch.arange(2 * batch_size, device=device)
    return (rows + batch_size) % (2 * batch_size)


def self_mask(n: int, device: torch.device) -> torch.Tensor:
    """(n, n) bool tensor that is True on the diagonal (the entries j == i to leave out)."""
    return torch.eye(n, dtype=torch.bool, device=device)


@full_precision
def simclr_loss_func(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent loss of SimCLR on the local batch (no all-gather, spec 8 item 3).

    With u = [n(z1); n(z2)] (2B rows) and i' the other view of row i:
    ``l_i = -log( exp(u_i.u_i'/T) / sum_{j != i} exp(u_i.u_j/T) )``; the result is the mean over the
    2B rows. The positive is part of its own denominator (standard InfoNCE).

    Args:
        z1: (B, D) projections of view 1, not normalised.
        z2: (B, D) projections of view 2, not normalised.
        temperature: T > 0.

    Returns:
        Scalar loss (float32 for half-precision inputs).
    """
    batch_size = z1.size(0)
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = u @ u.t() / temperature
    logits = logits.masked_fill(self_mask(2 * batch_size, u.device), float("-inf"))
    return F.cross_entropy(logits, partner_index(batch_size, u.device))
