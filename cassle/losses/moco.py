"""MoCo V2+ InfoNCE loss against a queue of past keys (spec 4.2, base loss)."""

from typing import Sequence

import torch
import torch.nn.functional as F

from cassle.losses.precision import full_precision

__all__ = ["moco_loss_func", "queue_cross_entropy"]


def queue_cross_entropy(
    anchor: torch.Tensor, positive: torch.Tensor, queues: Sequence[torch.Tensor], temperature: float
) -> torch.Tensor:
    """Cross-entropy with the positive at index 0 and every queue column as a negative.

    Per row i:
    ``-log( exp(a_i.p_i/T) / (exp(a_i.p_i/T) + sum_{queues} sum_k exp(a_i.Q[:, k]/T)) )``.
    The positive and the queues are treated as constants (detached); the anchor keeps its gradient.

    Args:
        anchor: (B, D) L2-normalised anchors.
        positive: (B, D) L2-normalised positives, row i for anchor i.
        queues: sequence of (D, K_m) L2-normalised negatives.
        temperature: T > 0.

    Returns:
        Scalar, mean over the B rows.
    """
    pos = (anchor * positive.detach()).sum(dim=1, keepdim=True)
    negs = [anchor @ queue.detach() for queue in queues]
    logits = torch.cat([pos] + negs, dim=1) / temperature
    target = torch.zeros(anchor.size(0), dtype=torch.long, device=anchor.device)
    return F.cross_entropy(logits, target)


@full_precision
def moco_loss_func(
    query: torch.Tensor, key: torch.Tensor, queue: torch.Tensor, temperature: float
) -> torch.Tensor:
    """One direction of the MoCo loss: ``CE([q.k, q.Q] / T, target 0)``, mean over the batch.

    The MoCo module averages the two directions (q_1 with k_2 and view 2's queue, and the reverse).

    Args:
        query: (B, D) L2-normalised queries of view a (gradient flows into them).
        key: (B, D) L2-normalised momentum keys of view b (constant, detached here).
        queue: (D, K) L2-normalised past keys of view b (constant, detached here).
        temperature: T > 0.

    Returns:
        Scalar loss.
    """
    return queue_cross_entropy(query, key, [queue], temperature)
