#!/usr/bin/env python
"""Continual self-supervised pretraining: trains tasks --task_idx .. --num_tasks - 1, one after another.

Examples:
    python main_pretrain.py --dataset digits --method simclr --accelerator cpu --max_epochs 2
    python main_pretrain.py --dataset cifar100 --data_dir ./datasets --method byol --distiller byol_pnr --dry_run
"""

from __future__ import annotations

import json
import sys

from cassle.errors import CassleError


def main(argv: list[str] | None = None) -> int:
    from cassle.args.pretrain import config_dict, parse_args

    try:
        args = parse_args(argv)
        if args.dry_run:
            print(json.dumps(config_dict(args), indent=2))
            return 0
        from cassle.train import run_continual

        run_continual(args)
    except CassleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished tasks are kept; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
