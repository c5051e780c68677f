"""Slow, explicit references for the losses, written straight from the formulas of docs/official.md §4.

Plain Python floats (float64), explicit loops over rows i and candidates j, math.exp / math.log.
Nothing here shares code with cassle.losses, so a mistake there cannot hide in both places.
"""

import math
from collections.abc import Sequence

import torch

Rows = list[list[float]]


def rows(t: torch.Tensor) -> Rows:
    """(N, D) tensor -> list of N lists of D Python floats."""
    return [[float(x) for x in r] for r in t.detach().double().cpu().tolist()]


def columns(t: torch.Tensor) -> Rows:
    """(D, K) tensor -> list of K columns, each a list of D floats."""
    return rows(t.t())


def dot(a: Sequence[float], b: Sequence[float]) -> float:
    return sum(x * y for x, y in zip(a, b))


def normalise(a: Sequence[float]) -> list[float]:
    norm = math.sqrt(dot(a, a))
    return [x / norm for x in a]


def cos(a: Sequence[float], b: Sequence[float]) -> float:
    return dot(normalise(a), normalise(b))


def mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


# ------------------------------------------------------------------------------------- SimCLR


def simclr(z1: torch.Tensor, z2: torch.Tensor, t: float) -> float:
    u = [normalise(r) for r in rows(z1) + rows(z2)]
    n, b = len(u), len(u) // 2
    losses = []
    for i in range(n):
        partner = (i + b) % n
        numerator = math.exp(dot(u[i], u[partner]) / t)
        denominator = sum(math.exp(dot(u[i], u[j]) / t) for j in range(n) if j != i)
        losses.append(-math.log(numerator / denominator))
    return mean(losses)


def simclr_multicrop(crops: Sequence[torch.Tensor], t: float, labels=None) -> float:
    """Row k*B + i is crop k of image i. Positives of anchor a: every other row of the same image
    (unsupervised) or of an image with the same label (supervised). Per positive p:
    -log( exp(u_a.u_p/t) / sum_{j != a} exp(u_a.u_j/t) ), averaged over the positives, then over
    the anchors."""
    b = crops[0].size(0)
    u = [normalise(r) for crop in crops for r in rows(crop)]
    n = len(u)
    if labels is None:
        group = [row % b for row in range(n)]
    else:
        group = [int(labels[row % b]) for row in range(n)]
    losses = []
    for a in range(n):
        denominator = sum(math.exp(dot(u[a], u[j]) / t) for j in range(n) if j != a)
        positives = [p for p in range(n) if p != a and group[p] == group[a]]
        losses.append(
            mean([-math.log(math.exp(dot(u[a], u[p]) / t) / denominator) for p in positives])
        )
    return mean(losses)


# --------------------------------------------------------------------------------------- MoCo


def queue_infonce(
    anchor: torch.Tensor, positive: torch.Tensor, queues: Sequence[torch.Tensor], t: float
) -> float:
    """mean_i -log( exp(a_i.p_i/t) / (exp(a_i.p_i/t) + sum over all queue columns c exp(a_i.c/t)) ).

    Inputs are taken as already normalised.
    """
    a, p = rows(anchor), rows(positive)
    negatives = [c for queue in queues for c in columns(queue)]
    losses = []
    for i in range(len(a)):
        numerator = math.exp(dot(a[i], p[i]) / t)
        denominator = numerator + sum(math.exp(dot(a[i], c) / t) for c in negatives)
        losses.append(-math.log(numerator / denominator))
    return mean(losses)


# --------------------------------------------------------------------------------------- BYOL


def byol(p: torch.Tensor, z: torch.Tensor) -> float:
    return mean([2 - 2 * cos(a, b) for a, b in zip(rows(p), rows(z))])


# ------------------------------------------------------------------------------- Barlow Twins


def batchnorm_standardise(m: Rows, eps: float = 1e-5) -> Rows:
    n, d = len(m), len(m[0])
    out = [[0.0] * d for _ in range(n)]
    for k in range(d):
        col = [m[r][k] for r in range(n)]
        mu = sum(col) / n
        var = sum((x - mu) ** 2 for x in col) / n  # biased, as BatchNorm in training mode
        for r in range(n):
            out[r][k] = (col[r] - mu) / math.sqrt(var + eps)
    return out


def barlow(z1: torch.Tensor, z2: torch.Tensor, lamb: float, scale: float) -> float:
    a, b = batchnorm_standardise(rows(z1)), batchnorm_standardise(rows(z2))
    n, d = len(a), len(a[0])
    c = [[sum(a[r][i] * b[r][j] for r in range(n)) / n for j in range(d)] for i in range(d)]
    on_diag = sum((1 - c[i][i]) ** 2 for i in range(d))
    off_diag = sum(c[i][j] ** 2 for i in range(d) for j in range(d) if i != j)
    return scale * (on_diag + lamb * off_diag)


# ------------------------------------------------------------------------------------- VICReg


def mse(z1: torch.Tensor, z2: torch.Tensor) -> float:
    a, b = rows(z1), rows(z2)
    return mean([(x - y) ** 2 for ra, rb in zip(a, b) for x, y in zip(ra, rb)])


def _column_means(m: Rows) -> list[float]:
    return [sum(r[k] for r in m) / len(m) for k in range(len(m[0]))]


def vicreg_variance(z1: torch.Tensor, z2: torch.Tensor) -> float:
    total = 0.0
    for z in (rows(z1), rows(z2)):
        n, d = len(z), len(z[0])
        mu = _column_means(z)
        hinges = []
        for k in range(d):
            var = sum((r[k] - mu[k]) ** 2 for r in z) / (n - 1)
            hinges.append(max(0.0, 1 - math.sqrt(var + 1e-4)))
        total += mean(hinges)
    return total


def vicreg_covariance(z1: torch.Tensor, z2: torch.Tensor) -> float:
    total = 0.0
    for z in (rows(z1), rows(z2)):
        n, d = len(z), len(z[0])
        mu = _column_means(z)
        for i in range(d):
            for j in range(d):
                if i != j:
                    cov = sum((r[i] - mu[i]) * (r[j] - mu[j]) for r in z) / (n - 1)
                    total += cov**2 / d
    return total


# ------------------------------------------------------------------------- CaSSLe contrastive


def contrastive_direction(anchors: Rows, candidates: Rows, t: float) -> float:
    """mean_i -log( exp(a_i.c_i/t) / sum over ALL j exp(a_i.c_j/t) ), rows normalised here."""
    a = [normalise(r) for r in anchors]
    c = [normalise(r) for r in candidates]
    losses = []
    for i in range(len(a)):
        numerator = math.exp(dot(a[i], c[i]) / t)
        denominator = sum(math.exp(dot(a[i], c[j]) / t) for j in range(len(c)))
        losses.append(-math.log(numerator / denominator))
    return mean(losses)


# ----------------------------------------------------------------------------------------- PNR


def simclr_pnr(z1, z2, p1, p2, f1, f2, t: float) -> tuple[float, float]:
    """(mean_i L_main,i, mean_i L_reg,i) of docs/official.md §4.1."""
    u = [normalise(r) for r in rows(z1) + rows(z2)]
    v = [normalise(r) for r in rows(f1) + rows(f2)]
    q = [normalise(r) for r in rows(p1) + rows(p2)]
    n, b = len(u), len(u) // 2
    main, reg = [], []
    for i in range(n):
        partner = (i + b) % n
        numerator = math.exp(dot(u[i], u[partner]) / t)
        denominator = sum(math.exp(dot(u[i], u[j]) / t) for j in range(n) if j != i)
        denominator += sum(math.exp(dot(u[i], v[j]) / t) for j in range(n) if j != i)
        main.append(-math.log(numerator / denominator))

        numerator = math.exp(dot(q[i], v[i]) / t)
        denominator = sum(math.exp(dot(q[i], v[j]) / t) for j in range(n) if j != i)
        denominator += sum(math.exp(dot(q[i], u[j]) / t) for j in range(n) if j != i)
        reg.append(-math.log(numerator / denominator))
    return mean(main), mean(reg)


def byol_pnr(p1, p2, f1, f2) -> tuple[float, float]:
    positive = 0.5 * (byol(p1, f1) + byol(p2, f2))
    negative = 0.5 * (byol(p1, f2) + byol(p2, f1))
    return positive, negative


def barlow_pnr(p1, p2, f1, f2, lamb: float, scale: float) -> tuple[float, float]:
    positive = 0.5 * (barlow(p1, f1, lamb, scale) + barlow(p2, f2, lamb, scale))
    negative = 0.5 * sum(
        mean([-cos(a, b) for a, b in zip(rows(p), rows(f))]) for p, f in ((p1, f2), (p2, f1))
    )
    return positive, negative


def vicreg_pnr(p1, p2, f1, f2) -> tuple[float, float]:
    positive = 0.5 * (mse(p1, f1) + mse(p2, f2))
    negative = 0.5 * (mse(p1, f2) + mse(p2, f1))
    return positive, negative


# ------------------------------------------------------------------------------- multi-crop
# Crops 0 .. L-1 are the large ones. Pairs are enumerated here with their own loops.


def byol_multicrop(predictions, momentum) -> float:
    """sum over large targets t and every other crop c of byol(p_c, m_t)."""
    total = 0.0
    for t in range(len(momentum)):
        for c in range(len(predictions)):
            if c != t:
                total += byol(predictions[c], momentum[t])
    return total


def moco_multicrop(queries, keys, queues, t: float) -> float:
    """mean over (large target k, other crop c) of queue_infonce(q_c, k_k, [queue_k])."""
    terms = []
    for k in range(len(keys)):
        for c in range(len(queries)):
            if c != k:
                terms.append(queue_infonce(queries[c], keys[k], [queues[k]], t))
    return mean(terms)


def _unordered_large_pairs(num_large: int, num_crops: int) -> list[tuple[int, int]]:
    pairs = []
    for a in range(num_crops):
        for b in range(num_crops):
            if a < b and a < num_large:
                pairs.append((a, b))
    return pairs


def barlow_multicrop(crops, num_large: int, lamb: float, scale: float) -> float:
    pairs = _unordered_large_pairs(num_large, len(crops))
    return mean([barlow(crops[a], crops[b], lamb, scale) for a, b in pairs])


def vicreg_multicrop(crops, num_large: int, w_sim: float, w_var: float, w_cov: float) -> float:
    pairs = _unordered_large_pairs(num_large, len(crops))
    return mean([
        w_sim * mse(crops[a], crops[b])
        + w_var * vicreg_variance(crops[a], crops[b])
        + w_cov * vicreg_covariance(crops[a], crops[b])
        for a, b in pairs
    ])
