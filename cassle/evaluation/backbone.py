"""The probe's frozen backbone: a checkpoint's online encoder loaded strictly, or a random one."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from cassle.errors import CheckpointError
from cassle.evaluation.config import LinearConfig

ENCODER_PREFIX = "encoder."


def load_encoder_state(path: str, encoder: str, method: str | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """The online encoder's weights of a checkpoint (keys ``encoder.*``, prefix stripped) and its metadata.

    Only keys that start with ``encoder.`` are taken: ``momentum_encoder.*`` and ``frozen_encoder.*`` of
    momentum methods and official task >= 1 checkpoints are not the online encoder. A checkpoint of
    another ``--method`` or ``--encoder`` (when its metadata says so), or without encoder keys, is a
    one-line :class:`CheckpointError`.

    Args:
        path: the checkpoint file.
        encoder: the expected ``--encoder``.
        method: the expected ``--method``; None accepts any.

    Returns:
        ``(state_dict of the trunk, the checkpoint's "cassle" metadata or {})``.
    """
    from cassle.utils.checkpoint import load_checkpoint

    checkpoint = load_checkpoint(path)
    meta = checkpoint.get("cassle")
    meta = meta if isinstance(meta, dict) else {}
    if method is not None and meta.get("method") not in (None, method):
        raise CheckpointError(f"checkpoint {path} was trained with --method {meta['method']}, not --method {method}")
    if meta.get("encoder") not in (None, encoder):
        raise CheckpointError(f"checkpoint {path} holds a {meta['encoder']} encoder, not --encoder {encoder}")
    state = {}
    for key, value in checkpoint["state_dict"].items():
        if key.startswith(ENCODER_PREFIX):
            state[key[len(ENCODER_PREFIX):].replace("_orig_mod.", "")] = value
    if not state:
        raise CheckpointError(f"checkpoint {path} has no encoder weights (no 'encoder.*' keys in its state_dict)")
    return state, meta


def build_probe_backbone(config: LinearConfig, checkpoint: str | None) -> tuple[nn.Module, dict[str, Any]]:
    """A fresh ``--encoder`` trunk with the checkpoint's encoder loaded strictly, or, for
    ``checkpoint=None``, randomly initialised from ``--seed`` (the forward-transfer baseline).

    The small-image stem follows the checkpoint's metadata, else the shape of its first convolution
    (3x3: small-image stem, official checkpoints), else the dataset.

    Returns:
        ``(trunk, checkpoint metadata)``; the trunk is not frozen yet (:func:`freeze`).
    """
    from cassle.backbones import build_backbone

    if checkpoint is None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(config.seed)
            backbone = build_backbone(config.encoder, config.small_images)
        return backbone, {}
    state, meta = load_encoder_state(checkpoint, config.encoder, config.method)
    small = meta.get("small_images")
    if small is None:
        conv1 = state.get("conv1.weight")
        small = bool(conv1.shape[-1] == 3) if conv1 is not None and conv1.ndim == 4 else config.small_images
    backbone = build_backbone(config.encoder, bool(small))
    own = backbone.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = []
        if missing:
            detail.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            detail.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"checkpoint {checkpoint}: its encoder weights do not match --encoder {config.encoder}: "
                              f"{', '.join(detail)} keys")
    for key, value in state.items():
        if tuple(own[key].shape) != tuple(value.shape):
            raise CheckpointError(f"checkpoint {checkpoint}: encoder weight {key} is {tuple(value.shape)} there, "
                                  f"{tuple(own[key].shape)} in a fresh --encoder {config.encoder}")
    backbone.load_state_dict(state, strict=True)
    return backbone, meta


def build_head(num_features: int, num_classes: int, seed: int) -> nn.Linear:
    """``Linear(num_features, num_classes)`` initialised from ``seed`` (the same in both probe paths)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return nn.Linear(num_features, num_classes)


def freeze(backbone: nn.Module) -> nn.Module:
    """No gradients and eval mode: the probe never changes the backbone, BatchNorm statistics included."""
    for p in backbone.parameters():
        p.requires_grad_(False)
    return backbone.eval()
