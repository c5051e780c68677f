#!/usr/bin/env bash
# VICReg + PNR: continual pretraining on CIFAR-100, class-incremental,
# 10 tasks. The recipe of ../vicreg_pnr.sh (same environment and arguments) with
# NUM_TASKS fixed to 10: --num_tasks 10 and the default NAME vicreg-pnr-cifar100-10t.
set -euo pipefail
export NUM_TASKS=10
exec bash "$(dirname "${BASH_SOURCE[0]}")/../vicreg_pnr.sh" "$@"
