"""Plain-text reporting shared by the driver, the evaluation and the benchmark (torch-free)."""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence
from typing import Any


def log(message: str) -> None:
    """Progress and notes go to stderr, results to stdout."""
    print(message, file=sys.stderr, flush=True)


def is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt(value: Any, digits: int = 1) -> str:
    """A number with ``digits`` decimals, or "-" for a missing or non-finite value."""
    return f"{value:.{digits}f}" if is_finite_number(value) else "-"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[str]:
    """Lines of a markdown table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    line = lambda r: "| " + " | ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                                       for i, (c, w) in enumerate(zip(r, widths))) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return [line(header), sep] + [line(r) for r in rows]
