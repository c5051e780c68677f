"""How the training data is cut into tasks (docs/official.md §2.1-2.4), without importing torch.

The official code draws its splits from torch's CPU random generator:

* class-incremental: ``torch.randperm(num_classes)`` right after ``seed_everything(seed)``, chunked into
  ``num_tasks`` consecutive blocks (task ``i`` = block ``i``, in permutation order);
* data-incremental: ``torch.utils.data.random_split`` over the file list with
  ``torch.Generator().manual_seed(42)`` (seed 42 hard-coded, independent of ``--seed``);
* domain-incremental (DomainNet): one domain per task, in the fixed order of :data:`DOMAINNET_DOMAINS`.

``--dry_run`` resolves the split without torch, so this module reproduces torch's CPU generator in
pure Python: torch seeds a standard mt19937 with ``init_genrand(seed)`` (the low 32 bits of the seed)
and, for ``n < 2**32 / 20``, ``randperm`` is a forward Fisher-Yates shuffle that draws one 32-bit output
per position (``z = u32 % (n - i)``, swap ``r[i]`` and ``r[i + z]``). The tests compare the result with
real torch for many seeds and sizes.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from cassle.errors import CassleError

#: DomainNet task order of the official scripts: task ``t`` trains on ``DOMAINNET_DOMAINS[t]``.
DOMAINNET_DOMAINS = ("real", "quickdraw", "painting", "sketch", "infograph", "clipart")

#: Seed of the data-incremental split; the official code hard-codes 42 (docs/official.md §2.2 and §8 item 17).
DATA_SPLIT_SEED = 42

SPLIT_STRATEGIES = ("class", "data", "domain")

_MASK32 = 0xFFFFFFFF
# Above this size torch's randperm switches to 64-bit draws; the pure-Python copy does not follow it.
_RANDPERM_SMALL_LIMIT = _MASK32 // 20


def _mt19937(seed: int) -> random.Random:
    """A ``random.Random`` whose mt19937 state is ``init_genrand(seed & 0xffffffff)``.

    ``random.Random(seed)`` would use ``init_by_array`` instead, which gives a different stream.
    """
    state = [0] * 624
    state[0] = seed & _MASK32
    for i in range(1, 624):
        prev = state[i - 1]
        state[i] = (1812433253 * (prev ^ (prev >> 30)) + i) & _MASK32
    rng = random.Random()
    # index 624 = "state exhausted": the first draw regenerates the block, as a freshly seeded mt19937.
    rng.setstate((3, tuple(state) + (624,), None))
    return rng


def torch_randperm(n: int, seed: int) -> list[int]:
    """``torch.manual_seed(seed); torch.randperm(n).tolist()`` on CPU, computed without torch.

    Also equals ``torch.randperm(n, generator=torch.Generator().manual_seed(seed))``.
    Valid for ``0 <= n < 2**32 / 20`` (about 214 million), far above any dataset used here.
    """
    n = int(n)
    if n < 0:
        raise ValueError(f"torch_randperm: n must be >= 0, got {n}")
    if n >= _RANDPERM_SMALL_LIMIT:
        raise ValueError(f"torch_randperm: n={n} is too large for the 32-bit draw path")
    rng = _mt19937(int(seed))
    draw = rng.getrandbits
    perm = list(range(n))
    for i in range(n - 1):
        z = draw(32) % (n - i)
        perm[i], perm[i + z] = perm[i + z], perm[i]
    return perm


def class_split(num_classes: int, num_tasks: int, seed: int) -> list[list[int]]:
    """Classes of each task: ``randperm(num_classes)`` (seeded with ``seed``) chunked into ``num_tasks``
    consecutive equal blocks, each kept in permutation order (not sorted).

    Raises :class:`CassleError` naming ``--num_tasks`` when ``num_classes % num_tasks != 0`` (the official
    code requires equal tasks).
    """
    num_classes = int(num_classes)
    num_tasks = int(num_tasks)
    if num_tasks < 1:
        raise CassleError(f"--num_tasks must be >= 1, got {num_tasks}")
    if num_classes % num_tasks != 0:
        raise CassleError(
            f"--num_tasks {num_tasks} does not divide the {num_classes} classes "
            f"(the class split needs equal tasks; choose a divisor of {num_classes})"
        )
    perm = torch_randperm(num_classes, seed)
    per_task = num_classes // num_tasks
    return [perm[t * per_task:(t + 1) * per_task] for t in range(num_tasks)]


def data_split_lengths(num_samples: int, num_tasks: int) -> list[int]:
    """``[N // T] * T`` with the remainder ``N % T`` added to task 0 (official data-incremental lengths)."""
    num_samples = int(num_samples)
    num_tasks = int(num_tasks)
    if num_tasks < 1:
        raise CassleError(f"--num_tasks must be >= 1, got {num_tasks}")
    lengths = [num_samples // num_tasks] * num_tasks
    lengths[0] += num_samples % num_tasks
    return lengths


def data_split(num_samples: int, num_tasks: int, seed: int = DATA_SPLIT_SEED) -> list[list[int]]:
    """Sample indices of each task for the data-incremental setting.

    Equal to the index lists of ``torch.utils.data.random_split(range(N), lengths,
    generator=torch.Generator().manual_seed(seed))`` with the lengths of :func:`data_split_lengths`:
    one ``randperm(N)`` cut into consecutive pieces.
    """
    lengths = data_split_lengths(num_samples, num_tasks)
    if num_tasks > num_samples:
        raise CassleError(
            f"--num_tasks {num_tasks} is larger than the {num_samples} training samples (data split)"
        )
    perm = torch_randperm(num_samples, seed)
    out = []
    start = 0
    for length in lengths:
        out.append(perm[start:start + length])
        start += length
    return out


def domain_split(num_tasks: int, domains: Sequence[str] = DOMAINNET_DOMAINS) -> list[str]:
    """Domain name of each task (DomainNet: the six domains in the official order, one per task)."""
    num_tasks = int(num_tasks)
    if num_tasks != len(domains):
        raise CassleError(
            f"--num_tasks {num_tasks} does not fit the domain split: DomainNet has {len(domains)} "
            f"domains, one per task ({', '.join(domains)}); use --num_tasks {len(domains)}"
        )
    return list(domains)


def task_domain(task_idx: int, num_tasks: int = len(DOMAINNET_DOMAINS)) -> str:
    """The DomainNet domain trained at task ``task_idx``."""
    names = domain_split(num_tasks)
    if not 0 <= int(task_idx) < len(names):
        raise CassleError(f"--task_idx {task_idx} is out of range for {len(names)} tasks")
    return names[int(task_idx)]
