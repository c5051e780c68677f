#!/usr/bin/env bash
# Linear probe of SimCLR backbones on ImageNet-100, data-incremental.
# Recipe: the official PNR script bash_files/linear/imagenet-100/data/simclr_linear.sh.
# SGD without momentum (--momentum 0.0) as the official PNR probes ran (CaSSLe used 0.9).
# What is probed: RUN_DIR, a run folder of main_pretrain.py (the checkpoint of every task: accuracy
# matrix, forgetting, forward transfer), or else PRETRAINED_PATH, one checkpoint.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]  TRAIN_DIR [$DATA_DIR/imagenet-100/train]  VAL_DIR [$DATA_DIR/imagenet-100/val]
#   NAME [main_linear.py's: <source>-linear]  NUM_TASKS [5]  SEED [5]
#   CHECKPOINT_DIR [<repo>/trained_models]  PROJECT, ENTITY [empty: no wandb]  PYTHON [python]
# Relative paths are taken from the directory you call from. Arguments come last and win, e.g.
# `--max_epochs 1`, `--random_init` (probe a random backbone instead) or `--dry_run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../../common.bash"
NAME_ARGS=()
if [[ -n "$NAME" ]]; then
    NAME_ARGS=(--name "$NAME")
fi

"$PYTHON" main_linear.py \
    --dataset imagenet100 \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --train_dir "$TRAIN_DIR" \
    --val_dir "$VAL_DIR" \
    --num_workers 10 \
    --batch_size 256 \
    --split_strategy data \
    --num_tasks "$NUM_TASKS" \
    --method simclr \
    --optimizer sgd \
    --scheduler step \
    --lr 1.0 \
    --weight_decay 0 \
    --momentum 0.0 \
    --lr_decay_steps 60 80 \
    --max_epochs 100 \
    --gpus 0 \
    --precision 16 \
    --seed "$SEED" \
    --checkpoint_dir "$CHECKPOINT_DIR" \
    --save_checkpoint \
    ${PROBE_SOURCE_ARGS[@]+"${PROBE_SOURCE_ARGS[@]}"} \
    ${NAME_ARGS[@]+"${NAME_ARGS[@]}"} \
    ${WANDB_ARGS[@]+"${WANDB_ARGS[@]}"} \
    "$@"
