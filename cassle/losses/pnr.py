"""PNR objectives: regularising with pseudo-negatives (docs/official.md §4.1-4.6).

SimCLR and MoCo: the PNR objective replaces the method's own loss (main term + regulariser).
BYOL, Barlow Twins, VICReg: the regulariser ``distill_lamb * P - negative_lamb * Nn`` is added to
the method's own loss, where P pulls the prediction g(z_a) towards the teacher output of the same
view and Nn (subtracted) pushes it away from the teacher output of the other view.

Teacher outputs f, momentum keys and queues are constants everywhere (detached inside). Each
``*_loss_func`` returns the scalar to optimise; the matching ``*_terms`` returns its parts for
logging.
"""


import torch
import torch.nn.functional as F

from cassle.losses.barlow import barlow_loss_func
from cassle.losses.byol import byol_loss_func, cosine_rows
from cassle.losses.moco import queue_cross_entropy
from cassle.losses.precision import full_precision
from cassle.losses.simclr import partner_index, self_mask

__all__ = [
    "simclr_pnr_loss_func",
    "simclr_pnr_terms",
    "moco_pnr_loss_func",
    "moco_pnr_terms",
    "byol_pnr_loss_func",
    "byol_pnr_terms",
    "barlow_pnr_loss_func",
    "barlow_pnr_terms",
    "vicreg_pnr_loss_func",
    "vicreg_pnr_terms",
]

_NEG_INF = float("-inf")


# --------------------------------------------------------------------------------------------------
# SimCLR


@full_precision
def simclr_pnr_terms(
    z1: torch.Tensor,
    z2: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms of SimCLR-PNR, ``(mean_i L_main,i, mean_i L_reg,i)`` (docs/official.md §4.1).

    With u = [n(z1); n(z2)], v = [n(f1); n(f2)] (constant), q = [n(p1); n(p2)], 2B rows, i' the
    other view of row i and T the distill temperature:

    - ``L_main,i = -log[ exp(u_i.u_i'/T) /
      (sum_{j!=i} exp(u_i.u_j/T) + sum_{j!=i} exp(u_i.v_j/T)) ]``:
      the positive u_i' is in its own denominator and v_i' (teacher, other view of the same image)
      IS a negative; only v_i is left out (docs/official.md §8 item 2, kept).
    - ``L_reg,i = -log[ exp(q_i.v_i/T) /
      (sum_{j!=i} exp(q_i.v_j/T) + sum_{j!=i} exp(q_i.u_j/T)) ]``:
      the positive is NOT in its own denominator; u is not detached, so the gradient also reaches
      u through the negatives.

    The log-sum-exps subtract the row maximum internally. Swapping the views gives the same value,
    so the official two-pass evaluation is computed once.

    Args:
        z1: (B, D) projector outputs of view 1, not normalised.
        z2: (B, D) projector outputs of view 2, not normalised.
        p1: (B, D) distill-predictor outputs g(z1), not normalised.
        p2: (B, D) distill-predictor outputs g(z2), not normalised.
        f1: (B, D) teacher projector outputs of view 1, not normalised (constant).
        f2: (B, D) teacher projector outputs of view 2, not normalised (constant).
        temperature: T > 0 (``--distill_temperature``, used by both terms).

    Returns:
        (main, reg): two scalars.
    """
    n = 2 * z1.size(0)
    u = F.normalize(torch.cat([z1, z2]), dim=1)
    v = F.normalize(torch.cat([f1, f2]).detach(), dim=1)
    q = F.normalize(torch.cat([p1, p2]), dim=1)
    not_self = self_mask(n, u.device)

    uu = (u @ u.t() / temperature).masked_fill(not_self, _NEG_INF)
    uv = (u @ v.t() / temperature).masked_fill(not_self, _NEG_INF)
    main = F.cross_entropy(torch.cat([uu, uv], dim=1), partner_index(n // 2, u.device))

    qv = q @ v.t() / temperature
    qu = q @ u.t() / temperature
    negatives = torch.cat(
        [qv.masked_fill(not_self, _NEG_INF), qu.masked_fill(not_self, _NEG_INF)], dim=1
    )
    reg = (torch.logsumexp(negatives, dim=1) - torch.diagonal(qv)).mean()
    return main, reg


def simclr_pnr_loss_func(
    z1: torch.Tensor,
    z2: torch.Tensor,
    p1: torch.Tensor,
    p2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    temperature: float,
) -> torch.Tensor:
    """SimCLR-PNR objective ``mean_i L_main,i + mean_i L_reg,i`` (replaces the SimCLR loss).

    See :func:`simclr_pnr_terms` for the two terms, their masks and the gradient paths.

    Args:
        z1: (B, D) projector outputs of view 1, not normalised.
        z2: (B, D) projector outputs of view 2, not normalised.
        p1: (B, D) distill-predictor outputs g(z1), not normalised.
        p2: (B, D) distill-predictor outputs g(z2), not normalised.
        f1: (B, D) teacher projector outputs of view 1 (constant).
        f2: (B, D) teacher projector outputs of view 2 (constant).
        temperature: T > 0 (``--distill_temperature``).

    Returns:
        Scalar loss.
    """
    main, reg = simclr_pnr_terms(z1, z2, p1, p2, f1, f2, temperature)
    return main + reg


# --------------------------------------------------------------------------------------------------
# MoCo V2+


@full_precision
def moco_pnr_terms(
    query: torch.Tensor,
    key: torch.Tensor,
    predicted: torch.Tensor,
    frozen: torch.Tensor,
    key_queue: torch.Tensor,
    frozen_queue: torch.Tensor,
    temperature: float,
    distill_temperature: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The two terms (M_a, R_a) of MoCo-PNR for one direction a -> b (docs/official.md §4.2).

    Both terms share the negatives N_b = Q_k,b U Q_v,b (view b's key queue and teacher queue):

    - ``M_a = CE([q_a.k_b, q_a.Q_k,b, q_a.Q_v,b] / temperature, target 0)``
    - ``R_a = CE([p_a.v_a, p_a.Q_k,b, p_a.Q_v,b] / distill_temperature, target 0)``

    Args:
        query: (B, D) normalised queries q_a (gradient flows).
        key: (B, D) normalised momentum keys k_b of the other view (constant).
        predicted: (B, D) p_a = n(g(q_a)) (gradient flows).
        frozen: (B, D) v_a = n(f_a), teacher projections of the same view (constant).
        key_queue: (D, K) normalised past keys of view b, snapshot before this step's enqueue
            (constant).
        frozen_queue: (D, K) normalised past teacher projections of view b (constant).
        temperature: T of the main term (``--temperature``).
        distill_temperature: T_d of the regulariser (``--distill_temperature``).

    Returns:
        (M_a, R_a): two scalars, each a mean over the batch.
    """
    negatives = [key_queue, frozen_queue]
    main = queue_cross_entropy(query, key, negatives, temperature)
    reg = queue_cross_entropy(predicted, frozen, negatives, distill_temperature)
    return main, reg


def moco_pnr_loss_func(
    query: torch.Tensor,
    key: torch.Tensor,
    predicted: torch.Tensor,
    frozen: torch.Tensor,
    key_queue: torch.Tensor,
    frozen_queue: torch.Tensor,
    temperature: float,
    distill_temperature: float,
) -> torch.Tensor:
    """``M_a + R_a`` of MoCo-PNR for one direction a -> b (the caller averages both directions).

    See :func:`moco_pnr_terms` for the terms. All inputs are already L2-normalised.

    Args:
        query: (B, D) q_a.
        key: (B, D) k_b (constant).
        predicted: (B, D) p_a = n(g(q_a)).
        frozen: (B, D) v_a (constant).
        key_queue: (D, K) Q_k,b (constant).
        frozen_queue: (D, K) Q_v,b (constant).
        temperature: T of the main term.
        distill_temperature: T_d of the regulariser.

    Returns:
        Scalar loss.
    """
    main, reg = moco_pnr_terms(
        query, key, predicted, frozen, key_queue, frozen_queue, temperature, distill_temperature
    )
    return main + reg


# --------------------------------------------------------------------------------------------------
# BYOL, Barlow Twins, VICReg: distill_lamb * P - negative_lamb * Nn


def _pull_push(
    positive: torch.Tensor, negative: torch.Tensor, distill_lamb: float, negative_lamb: float
) -> torch.Tensor:
    return distill_lamb * positive - negative_lamb * negative


@full_precision
def byol_pnr_terms(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """BYOL-PNR terms (docs/official.md §4.3).

    ``P = 1/2 sum_a mean[2 - 2cos(p_a, f_a)]`` and ``Nn = 1/2 sum_a mean[2 - 2cos(p_a, f_b)]``.

    Args:
        p1: (B, D) g(z1), distill-predictor outputs of view 1.
        p2: (B, D) g(z2).
        f1: (B, D) teacher projections of view 1 (constant).
        f2: (B, D) teacher projections of view 2 (constant).

    Returns:
        (P, Nn): two scalars.
    """
    positive = 0.5 * (byol_loss_func(p1, f1) + byol_loss_func(p2, f2))
    negative = 0.5 * (byol_loss_func(p1, f2) + byol_loss_func(p2, f1))
    return positive, negative


def byol_pnr_loss_func(
    p1: torch.Tensor,
    p2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    distill_lamb: float,
    negative_lamb: float,
) -> torch.Tensor:
    """BYOL-PNR regulariser ``distill_lamb * P - negative_lamb * Nn`` (added to the BYOL loss).

    See :func:`byol_pnr_terms`. Lowering the loss raises cos(p_a, f_a) and lowers cos(p_a, f_b).

    Args:
        p1: (B, D) g(z1).
        p2: (B, D) g(z2).
        f1: (B, D) teacher projections of view 1 (constant).
        f2: (B, D) teacher projections of view 2 (constant).
        distill_lamb: lambda (``--distill_lamb``).
        negative_lamb: mu (``--negative_lamb``).

    Returns:
        Scalar loss.
    """
    return _pull_push(*byol_pnr_terms(p1, p2, f1, f2), distill_lamb, negative_lamb)


@full_precision
def barlow_pnr_terms(
    p1: torch.Tensor,
    p2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    distill_barlow_lamb: float,
    distill_scale_loss: float,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Barlow-PNR terms (docs/official.md §4.4).

    ``P = 1/2 sum_a BT(p_a, f_a; distill_barlow_lamb, distill_scale_loss)`` (through
    :func:`barlow_loss_func`, hence device-averaged under DDP) and
    ``Nn = 1/2 sum_a mean[-cos(p_a, f_b)]``.

    Args:
        p1: (B, D) g(z1).
        p2: (B, D) g(z2).
        f1: (B, D) teacher projections of view 1 (constant).
        f2: (B, D) teacher projections of view 2 (constant).
        distill_barlow_lamb: off-diagonal weight of BT (``--distill_barlow_lamb``).
        distill_scale_loss: scale of BT (``--distill_scale_loss``).

    Returns:
        (P, Nn): two scalars.
    """
    f1, f2 = f1.detach(), f2.detach()
    positive = 0.5 * (
        barlow_loss_func(p1, f1, distill_barlow_lamb, distill_scale_loss)
        + barlow_loss_func(p2, f2, distill_barlow_lamb, distill_scale_loss)
    )
    negative = 0.5 * (-cosine_rows(p1, f2).mean() - cosine_rows(p2, f1).mean())
    return positive, negative


def barlow_pnr_loss_func(
    p1: torch.Tensor,
    p2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    distill_lamb: float,
    negative_lamb: float,
    distill_barlow_lamb: float,
    distill_scale_loss: float,
) -> torch.Tensor:
    """Barlow-PNR regulariser ``distill_lamb * P - negative_lamb * Nn`` (added to the BT loss).

    See :func:`barlow_pnr_terms`;
    ``-negative_lamb * Nn = negative_lamb * 1/2 sum_a mean cos(p_a, f_b)``.

    Args:
        p1: (B, D) g(z1).
        p2: (B, D) g(z2).
        f1: (B, D) teacher projections of view 1 (constant).
        f2: (B, D) teacher projections of view 2 (constant).
        distill_lamb: lambda (``--distill_lamb``).
        negative_lamb: mu (``--negative_lamb``).
        distill_barlow_lamb: off-diagonal weight of BT in P.
        distill_scale_loss: scale of BT in P.

    Returns:
        Scalar loss.
    """
    terms = barlow_pnr_terms(p1, p2, f1, f2, distill_barlow_lamb, distill_scale_loss)
    return _pull_push(*terms, distill_lamb, negative_lamb)


@full_precision
def vicreg_pnr_terms(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg-PNR terms (docs/official.md §4.5).

    ``P = 1/2 sum_a MSE(p_a, f_a)`` and ``Nn = 1/2 sum_a MSE(p_a, f_b)``, MSE being the mean over
    all B*D entries.

    Args:
        p1: (B, D) g(z1).
        p2: (B, D) g(z2).
        f1: (B, D) teacher projections of view 1 (constant).
        f2: (B, D) teacher projections of view 2 (constant).

    Returns:
        (P, Nn): two scalars.
    """
    f1, f2 = f1.detach(), f2.detach()
    positive = 0.5 * (F.mse_loss(p1, f1) + F.mse_loss(p2, f2))
    negative = 0.5 * (F.mse_loss(p1, f2) + F.mse_loss(p2, f1))
    return positive, negative


def vicreg_pnr_loss_func(
    p1: torch.Tensor,
    p2: torch.Tensor,
    f1: torch.Tensor,
    f2: torch.Tensor,
    distill_lamb: float,
    negative_lamb: float,
) -> torch.Tensor:
    """VICReg-PNR regulariser ``distill_lamb * P - negative_lamb * Nn`` (added to the VICReg loss).

    See :func:`vicreg_pnr_terms`. Bounded below only when negative_lamb < distill_lamb; the
    per-sample minimiser is then ``p_a = (lambda f_a - mu f_b) / (lambda - mu)``.

    Args:
        p1: (B, D) g(z1).
        p2: (B, D) g(z2).
        f1: (B, D) teacher projections of view 1 (constant).
        f2: (B, D) teacher projections of view 2 (constant).
        distill_lamb: lambda (``--distill_lamb``, official default 25).
        negative_lamb: mu (``--negative_lamb``).

    Returns:
        Scalar loss.
    """
    return _pull_push(*vicreg_pnr_terms(p1, p2, f1, f2), distill_lamb, negative_lamb)
