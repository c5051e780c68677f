#!/usr/bin/env bash
# BYOL + CaSSLe: continual pretraining on CIFAR-100, class-incremental.
# CaSSLe baseline (PNR ships no such script): the PNR recipe with CaSSLe's regulariser
# (--distiller predictive) instead of byol_pnr, and without PNR's --negative_lamb.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]
#   NAME [byol-cassle-cifar100-<NUM_TASKS>t]  NUM_TASKS [5]  SEED [5]
#   CHECKPOINT_DIR [<repo>/trained_models]  PROJECT, ENTITY [empty: no wandb]  PYTHON [python]
# Relative paths are taken from the directory you call from. Arguments come last and win over the
# recipe, e.g. `--max_epochs 1` or `--dry_run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../common.bash"
NAME="${NAME:-byol-cassle-cifar100-${NUM_TASKS}t}"

"$PYTHON" main_pretrain.py \
    --dataset cifar100 \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --num_workers 5 \
    --batch_size 256 \
    --split_strategy class \
    --num_tasks "$NUM_TASKS" \
    --task_idx 0 \
    --method byol \
    --proj_hidden_dim 4096 \
    --pred_hidden_dim 4096 \
    --output_dim 256 \
    --base_tau_momentum 0.99 \
    --final_tau_momentum 1.0 \
    --momentum_classifier \
    --distiller predictive \
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
    --exclude_bias_n_norm \
    --scheduler warmup_cosine \
    --lr 1.0 \
    --classifier_lr 0.1 \
    --weight_decay 1e-5 \
    --max_epochs 500 \
    --gpus 0 \
    --precision 16 \
    --name "$NAME" \
    --seed "$SEED" \
    --checkpoint_dir "$CHECKPOINT_DIR" \
    ${WANDB_ARGS[@]+"${WANDB_ARGS[@]}"} \
    "$@"
