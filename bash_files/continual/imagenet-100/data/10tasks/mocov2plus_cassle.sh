#!/usr/bin/env bash
# MoCo V2+ + CaSSLe: continual pretraining on ImageNet-100, data-incremental,
# 10 tasks. The recipe of ../mocov2plus_cassle.sh (same environment and arguments) with
# NUM_TASKS fixed to 10: --num_tasks 10 and the default NAME mocov2plus-cassle-imagenet100-data-10t.
set -euo pipefail
export NUM_TASKS=10
exec bash "$(dirname "${BASH_SOURCE[0]}")/../mocov2plus_cassle.sh" "$@"
