"""CaSSLe's `contrastive` distiller loss (docs/official.md §4.1, "CaSSLe contrastive distiller").

With q = [n(p1); n(p2)] (predictions of the past from the current model, 2B rows) and
v = [n(f1); n(f2)] (teacher projections, constant), CaSSLe's regulariser is

    L_dist = 1/2 [ C(q->v) + C(v->q) ]

    C(q->v) = mean_i -log( exp(q_i.v_i/T) / sum_{all j} exp(q_i.v_j/T) )
    C(v->q) = mean_i -log( exp(v_i.q_i/T) / sum_{all j} exp(v_i.q_j/T) )

The positive stays in its own denominator (the official diagonal mask is a no-op) and only teacher
rows (for C(q->v)) or only current rows (for C(v->q)) are candidates. In both directions the teacher
is constant and the gradient flows into q (hence into g).

The other direction must NOT be computed by swapping the arguments of
:func:`simclr_distill_loss_func`: ``simclr_distill_loss_func(f1, f2, p1, p2, T)`` has the value of
C(v->q) but detaches p (its third and fourth arguments), so it gives g no gradient at all. Use
:func:`simclr_distill_reverse_loss_func` (same argument order as the forward one), or
:func:`contrastive_distill_loss_func` for the averaged pair.
"""

import torch
import torch.nn.functional as F

from cassle.losses.precision import full_precision

__all__ = [
    "simclr_distill_loss_func",
    "simclr_distill_reverse_loss_func",
    "contrastive_distill_loss_func",
    "negative_cosine_loss_func",
]


def _prediction_teacher_logits(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, temperature: float
) -> torch.Tensor:
    """(2B, 2B) logits ``L_ij = q_i.v_j / T`` with the teacher detached."""
    q = F.normalize(torch.cat([p1, p2]), dim=1)
    v = F.normalize(torch.cat([f1, f2]).detach(), dim=1)
    return q @ v.t() / temperature


def _diagonal_target(logits: torch.Tensor) -> torch.Tensor:
    return torch.arange(logits.size(0), device=logits.device)


@full_precision
def simclr_distill_loss_func(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, temperature: float
) -> torch.Tensor:
    """C(q->v): each prediction q_i must pick its own teacher row v_i among all 2B teacher rows.

    Per row i: ``-log( exp(q_i.v_i/T) / sum_{all j} exp(q_i.v_j/T) )`` (positive in its own
    denominator), mean over the 2B rows. f is constant (detached here); the gradient flows into p.

    For the other direction C(v->q) call :func:`simclr_distill_reverse_loss_func` with the SAME
    arguments; swapping p and f in this function gives the right value but no gradient to p.

    Args:
        p1: (B, D) distill-predictor outputs g(z1) of view 1, not normalised.
        p2: (B, D) distill-predictor outputs g(z2) of view 2, not normalised.
        f1: (B, D) teacher projections of view 1, not normalised (constant).
        f2: (B, D) teacher projections of view 2, not normalised (constant).
        temperature: T > 0 (``--distill_temperature``).

    Returns:
        Scalar loss.
    """
    logits = _prediction_teacher_logits(p1, p2, f1, f2, temperature)
    return F.cross_entropy(logits, _diagonal_target(logits))


@full_precision
def simclr_distill_reverse_loss_func(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, temperature: float
) -> torch.Tensor:
    """C(v->q): each teacher row v_i must pick its own prediction q_i among all 2B predictions.

    Per row i: ``-log( exp(v_i.q_i/T) / sum_{all j} exp(v_i.q_j/T) )``, mean over the 2B rows. The
    teacher is the anchor but stays constant (detached here); the gradient flows into the candidates
    q, i.e. into p. Arguments are in the same order as :func:`simclr_distill_loss_func`.

    Args:
        p1: (B, D) distill-predictor outputs of view 1, not normalised.
        p2: (B, D) distill-predictor outputs of view 2, not normalised.
        f1: (B, D) teacher projections of view 1, not normalised (constant).
        f2: (B, D) teacher projections of view 2, not normalised (constant).
        temperature: T > 0.

    Returns:
        Scalar loss.
    """
    logits = _prediction_teacher_logits(p1, p2, f1, f2, temperature).t()
    return F.cross_entropy(logits, _diagonal_target(logits))


@full_precision
def contrastive_distill_loss_func(
    p1: torch.Tensor, p2: torch.Tensor, f1: torch.Tensor, f2: torch.Tensor, temperature: float
) -> torch.Tensor:
    """CaSSLe's contrastive distillation ``1/2 [C(q->v) + C(v->q)]`` from one logits matrix.

    Equal to the mean of :func:`simclr_distill_loss_func` and
    :func:`simclr_distill_reverse_loss_func`; teacher constant, gradient into p.

    Args:
        p1: (B, D) distill-predictor outputs of view 1, not normalised.
        p2: (B, D) distill-predictor outputs of view 2, not normalised.
        f1: (B, D) teacher projections of view 1, not normalised (constant).
        f2: (B, D) teacher projections of view 2, not normalised (constant).
        temperature: T > 0.

    Returns:
        Scalar loss.
    """
    logits = _prediction_teacher_logits(p1, p2, f1, f2, temperature)
    target = _diagonal_target(logits)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


@full_precision
def negative_cosine_loss_func(p: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """``mean_n [-cos(p_n, f_n)]`` with the target f detached: CaSSLe's ``predictive`` regulariser when
    ``--distill_type`` is not ``byol`` (which uses ``2 - 2 cos`` instead).

    Args:
        p: (B, D) predictions of the past (gradient flows into them).
        f: (B, D) teacher projections (constant).

    Returns:
        Scalar loss in [-1, 1].
    """
    return -F.cosine_similarity(p, f.detach(), dim=1).mean()
