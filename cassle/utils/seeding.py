"""Seeds derived from a base seed and a few labels, the same in every process, on every platform.

Every random stream of the training data (the order of an epoch, the augmentation of a batch on the device,
the augmentation of one sample in a CPU worker) gets its own seed from :func:`derive_seed`, so that a stream
depends only on what it is for (task, epoch, rank, sample) and not on how many draws other streams made, on
worker scheduling or on where a run was resumed. Torch-free.
"""

from __future__ import annotations

import hashlib
import operator

__all__ = ["SEED_BITS", "derive_seed"]

#: Derived seeds lie in [0, 2**SEED_BITS): non-negative and representable as an int64 (torch, numpy).
SEED_BITS = 63


def _encode(part: int | str) -> bytes:
    """Type-tagged, length-prefixed bytes of one part, so that no two part lists share an encoding
    (``("1", 2)`` differs from ``(1, "2")`` and from ``("12",)``)."""
    if isinstance(part, str):
        tag, body = b"s", part.encode("utf-8")
    else:
        tag, body = b"i", str(operator.index(part)).encode("ascii")  # any integer type (numpy included)
    return tag + len(body).to_bytes(4, "little") + body


def derive_seed(base_seed: int, *parts: int | str) -> int:
    """A seed for the random stream named by ``parts`` under ``base_seed``.

    BLAKE2b of the encoded seed and parts (not Python's ``hash``, which is salted per process for strings),
    so the value is stable across processes, machines and Python versions. Derived seeds can be derived
    from again: ``derive_seed(derive_seed(s, "task", 1), 3)`` names a sub-stream of the task stream.

    Args:
        base_seed: the run's seed (any integer, negative included).
        parts: integers (epoch, rank, sample index, ...) and strings (stream names).

    Returns:
        An integer in ``[0, 2**63)``.

    Raises:
        TypeError: if a part is neither a string nor an integer.
    """
    digest = hashlib.blake2b(digest_size=8)
    for part in (base_seed, *parts):
        digest.update(_encode(part))
    return int.from_bytes(digest.digest(), "little") >> (64 - SEED_BITS)
