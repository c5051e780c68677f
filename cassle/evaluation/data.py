"""The probe's data: the datasets (read once per evaluation), the labelled training subset, loaders."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cassle.errors import CassleError
from cassle.evaluation.config import SEMI_SUPERVISED_SEED, LinearConfig


def balanced_subset(targets: Sequence[int], indices: Sequence[int], fraction: float, seed: int) -> list[int]:
    """A class-balanced subset of ``indices`` for ``--label_fraction``.

    Per class c with n_c samples among ``indices``: ``max(1, round(fraction * n_c))`` of them (rounding
    half up), drawn with ``numpy.random.RandomState(seed)`` class by class in ascending class order, so
    the subset is fixed by the seed. ``fraction >= 1`` keeps every index.

    Returns:
        The chosen indices, ascending.
    """
    import numpy as np

    if fraction >= 1.0:
        return sorted(int(i) for i in indices)
    by_class: dict[int, list[int]] = {}
    for i in sorted(int(i) for i in indices):
        by_class.setdefault(int(targets[i]), []).append(i)
    rng = np.random.RandomState(seed)
    chosen: list[int] = []
    for c in sorted(by_class):
        members = by_class[c]
        k = max(1, int(math.floor(fraction * len(members) + 0.5)))
        chosen.extend(members[p] for p in rng.permutation(len(members))[:k])
    return sorted(chosen)


def semi_supervised_subset(targets: Sequence[int], indices: Sequence[int], fraction: float) -> list[int]:
    """The official ``--semi_supervised`` subset of ``indices`` (docs/official.md §6).

    The official probe keeps the first part of scikit-learn's
    ``train_test_split(range(n), train_size=fraction, stratify=targets, random_state=42)`` over its
    training set; here the same call runs over ``indices`` (all training images, or one DomainNet
    domain's with ``--domain``), so on the whole set it picks exactly the official images.

    Returns:
        The chosen indices, ascending.
    """
    from sklearn.model_selection import train_test_split

    indices = [int(i) for i in indices]
    try:
        chosen = train_test_split(indices, train_size=fraction, stratify=[int(targets[i]) for i in indices],
                                  random_state=SEMI_SUPERVISED_SEED)[0]
    except ValueError as err:  # e.g. fewer labelled images than classes, or a class with one image
        raise CassleError(f"--semi_supervised {fraction:g}: scikit-learn cannot split {len(indices)} training "
                          f"images this way ({str(err).splitlines()[0]})") from None
    return sorted(int(i) for i in chosen)


class ProbeData:
    """The probe's datasets, read once (on first use) and shared by every probe of a run.

    DomainNet is always read with all six domains; ``--domain`` and the domain-aware probes select
    samples by their domain tag.
    """

    def __init__(self, config: LinearConfig):
        self.config = config
        self._sets: tuple[Any, Any] | None = None

    def _load(self) -> tuple[Any, Any]:
        if self._sets is None:
            from cassle.data.datasets import build_datasets

            c = self.config
            # STL-10: the probe trains on the labelled training images only (the official "train" split)
            self._sets = build_datasets(c.dataset, data_dir=c.data_dir, train_dir=c.train_dir, val_dir=c.val_dir,
                                        unlabeled=False)
        return self._sets

    @property
    def train(self) -> Any:
        return self._load()[0]

    @property
    def val(self) -> Any:
        return self._load()[1]

    @staticmethod
    def _select(dataset: Any, domain: str | None) -> list[int]:
        if domain is None:
            return list(range(len(dataset.targets)))
        from cassle.data.splits import DOMAINNET_DOMAINS

        tags = getattr(dataset, "domains", None)
        if tags is None:
            raise CassleError(f"--domain {domain}: the {dataset.__class__.__name__} samples carry no domain tags")
        wanted = DOMAINNET_DOMAINS.index(domain)
        return [i for i, d in enumerate(tags) if int(d) == wanted]

    def train_indices(self, domain: str | None = None) -> list[int]:
        """Training samples of the probe: all (or one domain's), then the labelled subset of
        ``--semi_supervised`` or ``--label_fraction`` (the two are exclusive)."""
        c = self.config
        indices = self._select(self.train, domain)
        if c.semi_supervised is not None:
            return semi_supervised_subset(self.train.targets, indices, c.semi_supervised)
        return balanced_subset(self.train.targets, indices, c.label_fraction, c.seed)

    def val_indices(self, domain: str | None = None) -> list[int]:
        return self._select(self.val, domain)

    def loader(self, split: str, indices: Sequence[int], augment: bool = False, seed: int = 0,
               persistent: bool = False) -> Any:
        """Items ``(X, y)`` or ``(X, y, domain)`` of ``indices`` in batches of ``--batch_size``.

        ``augment``: the probe's training loader (its crop + flip pipeline, reshuffled every epoch from
        ``seed``, the last partial batch dropped as the official probe does); otherwise the evaluation
        pipeline, in order, every sample kept.
        """
        import torch
        from torch.utils.data import DataLoader, Subset

        from cassle.data.augmentations import build_linear_train_transform, build_val_transform
        from cassle.data.datasets import with_transform

        c = self.config
        build = build_linear_train_transform if augment else build_val_transform
        base = with_transform(self.train if split == "train" else self.val, build(c.data_spec))
        workers = int(c.num_workers)
        return DataLoader(Subset(base, list(indices)), batch_size=int(c.batch_size), shuffle=augment,
                          drop_last=augment, num_workers=workers, pin_memory=torch.cuda.is_available(),
                          persistent_workers=persistent and workers > 0,
                          generator=torch.Generator().manual_seed(int(seed)) if augment else None)
