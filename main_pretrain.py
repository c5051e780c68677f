#!/usr/bin/env python
"""Continual self-supervised pretraining: trains tasks --task_idx .. --num_tasks - 1, one after another.

Examples:
    python main_pretrain.py --dataset digits --method simclr --accelerator cpu --max_epochs 2
    python main_pretrain.py --dataset cifar100 --data_dir ./datasets --method byol --distiller byol_pnr --dry_run

Exit status: 0 done; 2 a bad flag, path, file or checkpoint (one line on stderr); 130 / 143 interrupted by
SIGINT / SIGTERM (one line with the command that continues the run).
"""

from __future__ import annotations

import json
import os
import sys

from cassle.errors import CassleError, one_line


def main(argv: list[str] | None = None) -> int:
    from cassle.args.pretrain import parse_namespace, trainer_config
    from cassle.config import build_config

    try:
        ns = parse_namespace(argv)
        cfg = build_config(ns, trainer_config(ns))
        if ns.dry_run:
            print(json.dumps(cfg.to_flat(), indent=2))
            return 0
        from cassle.train import Interrupted, run_continual

        try:
            run_continual(cfg)
        except Interrupted as err:
            from cassle.utils.launch import launch_rank

            if launch_rank(cfg.trainer.num_devices) > 0:
                # A follower rank: rank 0 says it. Lightning's launcher kills rank 0 when one of the ranks it
                # started exits non-zero, so those end with 0; the other launchers see the signal's code.
                return 0 if "RANK" not in os.environ and "SLURM_PROCID" not in os.environ else err.exit_code
            print(f"error: {err}", file=sys.stderr)
            return err.exit_code
    except CassleError as err:
        print(f"error: {one_line(err)}", file=sys.stderr)
        return 2
    except OSError as err:  # disk full, permissions, ...: about the machine, not the code
        from cassle.utils.files import describe_os_error

        print(f"error: {describe_os_error(err, err.filename or 'a file')}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted: finished tasks are kept; continue with --resume", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
