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
    from cassle.args.pretrain import parse_namespace, trainer_config
    from cassle.config import build_config

    try:
        ns = parse_namespace(argv)
        cfg = build_config(ns, trainer_config(ns))
        if ns.dry_run:
            print(json.dumps(cfg.to_flat(), indent=2))
            return 0
        from cassle.train import run_continual

        run_continual(cfg)
    except CassleError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished tasks are kept; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
