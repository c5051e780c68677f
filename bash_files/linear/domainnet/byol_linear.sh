#!/usr/bin/env bash
# Linear probe of BYOL backbones on DomainNet, domain-incremental.
# Recipe: the official linear scripts of PNR. Their 7 commands (all domains, then one probe
# per domain) are one command here: --domain_aware trains the all-domain probe
# (domain-agnostic accuracy) and one probe per domain (domain-aware accuracy).
# SGD without momentum (--momentum 0.0) as the official PNR probes ran (CaSSLe used 0.9).
# What is probed: RUN_DIR, a run folder of main_pretrain.py (the checkpoint of every task: accuracy
# matrix, forgetting, forward transfer), or else PRETRAINED_PATH, one checkpoint.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]
#   NAME [main_linear.py's: <source>-linear]  SEED [5]
#   CHECKPOINT_DIR [<repo>/trained_models]  PROJECT, ENTITY [empty: no wandb]  PYTHON [python]
# Relative paths are taken from the directory you call from. Arguments come last and win, e.g.
# `--max_epochs 1`, `--random_init` (probe a random backbone instead) or `--dry_run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../common.bash"
NAME_ARGS=()
if [[ -n "$NAME" ]]; then
    NAME_ARGS=(--name "$NAME")
fi

"$PYTHON" main_linear.py \
    --dataset domainnet \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --num_workers 8 \
    --batch_size 256 \
    --split_strategy domain \
    --method byol \
    --optimizer sgd \
    --scheduler step \
    --lr 3.0 \
    --weight_decay 0 \
    --momentum 0.0 \
    --lr_decay_steps 60 80 \
    --max_epochs 100 \
    --gpus 0 \
    --precision 16 \
    --domain_aware \
    --seed "$SEED" \
    --checkpoint_dir "$CHECKPOINT_DIR" \
    --save_checkpoint \
    ${PROBE_SOURCE_ARGS[@]+"${PROBE_SOURCE_ARGS[@]}"} \
    ${NAME_ARGS[@]+"${NAME_ARGS[@]}"} \
    ${WANDB_ARGS[@]+"${WANDB_ARGS[@]}"} \
    "$@"
