#!/usr/bin/env bash
# ImageNet-100, data-incremental: continual pretraining of every method, then the linear
# probe of every task of each run, then one summary table of all runs.
#
#   bash run_imagenet100_data.sh                                      # PNR, the five methods
#   REGULARIZERS="pnr cassle finetune" bash run_imagenet100_data.sh   # with the CaSSLe and fine-tuning baselines
#   METHODS=byol NAME_SUFFIX=-smoke bash run_imagenet100_data.sh --max_epochs 1   # a quick end-to-end check
#   DRY_RUN=1 bash run_imagenet100_data.sh                            # only print the commands
#
# Arguments are appended to every pretraining command (bash_files/continual/...), after the
# recipe, so they win. Give the run folder through CHECKPOINT_DIR and NAME_SUFFIX, not with
# --checkpoint_dir or --name: the linear probes and the summary look for the runs at
# $CHECKPOINT_DIR/<method>-<regularizer>-imagenet100-data-<NUM_TASKS>t$NAME_SUFFIX.
# Every command is first checked with --dry_run (about a second in all); DRY_RUN=1 stops after
# that check and prints the commands. A failing step stops the script and names the step.
# Each setting below may also be given in the environment.
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

# wandb project and entity; an empty PROJECT logs to no wandb project.
: "${PROJECT:=}"
: "${ENTITY:=}"
# ImageNet-100 as two ImageFolder trees (one sub-folder per class).
: "${DATA_DIR:=$HERE/datasets}"
: "${TRAIN_DIR:=$DATA_DIR/imagenet-100/train}"
: "${VAL_DIR:=$DATA_DIR/imagenet-100/val}"
# Run folders go to $CHECKPOINT_DIR/<name>.
: "${CHECKPOINT_DIR:=$HERE/trained_models}"
: "${NUM_TASKS:=5}"
: "${SEED:=5}"
# Method script names, in the official order, and regularizers (pnr, cassle, finetune).
: "${METHODS:=mocov2plus byol vicreg simclr barlow}"
: "${REGULARIZERS:=pnr}"
# Appended to every run name, e.g. -smoke.
: "${NAME_SUFFIX:=}"
: "${DRY_RUN:=0}"
export PROJECT ENTITY DATA_DIR TRAIN_DIR VAL_DIR CHECKPOINT_DIR NUM_TASKS SEED

source "$HERE/bash_files/common.bash"
run_benchmark imagenet-100/data imagenet100-data "$@"
