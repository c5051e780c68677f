"""Data: dataset readers, task splits, augmentations and loaders.

Importing this package imports nothing heavy: ``cassle.data.splits``, ``cassle.data.info``,
``cassle.data.views`` (per-crop settings) and ``cassle.data.epochs`` (the epoch sampler) are torch-free
(``--dry_run`` uses them); ``datasets``, ``augmentations``, ``loaders`` and the ``device`` package import
torch / torchvision / PIL when first used. The names below are resolved lazily from their submodules.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    # info (torch-free)
    "DATASET_INFO": "info", "DATASET_NAMES": "info", "dataset_info": "info", "DatasetSpec": "info",
    "resolve_dataset": "info", "spec_from_args": "info", "join_data_path": "info",
    # splits (torch-free)
    "DOMAINNET_DOMAINS": "splits", "torch_randperm": "splits", "class_split": "splits",
    "data_split": "splits", "domain_split": "splits", "task_domain": "splits",
    # datasets
    "DATASETS": "datasets", "ArrayImageDataset": "datasets", "FileListDataset": "datasets",
    "load_cifar": "datasets", "load_cifar10": "datasets", "load_cifar100": "datasets", "load_stl10": "datasets",
    "load_image_folders": "datasets", "load_imagenet100": "datasets", "load_unlabeled_folder": "datasets",
    "verify_image": "datasets", "load_domainnet": "datasets",
    "load_digits": "datasets", "digits_stats": "datasets", "build_datasets": "datasets",
    "with_transform": "datasets",
    # per-crop settings (torch-free)
    "VIEW_DEFAULTS": "views", "expand_view_configs": "views", "pretrain_view_configs": "views",
    # augmentations
    "build_view_transform": "augmentations",
    "MultiViewTransform": "augmentations", "build_val_transform": "augmentations",
    "build_linear_train_transform": "augmentations",
    # epochs (torch-free)
    "EpochSampler": "epochs", "EpochLoader": "epochs",
    # loaders
    "AugmentedDataset": "loaders", "WorkerLoader": "loaders", "task_indices": "loaders",
    "tasks_for": "loaders", "build_train_loaders": "loaders", "build_val_loader": "loaders",
    "fast_data_kind": "loaders",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'cassle.data' has no attribute {name!r}")
    return getattr(importlib.import_module(f"cassle.data.{module}"), name)
