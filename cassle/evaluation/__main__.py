"""``python -m cassle.evaluation``: summaries of evaluated runs; the last checkpoint of a run.

    python -m cassle.evaluation summary RUN_DIR [RUN_DIR ...]
    python -m cassle.evaluation latest-checkpoint RUN_DIR

A bad path, a folder that is not a run folder or a corrupt results file is one line on stderr and
exit status 2. ``summary`` imports no torch.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from cassle.errors import CassleError, CheckpointError


def latest_checkpoint(run_dir: str) -> str:
    """The final checkpoint of the last finished task of a run folder (from its manifest)."""
    from cassle.evaluation.run import finished_tasks

    manifest, finished = finished_tasks(run_dir)
    path = manifest.checkpoint(finished[-1])
    if not os.path.isfile(path):
        raise CheckpointError(f"the manifest of {run_dir} lists {path} for task {finished[-1]}, which does not exist")
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cassle.evaluation",
                                     description="Summaries of evaluated runs; the last checkpoint of a run.")
    sub = parser.add_subparsers(dest="command", required=True)
    summary = sub.add_parser("summary", help="one markdown table of the runs' results.json, with published numbers")
    summary.add_argument("run_dirs", nargs="+")
    latest = sub.add_parser("latest-checkpoint", help="print the final checkpoint of the last finished task")
    latest.add_argument("run_dir")
    opts = parser.parse_args(argv)
    try:
        if opts.command == "summary":
            from cassle.evaluation.report import summarize_runs

            print(summarize_runs(opts.run_dirs))
        else:
            print(latest_checkpoint(opts.run_dir))
    except CassleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
