#!/usr/bin/env bash
# MoCo V2+ + PNR: continual pretraining on CIFAR-100, class-incremental.
# Recipe: the official PNR script bash_files/continual/cifar/mocov2plus_pnr.sh, flag for flag.
# Fixed: the official mocov2plus_pnr.sh trains 1 epoch per task (a debug leftover); 500 as every other
# CIFAR-100 recipe, its own load_task0 twin and CaSSLe.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]
#   NAME [mocov2plus-pnr-cifar100-<NUM_TASKS>t]  NUM_TASKS [5]  SEED [5]
#   CHECKPOINT_DIR [<repo>/trained_models]  PROJECT, ENTITY [empty: no wandb]  PYTHON [python]
# Relative paths are taken from the directory you call from. Arguments come last and win over the
# recipe, e.g. `--max_epochs 1` or `--dry_run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../common.bash"
NAME="${NAME:-mocov2plus-pnr-cifar100-${NUM_TASKS}t}"

"$PYTHON" main_pretrain.py \
    --dataset cifar100 \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --num_workers 4 \
    --batch_size 256 \
    --split_strategy class \
    --num_tasks "$NUM_TASKS" \
    --task_idx 0 \
    --method mocov2plus \
    --proj_hidden_dim 2048 \
    --temperature 0.2 \
    --queue_size 65536 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 0.999 \
    --momentum_classifier \
    --distiller mocov2plus_pnr \
    --distill_temperature 0.2 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --gaussian_prob 0.0 0.0 \
    --solarization_prob 0.0 0.2 \
    --optimizer sgd \
    --lars \
    --grad_clip_lars \
    --eta_lars 0.02 \
    --scheduler warmup_cosine \
    --lr 0.6 \
    --classifier_lr 0.3 \
    --weight_decay 1e-4 \
    --max_epochs 500 \
    --gpus 0 \
    --precision 16 \
    --name "$NAME" \
    --seed "$SEED" \
    --checkpoint_dir "$CHECKPOINT_DIR" \
    ${WANDB_ARGS[@]+"${WANDB_ARGS[@]}"} \
    "$@"
