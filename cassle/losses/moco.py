"""MoCo V2+ InfoNCE loss against a queue of past keys (docs/official.md §4.2, base loss), and its
multi-crop form."""

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from cassle.losses.crops import target_pairs
from cassle.losses.precision import full_precision

__all__ = ["moco_loss_func", "moco_multicrop_loss_func", "queue_cross_entropy"]


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


@full_precision
def moco_multicrop_loss_func(
    queries: Sequence[torch.Tensor],
    keys: Sequence[torch.Tensor],
    queues: torch.Tensor | Sequence[torch.Tensor],
    temperature: float,
) -> torch.Tensor:
    """MoCo V2+ over C crops: the mean over pairs (t, c != t) of ``moco_loss_func(q_c, k_t, Q_t)``.

    Every crop's query q_c is contrasted with the momentum key k_t of every large crop t other than
    itself, against the queue of past keys of that large crop; the L (C - 1) terms are averaged.
    With 2 crops this is the two-view loss ``(CE(q_1, k_2, Q_2) + CE(q_2, k_1, Q_1)) / 2``. The
    module keeps one queue per large crop and enqueues the L keys after the loss.

    Args:
        queries: C tensors of shape (B, D), L2-normalised queries of every crop (large first).
        keys: L tensors of shape (B, D), L2-normalised momentum keys of the large crops (constant).
        queues: (L, D, K) tensor or L tensors of shape (D, K): queue t holds past keys of large
            crop t, a copy taken before this step's enqueue (constant).
        temperature: T > 0.

    Returns:
        Scalar loss.
    """
    if len(queues) != len(keys):
        raise ValueError(f"one queue per large crop: {len(queues)} queues for {len(keys)} keys")
    pairs = target_pairs(len(keys), len(queries))
    return torch.stack(
        [queue_cross_entropy(queries[c], keys[t], [queues[t]], temperature) for t, c in pairs]
    ).mean()
