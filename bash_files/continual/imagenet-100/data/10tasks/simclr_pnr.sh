#!/usr/bin/env bash
# SimCLR + PNR: continual pretraining on ImageNet-100, data-incremental,
# 10 tasks. The recipe of ../simclr_pnr.sh (same environment and arguments) with
# NUM_TASKS fixed to 10: --num_tasks 10 and the default NAME simclr-pnr-imagenet100-data-10t.
set -euo pipefail
export NUM_TASKS=10
exec bash "$(dirname "${BASH_SOURCE[0]}")/../simclr_pnr.sh" "$@"
