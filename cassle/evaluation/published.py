"""Linear-probe accuracies that papers and their repositories report, each with its source (torch-free).

``python -m cassle.evaluation summary`` prints them beside a run's own final accuracy when the
setting matches: (dataset, split strategy, number of tasks, method, regulariser family). A number
without a source that one can open is not listed; where none is known the summary prints "-".
Compare within one paper's runs rather than across papers: the PNR paper re-ran its baselines
(its MoCo + CaSSLe on ImageNet-100, 5 class-incremental tasks, is 63.49, where CaSSLe's own figure
shows 68.8).
"""

from __future__ import annotations

from dataclasses import dataclass

FAMILIES = ("finetune", "cassle", "pnr")


@dataclass(frozen=True)
class Source:
    """Where published numbers come from and how sure the reading is."""

    key: str
    description: str
    url: str
    confidence: str


@dataclass(frozen=True)
class PublishedNumber:
    """One reported final linear-probe top-1 accuracy (percent) after the last task.

    ``method`` None: the source does not say which SSL method the number belongs to (it matches a run
    of any method with that regulariser family).
    """

    dataset: str
    split_strategy: str
    num_tasks: int
    method: str | None
    family: str
    value: float
    source: str


SOURCES: dict[str, Source] = {s.key: s for s in (
    Source("cassle-readme",
           "CaSSLe (Fini et al., CVPR 2022), results figure of its repository's README (assets/results.png), "
           "5 class-incremental tasks; values read from the bar labels",
           "https://github.com/DonkeyShot21/cassle",
           "sure: the figure labels each bar with its value"),
    Source("pnr-aggregator",
           "PNR (Cha, Cho and Moon, ICML 2024; arXiv 2306.05101) as listed by a results aggregator, "
           "one best value per benchmark",
           "https://www.wizwand.com/paper/68fa738e1e209131cea5d334",
           "less sure: the SSL method behind each number is not stated, and the paper's own tables "
           "were not read"),
    Source("pnr-paper-baseline",
           "PNR paper (arXiv 2306.05101), its re-run of MoCo + CaSSLe, as listed by the Papers-with-Code "
           "archive",
           "https://paperswithcode2.com/paper/372726",
           "fairly sure: method and setting are named; read from the archive, not the paper's table"),
)}

_CASSLE_README = {  # (dataset, method): (fine-tuning, CaSSLe)
    ("cifar100", "byol"): (52.7, 62.2),
    ("cifar100", "barlow_twins"): (54.3, 60.4),
    ("cifar100", "mocov2plus"): (47.3, 59.5),
    ("cifar100", "simclr"): (48.9, 58.3),
    ("cifar100", "vicreg"): (51.5, 53.6),
    ("imagenet100", "byol"): (66.0, 66.4),
    ("imagenet100", "barlow_twins"): (63.1, 68.2),
    ("imagenet100", "mocov2plus"): (62.0, 68.8),
    ("imagenet100", "simclr"): (61.5, 68.0),
    ("imagenet100", "vicreg"): (61.3, 64.8),
}

PUBLISHED: list[PublishedNumber] = [
    PublishedNumber(dataset, "class", 5, method, family, value, "cassle-readme")
    for (dataset, method), values in _CASSLE_README.items()
    for family, value in zip(("finetune", "cassle"), values)
] + [
    PublishedNumber("cifar100", "class", 5, None, "pnr", 63.19, "pnr-aggregator"),
    PublishedNumber("cifar100", "class", 10, None, "pnr", 59.29, "pnr-aggregator"),
    PublishedNumber("imagenet100", "class", 5, None, "pnr", 67.85, "pnr-aggregator"),
    PublishedNumber("imagenet100", "class", 10, None, "pnr", 60.75, "pnr-aggregator"),
    PublishedNumber("imagenet100", "data", 5, None, "pnr", 76.67, "pnr-aggregator"),
    PublishedNumber("imagenet100", "data", 10, None, "pnr", 67.83, "pnr-aggregator"),
    PublishedNumber("domainnet", "domain", 6, None, "pnr", 53.8, "pnr-aggregator"),
    PublishedNumber("imagenet100", "class", 5, "mocov2plus", "cassle", 63.49, "pnr-paper-baseline"),
]


def regulariser_family(distiller: str | None) -> str:
    """``finetune`` (no regulariser), ``pnr`` or ``cassle`` for a ``--distiller`` name; ``other`` if unknown."""
    from cassle.registry import REGULARIZERS

    if not distiller:
        return "finetune"
    spec = REGULARIZERS.get(distiller)
    return spec.family if spec is not None else "other"


def find_published(dataset: str | None, split_strategy: str | None, num_tasks: int | None,
                   method: str | None, family: str) -> list[PublishedNumber]:
    """The published numbers of a setting: those of its method, then those whose method is not stated."""
    same = [p for p in PUBLISHED if (p.dataset, p.split_strategy, p.num_tasks, p.family)
            == (dataset, split_strategy, num_tasks, family)]
    return [p for p in same if p.method == method] + [p for p in same if p.method is None]
