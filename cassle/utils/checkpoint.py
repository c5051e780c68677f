"""Checkpoints: reading them, loading them strictly, and writing them atomically through Lightning."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import torch

from cassle.errors import CheckpointError
from cassle.utils.files import describe_os_error


def load_checkpoint(path: str, mmap: bool = False) -> dict[str, Any]:
    """Read a Lightning checkpoint on the CPU; a missing or corrupt file is a one-line error.

    ``mmap``: map the tensors instead of reading them (fast when only the counters are needed).
    """
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=False, mmap=mmap)
    except PermissionError as err:
        raise CheckpointError(describe_os_error(err, path, "read")) from None
    except Exception as err:  # pickle, zip and torch errors all mean the same thing here
        raise CheckpointError(
            f"checkpoint {path} is corrupt or not a torch checkpoint ({err.__class__.__name__})") from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"checkpoint {path} has no state_dict (not a Lightning checkpoint of this code)")
    return checkpoint


def _starts(key: str, prefixes: Iterable[str]) -> bool:
    return any(key == p or key.startswith(p) for p in prefixes)


def load_model_state(
    model: torch.nn.Module,
    path: str,
    method: str,
    optional: Iterable[str] = (),
    ignored: Iterable[str] = (),
) -> dict[str, Any]:
    """Load a checkpoint's ``state_dict`` strictly, with explicit exceptions (docs/decisions.md §D3.7).

    Args:
        model: the freshly built model of this task.
        path: a checkpoint written by this code or by the official one.
        method: the ``--method`` of this run; a checkpoint of another method is refused.
        optional: key prefixes the checkpoint may lack (they keep their fresh initialisation).
        ignored: key prefixes of the checkpoint that are dropped (e.g. the old teacher).

    Returns:
        The checkpoint's metadata (``checkpoint["cassle"]``, empty for official checkpoints).
    """
    checkpoint = load_checkpoint(path)
    meta = checkpoint.get("cassle", {})
    if meta.get("method") not in (None, method):
        raise CheckpointError(
            f"checkpoint {path} was trained with --method {meta['method']}, this run uses --method {method}")
    state = {k: v for k, v in checkpoint["state_dict"].items() if not _starts(k, ignored)}
    own = model.state_dict()
    missing = [k for k in own if k not in state and not _starts(k, optional) and not _starts(k, ignored)]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        detail = f"missing {missing[:3]}" if missing else f"unexpected {unexpected[:3]}"
        raise CheckpointError(f"checkpoint {path} does not match --method {method}: {detail} "
                              f"({len(missing)} missing, {len(unexpected)} unexpected keys)")
    for key, value in state.items():
        if own[key].shape != value.shape:
            raise CheckpointError(
                f"checkpoint {path} does not match this model's shape: {key} is {tuple(value.shape)} there, "
                f"{tuple(own[key].shape)} here (check --encoder, --proj_hidden_dim, --output_dim, --queue_size)"
            )
    model.load_state_dict(state, strict=False)
    return meta


def atomic_torch_save(obj: Any, path: str) -> None:
    """``torch.save`` through a temporary file next to ``path`` and a rename (cassle.utils.files)."""
    from cassle.utils.files import atomic_write

    atomic_write(path, lambda handle: torch.save(obj, handle))


def atomic_checkpoint_io() -> Any:
    """A Lightning CheckpointIO that writes every checkpoint atomically next to its destination.

    Lightning's own writer goes through fsspec, whose local transactions stage the file in ``$TMPDIR``: a
    small ``$TMPDIR`` breaks every save, and a kill leaves orphans there. Passed to the Trainer as a plugin,
    this one also serves the checkpoints Lightning writes itself (SLURM's ``hpc_ckpt_*``).
    """
    from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
            atomic_torch_save(checkpoint, str(path))

    return AtomicCheckpointIO()
