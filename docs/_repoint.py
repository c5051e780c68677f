#!/usr/bin/env python3
"""Temporary: re-point citations of documents outside the repository to docs/.

Rewrites, in a source tree,

    spec 4.1            -> docs/official.md §4.1
    spec 1.4 step 9     -> docs/official.md §1.4 step 9
    spec 8 item 11      -> docs/official.md §8 item 11
    spec 4.1-4.6        -> docs/official.md §4.1-4.6
    PNR_SPEC.md         -> docs/official.md
    DECISIONS.md ...    -> docs/decisions.md §Dn.m  (section chosen from keywords on the same line,
                                                     else plain docs/decisions.md)
    DESIGN.md           -> docs/architecture.md

plus a few phrasings ("the spec's formulas", "bug list 17", ...) listed in SPECIAL. It prints every
change as ``path:line`` with the old and new line, is idempotent (a second run changes nothing), and
finally lists any remaining mention it could not map, and lines the rewrite pushed past --max-len.

Usage:
    python docs/_repoint.py [ROOT] [--dry-run] [--max-len 120]

Delete this file (and docs/_citations.txt) once the tree has been re-pointed.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Callable, List, Tuple

OFFICIAL = "docs/official.md"
DECISIONS = "docs/decisions.md"
ARCHITECTURE = "docs/architecture.md"

SUFFIXES = (".py", ".sh", ".bash", ".md", ".toml", ".cfg", ".ini", ".yml", ".yaml")
PLAIN_NAMES = ("Makefile", "run")  # .ci/run has no suffix
# Skipped anywhere in the tree, and skipped only at the top level (cassle/data/ must be visited).
SKIP_ANYWHERE = {".git", ".venv", "venv", "__pycache__", ".pytest_cache", "node_modules", "wandb",
                 "lightning_logs"}
SKIP_AT_TOP = {"trained_models", "datasets", "data", "experiments", "runs"}
SKIP_FILES = {os.path.join("docs", "_repoint.py"), os.path.join("docs", "_citations.txt")}

# Exact phrasings, rewritten before the generic rules (order matters: longest first).
SPECIAL: List[Tuple[str, str]] = [
    ("spec 2.2, bug list 17", f"{OFFICIAL} §2.2 and §8 item 17"),
    ("spec 5.2 and 6", f"{OFFICIAL} §5.2 and §6"),
    ('spec 5.1 "Linear", spec 6', f"{OFFICIAL} §5.1 (linear probe flags) and §6"),
    ("spec 5.1 / DECISIONS.md", f"{OFFICIAL} §5.1, {DECISIONS} §D1.1"),
    ("spec 5.1 / DECISIONS", f"{OFFICIAL} §5.1, {DECISIONS} §D1.1"),
    ('DECISIONS.md "Distributed"', f"{DECISIONS} §D4.1"),
    ("written from the spec's formulas", f"written from the formulas of {OFFICIAL} §4"),
    ("against the spec's tables", f"against the recipe tables of {OFFICIAL} §5.2"),
    ("the formulas of the spec", f"the formulas of {OFFICIAL} §4"),
    ("(spec: trust ratio", f"({OFFICIAL} §3: trust ratio"),
]

# spec N, spec N.M, spec N.M-K.L, optionally written with a section sign.
SPEC_RE = re.compile(r"\b[Ss]pec\.? §?(\d+(?:\.\d+)?)(?:\s*-\s*(\d+(?:\.\d+)?))?")
PNR_SPEC_RE = re.compile(r"(?:\.\./shared/|/work/shared/)?PNR_SPEC\.md(?:,? (?:§|section )(\d+(?:\.\d+)?))?")
DESIGN_RE = re.compile(r"(?:\.\./shared/|/work/shared/)?DESIGN\.md")
DECISIONS_RE = re.compile(r'(?:\.\./shared/|/work/shared/)?DECISIONS(?:\.md)?(?: "[^"]*")?')

# Keyword on the same line -> section of docs/decisions.md. First match wins.
DECISION_KEYWORDS: List[Tuple[str, str]] = [
    (r"[Dd]istribut|all-reduce|world size|all-gather", "D4.1"),
    (r"rank 0|barrier", "D4.2"),
    (r"What g receives|g receives|input of g", "D3.1"),
    (r"[Tt]emperature", "D3.2"),
    (r"[Ss]tandardis|unbiased|biased variance", "D3.3"),
    (r"enqueue|queue", "D3.4"),
    (r"LARS|warm-up|EMA", "D3.5"),
    (r"two directions|sums its", "D3.6"),
    (r"strict|explicit exceptions|missing keys|checkpoint keys", "D3.7"),
    (r"teacher_bn_train|train mode", "D3.8"),
    (r"[Rr]e-seed|seed_everything", "D2.5"),
    (r"digits", "D2.2"),
    (r"cifar-100-python|md5|download", "D2.1"),
    (r"online eval|online_eval", "D2.4"),
    (r"divid|num_classes %", "D2.3"),
    (r"percent|[Ff]orgetting|[Ff]orward transfer|A_T", "D6"),
    (r"semi_supervised", "D8.3"),
    (r"label_fraction", "D5.5"),
    (r"precision|bf16", "D8.1"),
    (r"sync_batchnorm|SyncBatchNorm", "D8.8"),
    (r"SIGTERM|SIGINT|signal", "D8.6"),
    (r"--resume|run folder", "D1.4"),
    (r"dry_run|dry-run", "D1.3"),
    (r"--gpus|--accelerator|Lightning 1\.5", "D1.2"),
    (r"default|Fill derived|--scheduler|--num_tasks|--encoder", "D1.1"),
]

# Anything still mentioning an outside document after the rewrite.
LEFTOVER_RE = re.compile(
    r"\b[Ss]pec\b(?!ial|if|tr|ul)|PNR_SPEC|DECISIONS|DESIGN\.md|\.\./shared|/work/shared"
)


def decisions_target(line: str) -> str:
    for pattern, section in DECISION_KEYWORDS:
        if re.search(pattern, line):
            return f"{DECISIONS} §{section}"
    return DECISIONS


def rewrite_line(line: str) -> str:
    for old, new in SPECIAL:
        line = line.replace(old, new)

    def spec(m: "re.Match[str]") -> str:
        out = f"{OFFICIAL} §{m.group(1)}"
        return out + (f"-{m.group(2)}" if m.group(2) else "")

    line = SPEC_RE.sub(spec, line)
    line = PNR_SPEC_RE.sub(lambda m: f"{OFFICIAL} §{m.group(1)}" if m.group(1) else OFFICIAL, line)
    line = DESIGN_RE.sub(ARCHITECTURE, line)
    target = decisions_target(line)
    line = DECISIONS_RE.sub(lambda m: target, line)
    return line


def wanted(rel: str, name: str) -> bool:
    if rel in SKIP_FILES:
        return False
    return name.endswith(SUFFIXES) or name in PLAIN_NAMES


def iter_files(root: str):
    for dirpath, dirnames, filenames in os.walk(root):
        top = os.path.abspath(dirpath) == os.path.abspath(root)
        dirnames[:] = sorted(
            d for d in dirnames if d not in SKIP_ANYWHERE and not (top and d in SKIP_AT_TOP)
        )
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            rel = os.path.relpath(path, root)
            if wanted(rel, name):
                yield path, rel


def process(root: str, dry_run: bool, max_len: int) -> int:
    changes = 0
    long_lines: List[str] = []
    leftovers: List[str] = []
    for path, rel in iter_files(root):
        try:
            with open(path, encoding="utf-8") as fh:
                lines = fh.read().split("\n")
        except (UnicodeDecodeError, OSError):
            continue
        new_lines = []
        for number, line in enumerate(lines, 1):
            new = rewrite_line(line)
            if new != line:
                changes += 1
                print(f"{rel}:{number}\n  - {line.strip()}\n  + {new.strip()}")
                # Markdown table rows are long by nature; report only lines the rewrite pushed over.
                if len(new) > max_len >= len(line) and not new.lstrip().startswith("|"):
                    long_lines.append(f"{rel}:{number} ({len(new)} chars)")
            if LEFTOVER_RE.search(new):
                leftovers.append(f"{rel}:{number}: {new.strip()}")
            new_lines.append(new)
        if new_lines != lines and not dry_run:
            with open(path, "w", encoding="utf-8") as fh:
                fh.write("\n".join(new_lines))
    print(f"\n{changes} line(s) {'would change' if dry_run else 'changed'}")
    if long_lines:
        print(f"\nlonger than {max_len} characters after the rewrite (re-wrap by hand):")
        print("\n".join("  " + x for x in long_lines))
    if leftovers:
        print("\nstill mentioning an outside document (fix by hand):")
        print("\n".join("  " + x for x in leftovers))
    return changes


def main(argv: List[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("root", nargs="?", default=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    parser.add_argument("--dry-run", action="store_true", help="print the changes without writing")
    parser.add_argument("--max-len", type=int, default=120)
    args = parser.parse_args(argv)
    process(args.root, args.dry_run, args.max_len)
    return 0


if __name__ == "__main__":
    sys.exit(main())
