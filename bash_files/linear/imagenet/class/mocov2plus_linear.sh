#!/usr/bin/env bash
# Linear probe of MoCo V2+ backbones on ImageNet-1k, class-incremental.
# The official repository has no ImageNet-1k script: this is the ImageNet-100 class-incremental
# recipe (bash_files/linear/imagenet-100/class/mocov2plus_linear.sh) on the 1000 classes.
# Where each value comes from: README, section "ImageNet-1k recipe".
# SGD without momentum (--momentum 0.0) as the official PNR probes ran (CaSSLe used 0.9).
# What is probed: RUN_DIR, a run folder of main_pretrain.py (the checkpoint of every task: accuracy
# matrix, forgetting, forward transfer), or else PRETRAINED_PATH, one checkpoint.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]  IMAGENET_TRAIN_DIR [$DATA_DIR/imagenet/train]
#   IMAGENET_VAL_DIR [$DATA_DIR/imagenet/val] (ImageFolder trees: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG)
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
    --dataset imagenet \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --train_dir "$IMAGENET_TRAIN_DIR" \
    --val_dir "$IMAGENET_VAL_DIR" \
    --num_workers 10 \
    --batch_size 256 \
    --split_strategy class \
    --num_tasks "$NUM_TASKS" \
    --method mocov2plus \
    --optimizer sgd \
    --scheduler step \
    --lr 3.0 \
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
