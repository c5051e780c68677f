#!/usr/bin/env bash
# DomainNet, domain-incremental (6 tasks, one per domain): continual pretraining of every method, then the linear
# probe of every task of each run, then one summary table of all runs.
#
#   bash run_domainnet.sh                                      # PNR, the five methods
#   REGULARIZERS="pnr cassle finetune" bash run_domainnet.sh   # with the CaSSLe and fine-tuning baselines
#   METHODS=byol NAME_SUFFIX=-smoke bash run_domainnet.sh --max_epochs 1   # a quick end-to-end check
#   DRY_RUN=1 bash run_domainnet.sh                            # only print the commands
#
# Arguments are appended to every pretraining command (bash_files/continual/...), after the
# recipe, so they win. Give the run folder through CHECKPOINT_DIR and NAME_SUFFIX, not with
# --checkpoint_dir or --name: the linear probes and the summary look for the runs at
# $CHECKPOINT_DIR/<method>-<regularizer>-domainnet-6t$NAME_SUFFIX.
# Every command is first checked with --dry_run (about a second in all); DRY_RUN=1 stops after
# that check and prints the commands. A failing step stops the script and names the step.
# Each setting below may also be given in the environment.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# wandb project and entity; an empty PROJECT logs to no wandb project.
: "${PROJECT:=}"
: "${ENTITY:=}"
# The DomainNet root: the official <domain>_train.txt / <domain>_test.txt lists and the images.
: "${DATA_DIR:=$HERE/datasets}"
# Run folders go to $CHECKPOINT_DIR/<name>.
: "${CHECKPOINT_DIR:=$HERE/trained_models}"
: "${SEED:=5}"
# Method script names, in the official order, and regularizers (pnr, cassle, finetune).
: "${METHODS:=mocov2plus byol vicreg simclr barlow}"
: "${REGULARIZERS:=pnr}"
# Appended to every run name, e.g. -smoke.
: "${NAME_SUFFIX:=}"
: "${DRY_RUN:=0}"
export PROJECT ENTITY DATA_DIR CHECKPOINT_DIR SEED

source "$HERE/bash_files/common.bash"
run_benchmark domainnet domainnet "$@"
