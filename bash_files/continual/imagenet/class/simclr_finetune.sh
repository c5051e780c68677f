#!/usr/bin/env bash
# SimCLR fine-tuning (no regulariser): continual pretraining on ImageNet-1k, class-incremental.
# The official repository has no ImageNet-1k script: this is the ImageNet-100 class-incremental
# recipe (bash_files/continual/imagenet-100/class/simclr_finetune.sh) on the 1000 classes.
# Where each value comes from: README, section "ImageNet-1k recipe".
# Fine-tuning lower bound (PNR ships no such script): the PNR recipe with no --distiller and
# none of the regulariser's flags, so every task simply continues training the same model.
# Two GPUs with DDP and synchronised BatchNorm, 128 images per GPU, as the official ImageNet-100 recipe;
# --lr is scaled by batch_size x GPUs / 256.
# Environment, defaults in brackets (bash_files/common.bash):
#   DATA_DIR [<repo>/datasets]  IMAGENET_TRAIN_DIR [$DATA_DIR/imagenet/train]
#   IMAGENET_VAL_DIR [$DATA_DIR/imagenet/val] (ImageFolder trees: train/<wnid>/*.JPEG, val/<wnid>/*.JPEG)
#   NAME [simclr-finetune-imagenet-class-<NUM_TASKS>t]  NUM_TASKS [5]  SEED [5]
#   CHECKPOINT_DIR [<repo>/trained_models]  PROJECT, ENTITY [empty: no wandb]  PYTHON [python]
# Relative paths are taken from the directory you call from. Arguments come last and win over the
# recipe, e.g. `--max_epochs 1` or `--dry_run`.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/../../../common.bash"
NAME="${NAME:-simclr-finetune-imagenet-class-${NUM_TASKS}t}"

"$PYTHON" main_pretrain.py \
    --dataset imagenet \
    --encoder resnet18 \
    --data_dir "$DATA_DIR" \
    --train_dir "$IMAGENET_TRAIN_DIR" \
    --val_dir "$IMAGENET_VAL_DIR" \
    --num_workers 5 \
    --batch_size 128 \
    --split_strategy class \
    --num_tasks "$NUM_TASKS" \
    --task_idx 0 \
    --method simclr \
    --proj_hidden_dim 2048 \
    --temperature 0.2 \
    --brightness 0.4 \
    --contrast 0.4 \
    --saturation 0.2 \
    --hue 0.1 \
    --gaussian_prob 1.0 0.1 \
    --solarization_prob 0.0 0.2 \
    --optimizer sgd \
    --lars \
    --grad_clip_lars \
    --eta_lars 0.02 \
    --exclude_bias_n_norm \
    --scheduler warmup_cosine \
    --lr 0.4 \
    --weight_decay 1e-4 \
    --max_epochs 400 \
    --gpus 0,1 \
    --accelerator ddp \
    --sync_batchnorm \
    --precision 16 \
    --check_val_every_n_epoch 9999 \
    --name "$NAME" \
    --seed "$SEED" \
    --checkpoint_dir "$CHECKPOINT_DIR" \
    ${WANDB_ARGS[@]+"${WANDB_ARGS[@]}"} \
    "$@"
