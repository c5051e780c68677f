"""Encoded image files for the device path: CPU workers read the bytes, the device decodes them.

The official code fed ImageNet-100 and DomainNet through an NVIDIA DALI pipeline (file reader in CPU threads,
"mixed" JPEG decoding on the GPU, augmentation on the GPU; docs/official.md §2.6). This module is the
reading and decoding half of the same design, with PyTorch and torchvision only:

* **CPU workers** (a ``torch.utils.data.DataLoader`` over :class:`EncodedFiles`) only read the encoded files
  (``torchvision.io.read_file``); :func:`collate_encoded` packs a batch's file bytes into one flat uint8
  buffer plus their lengths (one shared-memory block per batch instead of one per image), with the dataset
  indexes and labels.
* **On the device** (the training GPU, or the CPU): :func:`decode_images` decodes the batch at once with
  ``torchvision.io.decode_jpeg(list, device=device, mode=RGB)`` (grayscale and CMYK JPEGs come out as
  3-channel RGB); PNG files, files that are not JPEGs, and batches or images the batched decoder rejects are
  decoded one by one with ``decode_image(mode=RGB)`` on the CPU and moved to the device.
  :func:`decode_batch` does it for a collated batch and names the file that cannot be decoded.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from cassle.data.epochs import SampleKey, split_key
from cassle.errors import DataNotFoundError

__all__ = [
    "EncodedFiles",
    "collate_encoded",
    "decode_batch",
    "decode_images",
    "file_samples",
    "is_jpeg",
    "jpeg_frame_info",
    "split_encoded",
]

#: Start-of-image marker plus the first byte of the next marker: every JPEG file starts with these.
JPEG_MAGIC = (0xFF, 0xD8, 0xFF)


# ----------------------------------------------------------------------------------------------------------
# CPU workers: read the encoded bytes
# ----------------------------------------------------------------------------------------------------------


def file_samples(dataset: Any) -> tuple[list[str], list[int]]:
    """The file paths and labels of a file dataset.

    Args:
        dataset: anything with ``.samples``, a sequence of ``(path, label)`` (``FileListDataset``,
            torchvision's ``ImageFolder``).

    Returns:
        ``(paths, labels)``.

    Raises:
        TypeError: if ``dataset`` has no ``.samples``.
    """
    samples = getattr(dataset, "samples", None)
    if samples is None:
        raise TypeError(f"{type(dataset).__name__} has no .samples (list of (path, label)): not a file dataset")
    paths = [str(p) for p, _ in samples]
    labels = [int(y) for _, y in samples]
    return paths, labels


class EncodedFiles(Dataset):
    """Item ``i`` is ``(i, encoded bytes as a 1-D uint8 tensor, label)``; nothing is decoded.

    Keys may be bare indexes or the ``(epoch, index)`` keys of :class:`cassle.data.epochs.EpochSampler`
    (the epoch is not needed to read a file).

    Args:
        paths: image file paths.
        targets: one label per path.
    """

    def __init__(self, paths: Sequence[str], targets: Sequence[int]) -> None:
        if len(paths) != len(targets):
            raise ValueError(f"{len(paths)} paths but {len(targets)} targets")
        self.paths = [str(p) for p in paths]
        self.targets = [int(t) for t in targets]

    @classmethod
    def from_dataset(cls, dataset: Any) -> EncodedFiles:
        """From a dataset with ``.samples`` (see :func:`file_samples`)."""
        return cls(*file_samples(dataset))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, key: SampleKey | int) -> tuple[int, Tensor, int]:
        _, i = split_key(key)
        path = self.paths[i]
        try:
            data = read_file(path)
        except (RuntimeError, OSError) as exc:
            raise DataNotFoundError(f"cannot read image {path}: {' '.join(str(exc).split())[:200]}") from None
        return i, data, self.targets[i]


def collate_encoded(items: Sequence[tuple[int, Tensor, int]]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Packs ``(index, bytes, label)`` items into one batch.

    The files' bytes are concatenated into one flat buffer, so that a worker hands the main process one
    shared-memory block per batch (not one per image); :func:`split_encoded` gives the per-file tensors back.

    Returns:
        ``(indexes int64 (B,), flat uint8 (sum of lengths,), lengths int64 (B,), targets int64 (B,))``.
    """
    indexes = torch.tensor([int(it[0]) for it in items], dtype=torch.long)
    datas = [it[1].reshape(-1) for it in items]
    lengths = torch.tensor([d.numel() for d in datas], dtype=torch.long)
    flat = torch.cat(datas) if datas else torch.empty(0, dtype=torch.uint8)
    targets = torch.tensor([int(it[2]) for it in items], dtype=torch.long)
    return indexes, flat, lengths, targets


def split_encoded(flat: Tensor, lengths: Tensor) -> list[Tensor]:
    """The per-file byte tensors (contiguous 1-D views) of a :func:`collate_encoded` buffer."""
    return list(torch.split(flat, [int(n) for n in lengths.tolist()]))


# ----------------------------------------------------------------------------------------------------------
# Device: decode
# ----------------------------------------------------------------------------------------------------------


def is_jpeg(data: Tensor) -> bool:
    """Whether encoded bytes start like a JPEG file (the extension is not trusted: ImageNet has a PNG named
    ``.JPEG``)."""
    return data.numel() >= 3 and tuple(data[:3].tolist()) == JPEG_MAGIC


#: Start-of-frame markers (the frame header holds precision, size and number of components).
_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def jpeg_frame_info(data: Tensor) -> tuple[int, int] | None:
    """``(sample precision, number of components)`` from a JPEG's frame header, or None if not found.

    Walks the marker segments from the start of the file up to the first start-of-frame (only the headers are
    read). 1 component = grayscale, 3 = YCbCr/RGB, 4 = CMYK/YCCK.
    """
    arr = data.numpy() if data.device.type == "cpu" else data.cpu().numpy()
    n, i = arr.shape[0], 2
    while i + 4 <= n:
        if arr[i] != 0xFF:
            return None
        marker = int(arr[i + 1])
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker == 0x01 or 0xD0 <= marker <= 0xD8:  # markers without a length
            i += 2
            continue
        if marker in _SOF_MARKERS:
            return (int(arr[i + 4]), int(arr[i + 9])) if i + 9 < n else None
        if marker in (0xD9, 0xDA):  # end of image or start of scan before any frame header
            return None
        i += 2 + ((int(arr[i + 2]) << 8) | int(arr[i + 3]))
    return None


def _batchable(data: Tensor, device: torch.device) -> bool:
    """Whether a file goes to the batched ``decode_jpeg`` on ``device``: any JPEG on the CPU (libjpeg reads
    them all); on an accelerator only 8-bit grayscale or colour JPEGs (CMYK / YCCK and 12-bit files are left
    to the CPU decoder, whose RGB conversion matches PIL's)."""
    if not is_jpeg(data):
        return False
    if device.type == "cpu":
        return True
    info = jpeg_frame_info(data)
    return info is not None and info[0] == 8 and info[1] in (1, 3)


def _rgb(img: Tensor | None) -> bool:
    return img is not None and img.dim() == 3 and img.shape[0] == 3


def _decode_on_cpu(data: Tensor, device: torch.device) -> Tensor:
    """Any format torchvision reads, as (3, H, W) uint8 on ``device``."""
    img = decode_image(data, mode=ImageReadMode.RGB)
    if img.shape[0] == 1:  # should not happen with mode RGB; be safe
        img = img.expand(3, -1, -1)
    elif img.shape[0] == 4:
        img = img[:3]
    return img.contiguous().to(device)


def _decode_jpeg_one(data: Tensor, device: torch.device) -> Tensor | None:
    try:
        img = decode_jpeg(data, mode=ImageReadMode.RGB, device=device)
    except RuntimeError:
        return None
    return img if _rgb(img) else None


def decode_images(data: Sequence[Tensor], device: torch.device | str = "cpu") -> list[Tensor]:
    """Decodes a batch of encoded images to (3, H_i, W_i) uint8 RGB tensors on ``device``.

    JPEGs are decoded together by ``decode_jpeg(list, device=device, mode=RGB)`` (nvJPEG on CUDA, libjpeg on
    the CPU; on an accelerator only 8-bit grayscale / colour JPEGs, see :func:`jpeg_frame_info`). If the
    batched call fails, its JPEGs are retried one by one on the device; whatever is still undecoded (PNG and
    other formats, CMYK JPEGs on an accelerator, JPEGs the device decoder rejects or returns without 3
    channels) is decoded with ``decode_image(mode=RGB)`` on the CPU and moved to the device.

    Args:
        data: 1-D uint8 CPU tensors, one encoded file each.
        device: where the decoded images go (and where JPEGs are decoded).

    Returns:
        One (3, H_i, W_i) uint8 tensor per input, on ``device``.

    Raises:
        RuntimeError: if an image cannot be decoded at all (the caller names the file).
    """
    device = torch.device(device)
    out: list[Tensor | None] = [None] * len(data)
    jpegs = [k for k, d in enumerate(data) if _batchable(d, device)]
    if jpegs:
        try:
            decoded = decode_jpeg([data[k] for k in jpegs], mode=ImageReadMode.RGB, device=device)
        except RuntimeError:
            decoded = [_decode_jpeg_one(data[k], device) for k in jpegs]
        for k, img in zip(jpegs, decoded):
            out[k] = img if _rgb(img) else None
    for k, img in enumerate(out):
        if img is None:
            out[k] = _decode_on_cpu(data[k], device)
    return out  # type: ignore[return-value]


def decode_batch(
    files: EncodedFiles, indexes: Tensor, flat: Tensor, lengths: Tensor, device: torch.device | str
) -> list[Tensor]:
    """Decodes a :func:`collate_encoded` batch on ``device`` (see :func:`decode_images`).

    Args:
        files: the files the batch was read from (to name a file that cannot be decoded).
        indexes: (B,) dataset indexes of the batch.
        flat: the batch's concatenated file bytes.
        lengths: (B,) byte length of each file.
        device: where to decode.

    Returns:
        One (3, H_i, W_i) uint8 tensor per file, on ``device``.

    Raises:
        DataNotFoundError: naming the first file of the batch that cannot be decoded.
    """
    data = split_encoded(flat, lengths)
    try:
        return decode_images(data, device)
    except RuntimeError:
        pass
    for i, d in zip(indexes.tolist(), data):  # find the culprit, for the message
        try:
            decode_images([d], device)
        except RuntimeError as exc:
            raise DataNotFoundError(
                f"cannot decode image {files.paths[i]}: {' '.join(str(exc).split())[:200]}"
            ) from None
    raise RuntimeError("batch decoding failed although every image decodes alone")  # pragma: no cover
