"""On-device JPEG decoding and augmentation: the fast path for file datasets (ImageNet-100, DomainNet).

The official code fed ImageNet-100 and DomainNet through an NVIDIA DALI pipeline (file reader in CPU threads,
"mixed" JPEG decoding on the GPU, augmentation on the GPU; spec 2.6). This module does the same with PyTorch
and torchvision only:

* **CPU workers** (a ``torch.utils.data.DataLoader``) only read the encoded files
  (``torchvision.io.read_file``); the collate packs a batch's file bytes into one flat uint8 buffer plus their
  lengths (one shared-memory block per batch instead of one per image), with the dataset indexes and labels.
  Batches follow a per-epoch shuffle from a seeded generator and drop the last incomplete batch.
* **On the device** (the training GPU, or the CPU): the batch is decoded at once with
  ``torchvision.io.decode_jpeg(list, device=device, mode=RGB)`` (grayscale and CMYK JPEGs come out as
  3-channel RGB); PNG files, files that are not JPEGs, and batches or images the batched decoder rejects are
  decoded one by one with ``decode_image(mode=RGB)`` on the CPU and moved to the device.
* For each view: random-resized-crop boxes are drawn per image with the rule of the faithful path
  (torchvision's ``RandomResizedCrop``, scale ``(min_scale, 1)``, ratio ``(3/4, 4/3)``, 10 attempts then the
  clamped central crop) from each image's own height and width; each box is cut out and resized to
  ``size x size`` with ``F.interpolate(mode="bicubic", antialias=True)`` (PIL's bicubic filter, a = -0.5,
  stretched when down-sampling), one call per image since the shapes differ; the stacked batch then gets the
  remaining batched operations of :class:`cassle.data.gpu_augment.BatchViewAugment` (colour jitter, grayscale,
  blur, solarisation, flip, normalisation) through :meth:`BatchViewAugment.apply_after_crop`.

All random draws (order and augmentation parameters) come from CPU generators, so a seed gives the same
batches on any device. The loaders are plain iterables with ``__len__`` (``floor(n / batch_size)``), usable as
Lightning train loaders, also inside ``CombinedLoader(..., mode="min_size")``:

* :class:`DeviceFileTaskLoader` yields ``(indexes, [X1, X2], targets)`` (the official batch format; the
  indexes are positions in the full dataset, where DALI gave dummy ones);
* :class:`DeviceFileEvalLoader` yields ``(indexes, X, targets)``.

Unlike DALI's reader, batches are not sharded over DDP ranks (as the in-memory fast path).
"""

from __future__ import annotations

import math
from typing import Any, Iterator, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg, read_file

from cassle.data.gpu_augment import BatchViewAugment, TwoViewBatchAugment
from cassle.errors import DataNotFoundError

__all__ = [
    "EncodedFiles",
    "EpochBatchSampler",
    "DeviceFileTaskLoader",
    "DeviceFileEvalLoader",
    "augment_view",
    "collate_encoded",
    "crop_resize",
    "decode_images",
    "file_samples",
    "is_jpeg",
    "jpeg_frame_info",
    "sample_crop_boxes",
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
    def from_dataset(cls, dataset: Any) -> "EncodedFiles":
        """From a dataset with ``.samples`` (see :func:`file_samples`)."""
        return cls(*file_samples(dataset))

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[int, Tensor, int]:
        path = self.paths[i]
        try:
            data = read_file(path)
        except (RuntimeError, OSError) as exc:
            raise DataNotFoundError(f"cannot read image {path}: {' '.join(str(exc).split())[:200]}") from None
        return int(i), data, self.targets[i]


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


class EpochBatchSampler:
    """Batches of dataset positions, reshuffled every epoch from a seeded CPU generator.

    Epoch ``e`` uses ``indices[randperm(len(indices), generator=Generator().manual_seed(seed + e))]`` (the
    order rule of :class:`cassle.data.gpu_augment.DeviceTaskLoader`), cut into batches.

    Args:
        indices: dataset positions (1-D int64 tensor).
        batch_size: positions per batch.
        seed: base seed.
        shuffle: reshuffle every epoch (otherwise the order of ``indices``).
        drop_last: drop the last incomplete batch.
    """

    def __init__(self, indices: Tensor, batch_size: int, seed: int = 0, shuffle: bool = True,
                 drop_last: bool = True) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.indices = indices
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch whose order the next ``iter()`` gives."""
        self.epoch = int(epoch)

    def order(self, epoch: int) -> Tensor:
        """All positions of epoch ``epoch``, in order."""
        if not self.shuffle:
            return self.indices
        gen = torch.Generator().manual_seed(self.seed + int(epoch))
        return self.indices[torch.randperm(len(self.indices), generator=gen)]

    def __len__(self) -> int:
        n = len(self.indices)
        return n // self.batch_size if self.drop_last else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        order = self.order(self.epoch).tolist()
        for b in range(len(self)):
            yield order[b * self.batch_size : (b + 1) * self.batch_size]


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


# ----------------------------------------------------------------------------------------------------------
# Device: per-image random resized crop, then the batched view pipeline
# ----------------------------------------------------------------------------------------------------------


def _uniform(shape: tuple[int, ...], low: float, high: float, generator: torch.Generator | None) -> Tensor:
    u = torch.rand(shape, generator=generator, dtype=torch.float64)
    return low + (high - low) * u


def sample_crop_boxes(
    heights: Sequence[int] | Tensor,
    widths: Sequence[int] | Tensor,
    scale: Sequence[float] = (0.08, 1.0),
    ratio: Sequence[float] = (3.0 / 4.0, 4.0 / 3.0),
    generator: torch.Generator | None = None,
    attempts: int = 10,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Random-resized-crop boxes for images of different sizes, torchvision's rule vectorised (on the CPU).

    For image ``i`` of size ``H_i x W_i``: ``attempts`` candidates with area ``H_i W_i * U(scale)`` and aspect
    ratio log-uniform in ``ratio``, ``w = round(sqrt(area * r))``, ``h = round(sqrt(area / r))``; the first
    candidate that fits is kept with uniform integer offsets, otherwise the central crop clamped to the ratio
    range. With equal sizes the draws equal :func:`cassle.data.gpu_augment.sample_crop_params` for the same
    generator state.

    Args:
        heights: (n,) image heights.
        widths: (n,) image widths.
        scale: (min, max) fraction of the image area.
        ratio: (min, max) aspect ratio w / h.
        generator: CPU random generator.
        attempts: candidates per image (torchvision: 10).

    Returns:
        ``(top, left, h, w)``: int64 CPU tensors of shape (n,).
    """
    hgt = torch.as_tensor(heights, dtype=torch.float64).flatten()
    wid = torch.as_tensor(widths, dtype=torch.float64).flatten()
    n = hgt.numel()
    area = (hgt * wid).unsqueeze(1)
    log_lo, log_hi = math.log(ratio[0]), math.log(ratio[1])
    target = area * _uniform((n, attempts), scale[0], scale[1], generator)
    aspect = torch.exp(_uniform((n, attempts), log_lo, log_hi, generator))
    cand_w = torch.round(torch.sqrt(target * aspect))
    cand_h = torch.round(torch.sqrt(target / aspect))
    valid = (cand_w > 0) & (cand_w <= wid.unsqueeze(1)) & (cand_h > 0) & (cand_h <= hgt.unsqueeze(1))
    tries = torch.arange(attempts).expand(n, attempts)
    first = torch.where(valid, tries, attempts).min(dim=1, keepdim=True).values
    found = first.squeeze(1) < attempts
    first = first.clamp(max=attempts - 1)
    w = torch.gather(cand_w, 1, first).squeeze(1)
    h = torch.gather(cand_h, 1, first).squeeze(1)

    # Fallback: the central crop, clamped to the ratio range (per image).
    in_ratio = wid / hgt
    lo, hi = min(ratio), max(ratio)
    fb_w = torch.where(in_ratio > hi, torch.round(hgt * hi), wid)
    fb_h = torch.where(in_ratio < lo, torch.round(wid / lo), hgt)
    w = torch.where(found, w, fb_w)
    h = torch.where(found, h, fb_h)

    u_top = _uniform((n,), 0.0, 1.0, generator)
    u_left = _uniform((n,), 0.0, 1.0, generator)
    top = torch.minimum(torch.floor(u_top * (hgt - h + 1)), hgt - h)
    left = torch.minimum(torch.floor(u_left * (wid - w + 1)), wid - w)
    top = torch.where(found, top, torch.div(hgt - fb_h, 2, rounding_mode="floor"))
    left = torch.where(found, left, torch.div(wid - fb_w, 2, rounding_mode="floor"))
    return top.long(), left.long(), h.long(), w.long()


def crop_resize(
    images: Sequence[Tensor], top: Tensor, left: Tensor, h: Tensor, w: Tensor, size: int
) -> Tensor:
    """Cuts a box out of each image and resizes it to ``size x size``, image by image.

    Resampling: ``F.interpolate(mode="bicubic", antialias=True)``, PyTorch's port of PIL's bicubic filter
    (a = -0.5, kernel stretched when down-sampling), as the faithful path's ``RandomResizedCrop(..., BICUBIC)``
    on PIL images; values stay in float (PIL rounds to uint8 between its two passes) and are clamped to
    [0, 1].

    Args:
        images: (3, H_i, W_i) uint8 images, all on one device.
        top: (n,) int crop rows (CPU).
        left: (n,) int crop columns.
        h: (n,) int crop heights.
        w: (n,) int crop widths.
        size: output side.

    Returns:
        (n, 3, size, size) float32 images in [0, 1] on the images' device.
    """
    if len(images) == 0:
        raise ValueError("no images to crop")
    out = torch.empty((len(images), 3, size, size), dtype=torch.float32, device=images[0].device)
    boxes = zip(top.tolist(), left.tolist(), h.tolist(), w.tolist())
    for k, (img, (t, l, hh, ww)) in enumerate(zip(images, boxes)):
        crop = img[:, t : t + hh, l : l + ww].unsqueeze(0).float().div_(255.0)
        if (hh, ww) == (size, size):
            out[k] = crop[0]
        else:
            out[k] = F.interpolate(crop, size=(size, size), mode="bicubic", align_corners=False,
                                   antialias=True)[0]
    return out.clamp_(0.0, 1.0)


def augment_view(
    view: BatchViewAugment, images: Sequence[Tensor], generator: torch.Generator | None = None
) -> tuple[Tensor, dict[str, Tensor]]:
    """One view of a batch of decoded images of different sizes.

    Draws the crop boxes (:func:`sample_crop_boxes` with ``view.scale`` / ``view.ratio``) and then the other
    parameters (``view.sample_params`` for ``size x size`` inputs; its crop entries are replaced by the
    boxes), all from the CPU ``generator``; crops and resizes per image (:func:`crop_resize`) and applies the
    rest of the pipeline batched (:meth:`BatchViewAugment.apply_after_crop`).

    Args:
        view: the view's pipeline.
        images: (3, H_i, W_i) uint8 images on one device.
        generator: CPU random generator.

    Returns:
        ``(X, params)``: (n, 3, size, size) float32 normalised images on the images' device, and the drawn
        parameters (CPU).
    """
    heights = [int(img.shape[1]) for img in images]
    widths = [int(img.shape[2]) for img in images]
    top, left, h, w = sample_crop_boxes(heights, widths, view.scale, view.ratio, generator)
    params = view.sample_params(len(images), view.size, view.size, generator, "cpu")
    params.update(top=top, left=left, h=h, w=w)
    x = crop_resize(images, top, left, h, w, view.size)
    return view.apply_after_crop(x, params), params


# ----------------------------------------------------------------------------------------------------------
# Loaders
# ----------------------------------------------------------------------------------------------------------


def _as_indices(indices: Sequence[int] | np.ndarray | Tensor | None, n: int) -> Tensor:
    if indices is None:
        return torch.arange(n)
    idx = torch.as_tensor(np.asarray(indices) if not isinstance(indices, Tensor) else indices)
    idx = idx.long().flatten().cpu()
    if idx.numel() and (int(idx.min()) < 0 or int(idx.max()) >= n):
        raise ValueError(f"indices must lie in [0, {n})")
    return idx


class DeviceFileTaskLoader:
    """Shuffled two-view batches of a task's image files, decoded and augmented on ``device``.

    Yields ``(indexes, [X1, X2], targets)`` on ``device`` (indexes: positions in the full dataset). With a
    :class:`BatchViewAugment` instead of a :class:`TwoViewBatchAugment` the middle item is a single tensor.
    ``iter()`` number ``e`` (0, 1, ...) is epoch ``e``: the order comes from a CPU generator seeded with
    ``seed + e`` and the augmentation parameters from one seeded with ``seed + e + salt``.

    Args:
        dataset: a file dataset with ``.samples`` (``FileListDataset``, ``ImageFolder``) or an
            :class:`EncodedFiles`.
        indices: dataset positions of the task (None: all).
        batch_size: images per batch.
        augment: the view pipelines (moved to ``device``).
        device: where images are decoded and augmented.
        num_workers: CPU worker processes reading files (0: in the main process).
        seed: base seed.
        shuffle: reshuffle every epoch (otherwise the order of ``indices``).
        drop_last: drop the last incomplete batch (``len() = floor(n / batch_size)``).
        prefetch_factor: batches read ahead per worker.
    """

    #: Offset separating the augmentation stream's seed from the shuffle seed.
    _AUGMENT_SALT = 0x5EED_0000_0001

    def __init__(
        self,
        dataset: Any,
        indices: Sequence[int] | np.ndarray | Tensor | None,
        batch_size: int,
        augment: TwoViewBatchAugment | BatchViewAugment,
        device: torch.device | str = "cpu",
        num_workers: int = 4,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        prefetch_factor: int = 4,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.files = dataset if isinstance(dataset, EncodedFiles) else EncodedFiles.from_dataset(dataset)
        self.indices = _as_indices(indices, len(self.files))
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        self.augment = augment.to(self.device)
        self.seed = int(seed)
        self.epoch = 0
        self.sampler = EpochBatchSampler(self.indices, self.batch_size, self.seed, shuffle, drop_last)
        workers = max(0, int(num_workers))
        extra: dict[str, Any] = {"persistent_workers": True, "prefetch_factor": prefetch_factor} if workers else {}
        self.loader = DataLoader(self.files, batch_sampler=self.sampler, num_workers=workers,
                                 collate_fn=collate_encoded, **extra)

    def set_epoch(self, epoch: int) -> None:
        """Sets the epoch used by the next ``iter()``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.sampler)

    def _decode(self, indexes: Tensor, flat: Tensor, lengths: Tensor) -> list[Tensor]:
        data = split_encoded(flat, lengths)
        try:
            return decode_images(data, self.device)
        except RuntimeError:
            pass
        # Find the culprit for the message.
        for i, d in zip(indexes.tolist(), data):
            try:
                decode_images([d], self.device)
            except RuntimeError as exc:
                raise DataNotFoundError(
                    f"cannot decode image {self.files.paths[i]}: {' '.join(str(exc).split())[:200]}"
                ) from None
        raise RuntimeError("batch decoding failed although every image decodes alone")  # pragma: no cover

    def _views(self, images: list[Tensor], generator: torch.Generator) -> list[Tensor] | Tensor:
        if isinstance(self.augment, BatchViewAugment):
            return augment_view(self.augment, images, generator)[0]
        views = getattr(self.augment, "views", None)
        if views is None:
            raise TypeError("augment must be a BatchViewAugment or a TwoViewBatchAugment")
        return [augment_view(view, images, generator)[0] for view in views]

    def __iter__(self) -> Iterator[tuple[Tensor, list[Tensor] | Tensor, Tensor]]:
        epoch = self.epoch
        self.epoch += 1
        self.sampler.set_epoch(epoch)
        generator = torch.Generator().manual_seed(self.seed + epoch + self._AUGMENT_SALT)
        dev = self.device
        for indexes, flat, lengths, targets in self.loader:
            images = self._decode(indexes, flat, lengths)
            views = self._views(images, generator)
            yield indexes.to(dev), views, targets.to(dev)


class DeviceFileEvalLoader(DeviceFileTaskLoader):
    """Single-view stream ``(indexes, X, targets)``, e.g. the online-eval loader over the full training set.

    Same behaviour as :class:`DeviceFileTaskLoader`, with ``augment`` a :class:`BatchViewAugment` (the official
    code uses the view-2 pipeline) and ``indices`` defaulting to all files.
    """

    _AUGMENT_SALT = 0x5EED_0000_0002

    def __init__(
        self,
        dataset: Any,
        batch_size: int,
        augment: BatchViewAugment,
        device: torch.device | str = "cpu",
        num_workers: int = 4,
        indices: Sequence[int] | np.ndarray | Tensor | None = None,
        seed: int = 0,
        shuffle: bool = True,
        drop_last: bool = True,
        prefetch_factor: int = 4,
    ) -> None:
        if not isinstance(augment, BatchViewAugment):
            raise TypeError("DeviceFileEvalLoader needs a single-view BatchViewAugment")
        super().__init__(dataset, indices, batch_size, augment, device, num_workers, seed, shuffle,
                         drop_last, prefetch_factor)
