#!/usr/bin/env bash
# VICReg fine-tuning (no regulariser): continual pretraining on CIFAR-100, class-incremental.
# Fine-tuning lower bound (PNR ships no such script): the PNR recipe with no --distiller and
# none of the regulariser's flags, so every task simply continues training the same model.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]
#   NAME [vicreg-finetune-cifar100-<NUM_TASKS>t]  NUM_TASKS [5]  SEED [5]
#   CHECKPOINT_DIR [<repo>/trained_models]  PROJECT, ENTITY [empty: no wandb]  PYTHON [python]
# Relative paths are taken from the directory you call from. Arguments come last and win over the
# recipe, e.g. `--max_epochs 1` or `--dry_run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../common.bash"
NAME="${NAME:-vicreg-finetune-cifar100-${NUM_TASKS}t}"

"$PYTHON" main_pretrain.py \
    --dataset cifar100 \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --num_workers 3 \
    --batch_size 256 \
    --split_strategy class \
    --num_tasks "$NUM_TASKS" \
    --task_idx 0 \
    --method vicreg \
    --proj_hidden_dim 2048 \
    --output_dim 2048 \
    --sim_loss_weight 25.0 \
    --var_loss_weight 25.0 \
    --cov_loss_weight 1.0 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --gaussian_prob 0.0 0.0 \
    --solarization_prob 0.1 \
    --min_scale 0.2 \
    --optimizer sgd \
    --lars \
    --grad_clip_lars \
    --eta_lars 0.02 \
    --exclude_bias_n_norm \
    --scheduler warmup_cosine \
    --lr 0.3 \
    --weight_decay 1e-4 \
    --max_epochs 500 \
    --gpus 0 \
    --precision 16 \
    --name "$NAME" \
    --seed "$SEED" \
    --checkpoint_dir "$CHECKPOINT_DIR" \
    ${WANDB_ARGS[@]+"${WANDB_ARGS[@]}"} \
    "$@"
