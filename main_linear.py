#!/usr/bin/env python
"""Linear probe of a frozen backbone (docs/official.md §6): one checkpoint, a random backbone, or every task of a run.

Examples:
    python main_linear.py --pretrained_feature_extractor trained_models/r/task4/final.ckpt --dataset digits \
        --accelerator cpu --cache_features
    python main_linear.py --run_dir trained_models/r --dataset digits --accelerator cpu --cache_features
    python main_linear.py --random_init --dataset digits --accelerator cpu --cache_features
    python main_linear.py --run_dir trained_models/r --dataset cifar100 --data_dir ./datasets --lr 1.0 --dry_run
"""

from __future__ import annotations

import json
import sys

from cassle.errors import CassleError


def main(argv: list[str] | None = None) -> int:
    from cassle.args.linear import parse_args

    try:
        config = parse_args(argv)
        if config.dry_run:
            print(json.dumps(config.to_dict(), sort_keys=True, default=str))
            return 0
        from cassle.evaluation.run import linear_main

        linear_main(config)
    except CassleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
