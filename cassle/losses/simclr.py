"""SimCLR's NT-Xent loss on the per-device batch (docs/official.md §4.1, base loss), and its
multi-crop and supervised form."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from einops import repeat

from cassle.losses.precision import full_precision

__all__ = [
    "simclr_loss_func",
    "simclr_multicrop_loss_func",
    "stack_crops",
    "partner_index",
    "self_mask",
]


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
    """NT-Xent loss of SimCLR on the local batch (no all-gather, docs/official.md §8 item 3).

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


def stack_crops(
    z: Sequence[torch.Tensor] | torch.Tensor, num_crops: int | None = None
) -> tuple[torch.Tensor, int]:
    """Crop-major (C*B, D) stack of per-crop embeddings: rows c*B .. c*B + B - 1 are crop c.

    Args:
        z: C tensors of shape (B, D), one per crop (large crops first), or their (C*B, D) stack.
        num_crops: C; required when ``z`` is already stacked, checked against ``len(z)`` otherwise.

    Returns:
        ``(stacked, C)``.
    """
    if isinstance(z, torch.Tensor):
        if num_crops is None or num_crops < 1 or z.size(0) % num_crops:
            raise ValueError(f"a stacked ({tuple(z.shape)}) input needs num_crops dividing its rows, "
                             f"got {num_crops}")
        return z, num_crops
    crops = list(z)
    if num_crops is not None and num_crops != len(crops):
        raise ValueError(f"num_crops={num_crops} but {len(crops)} crops were given")
    if len({tuple(c.shape) for c in crops}) != 1:
        raise ValueError(f"crops of different shapes: {[tuple(c.shape) for c in crops]}")
    return torch.cat(crops), len(crops)


@full_precision
def simclr_multicrop_loss_func(
    z: Sequence[torch.Tensor] | torch.Tensor,
    temperature: float,
    labels: torch.Tensor | None = None,
    num_crops: int | None = None,
) -> torch.Tensor:
    """SimCLR over any number of crops, unsupervised or supervised, on the local batch.

    With u = n(z) stacked crop-major (N = C*B rows, C crops of B images), s_aj = u_a.u_j / T and
    the positive set P(a) of anchor a:

    ``l_a = -(1 / |P(a)|) sum_{p in P(a)} log( exp(s_ap) / sum_{j != a} exp(s_aj) )``,
    loss = mean of l_a over the N anchors.

    - unsupervised (``labels`` None): P(a) = the other C - 1 crops of the same image;
    - supervised (``labels`` given): P(a) = every other row whose image has the same label, over all
      crops (the other crops of the same image included).

    The log-probability is averaged over the positives outside the log, and the denominator runs
    over every other row, the other positives included (SupCon's L_out). This is the formula of the
    official supervised two-view loss, used here for every case so that one formula covers them
    all (CaSSLe's multi-crop branch, which never ran, left the other positives out of the
    denominator; solo-learn sums the positives inside the log). With 2 crops and no labels P(a) is
    the other view alone and this is :func:`simclr_loss_func`; with all-distinct labels it is the
    unsupervised loss.

    Args:
        z: C >= 2 tensors of shape (B, D), one per crop (large crops first), not normalised; or
            their crop-major (C*B, D) stack, with ``num_crops``.
        temperature: T > 0.
        labels: (B,) integer labels of the images, for the supervised loss; None for SimCLR.
        num_crops: C, needed when ``z`` is a stacked tensor.

    Returns:
        Scalar loss (float32 for half-precision inputs).
    """
    stacked, num_crops = stack_crops(z, num_crops)
    if num_crops < 2:
        raise ValueError(f"SimCLR needs at least 2 crops per image, got {num_crops}")
    batch_size = stacked.size(0) // num_crops
    device = stacked.device
    image_groups = labels if labels is not None else torch.arange(batch_size, device=device)
    if image_groups.shape != (batch_size,):
        raise ValueError(f"labels must have shape ({batch_size},), got {tuple(image_groups.shape)}")
    # Row c*B + i belongs to image i: its group is image i's label (or index), repeated per crop.
    groups = repeat(image_groups.to(device), "b -> (c b)", c=num_crops)

    n = stacked.size(0)
    not_self = self_mask(n, device)
    u = F.normalize(stacked, dim=1)
    logits = (u @ u.t() / temperature).masked_fill(not_self, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    positives = (groups.unsqueeze(0) == groups.unsqueeze(1)) & ~not_self
    mean_positive_log_prob = log_prob.masked_fill(~positives, 0.0).sum(dim=1) / positives.sum(dim=1)
    return -mean_positive_log_prob.mean()
