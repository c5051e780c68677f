#!/usr/bin/env bash
# BYOL + PNR: continual pretraining on CIFAR-100, class-incremental,
# 10 tasks. The recipe of ../byol_pnr.sh (same environment and arguments) with
# NUM_TASKS fixed to 10: --num_tasks 10 and the default NAME byol-pnr-cifar100-10t.
set -euo pipefail
export NUM_TASKS=10
exec bash "$(dirname "${BASH_SOURCE[0]}")/../byol_pnr.sh" "$@"
