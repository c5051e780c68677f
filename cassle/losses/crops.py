"""Which crops a multi-crop loss compares (torch-free).

Crops are numbered as the loaders deliver them: the large crops first (0 .. L-1), then the small
crops (L .. C-1). Large crops are the only ones a momentum encoder or a teacher sees, so every pair
below has at least one large crop.
"""


__all__ = ["target_pairs", "symmetric_pairs"]


def _check(num_large_crops: int, num_crops: int) -> None:
    if num_crops < 2:
        raise ValueError(f"a multi-crop loss needs at least 2 crops, got {num_crops}")
    if not 1 <= num_large_crops <= num_crops:
        raise ValueError(f"{num_large_crops} large crops out of {num_crops} crops")


def target_pairs(num_large_crops: int, num_crops: int) -> list[tuple[int, int]]:
    """Ordered pairs for the asymmetric losses (BYOL, MoCo): a target crop and an online crop.

    Every large crop t is a target (momentum projection or key) for every other crop c != t, as
    solo-learn's BYOL does; with 2 crops the pairs are (0, 1) and (1, 0), the two directions.

    Args:
        num_large_crops: L >= 1.
        num_crops: C >= max(L, 2), large and small crops together.

    Returns:
        L * (C - 1) pairs ``(t, c)``, t-major.
    """
    _check(num_large_crops, num_crops)
    return [(t, c) for t in range(num_large_crops) for c in range(num_crops) if c != t]


def symmetric_pairs(num_large_crops: int, num_crops: int) -> list[tuple[int, int]]:
    """Unordered pairs for the symmetric losses (Barlow Twins, VICReg): each pair once.

    Every pair of crops with at least one large crop; with 2 crops the single pair (0, 1).

    Args:
        num_large_crops: L >= 1.
        num_crops: C >= max(L, 2).

    Returns:
        ``L (L - 1) / 2 + L (C - L)`` pairs ``(a, b)`` with a < b and a a large crop.
    """
    _check(num_large_crops, num_crops)
    return [(a, b) for a in range(num_large_crops) for b in range(a + 1, num_crops)]
