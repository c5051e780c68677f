"""Augmentation pipelines of the device path: one view (:class:`BatchViewAugment`) or several
(:class:`TwoViewBatchAugment`), applied to a whole batch on the device that holds it.

The faithful path (``cassle.data.augmentations``) augments PIL images one at a time with torchvision
transforms in CPU workers. These pipelines draw each image's random parameters from the same distributions
(:mod:`cassle.data.device.sampling`), but augment the whole batch at once on the device that holds the
images (GPU or CPU):

1. random resized crop (torchvision's sampling algorithm, vectorised over the batch), resampled with
   PIL's bicubic filter (a = -0.5, antialiased): batched resampling matrices for a uint8 batch of equal-size
   images (:func:`~cassle.data.device.ops.resized_crop`), one ``F.interpolate`` per image for decoded images
   of different sizes (:func:`~cassle.data.device.ops.crop_resize`);
2. colour jitter with probability 0.8, the four operations in a random order drawn per image;
3. grayscale with probability 0.2;
4. Gaussian blur with probability ``gaussian_prob``, sigma ~ U[0.1, 2] per image;
5. solarisation with probability ``solarization_prob`` (threshold 128 on the uint8 scale);
6. horizontal flip with probability ``horizontal_flip_prob``;
7. normalisation with the dataset mean and std.

Known, deliberate differences from the PIL path: values stay in float between the steps (PIL rounds to uint8
after every step), the contrast op blends with the exact grayscale mean (PIL rounds it to an integer) and the
hue shift is continuous (PIL shifts an 8-bit hue channel).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from cassle.data.augmentations import blur_kernel_size
from cassle.data.device.ops import (
    PIL_GRAY_WEIGHTS,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    crop_resize,
    gaussian_blur,
    gaussian_kernels,
    resized_crop,
    rgb_to_grayscale,
    solarize,
)
from cassle.data.device.sampling import (
    JITTER_OPS,
    jitter_ranges,
    sample_blur_params,
    sample_crop_boxes,
    sample_jitter_params,
    sample_mask,
)

__all__ = ["BatchViewAugment", "TwoViewBatchAugment"]

#: A batch: (N, 3, H, W) uint8 images of one size, or decoded (3, H_i, W_i) uint8 images of any sizes.
Images = Tensor | Sequence[Tensor]

_REQUIRED_KEYS = (
    "brightness",
    "contrast",
    "saturation",
    "hue",
    "gaussian_prob",
    "solarization_prob",
    "min_scale",
    "size",
)


def _check_prob(name: str, value: float) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability in [0, 1], got {value}")
    return value


class BatchViewAugment(torch.nn.Module):
    """One augmentation pipeline (one view), applied to a uint8 batch on its device.

    A batch is either one (N, 3, H, W) tensor or a sequence of decoded (3, H_i, W_i) images of different
    sizes (:data:`Images`); both get the same parameter distributions and the same steps after the crop.

    Args:
        cfg: pipeline parameters, with the faithful path's keys: ``brightness``, ``contrast``,
            ``saturation``, ``hue``, ``gaussian_prob``, ``solarization_prob``, ``min_scale``, ``size`` and
            optionally ``horizontal_flip_prob`` (0.5), ``color_jitter_prob`` (0.8), ``gray_scale_prob`` (0.2),
            ``max_scale`` (1.0), ``ratio`` ((3/4, 4/3)), ``blur_sigma`` ((0.1, 2.0)) and
            ``blur_kernel_size`` (:func:`blur_kernel_size` of ``size``). Other keys are ignored.
        mean: per-channel normalisation mean (3 values).
        std: per-channel normalisation std (3 values).
        memory_format: memory format of the output (e.g. ``torch.channels_last``).
        gray_weights: luma weights of grayscale, contrast and saturation (PIL's by default).

    Raises:
        ValueError: if a required key is missing or a value is out of range.
    """

    def __init__(
        self,
        cfg: dict,
        mean: Sequence[float],
        std: Sequence[float],
        memory_format: torch.memory_format = torch.contiguous_format,
        gray_weights: Sequence[float] = PIL_GRAY_WEIGHTS,
    ) -> None:
        super().__init__()
        missing = [k for k in _REQUIRED_KEYS if k not in cfg]
        if missing:
            raise ValueError(f"augmentation config lacks {missing}")
        self.size = int(cfg["size"])
        if self.size < 1:
            raise ValueError(f"size must be positive, got {self.size}")
        self.scale = (float(cfg["min_scale"]), float(cfg.get("max_scale", 1.0)))
        if not 0.0 < self.scale[0] <= self.scale[1]:
            raise ValueError(f"crop scale must satisfy 0 < min_scale <= max_scale, got {self.scale}")
        self.ratio = tuple(float(r) for r in cfg.get("ratio", (3.0 / 4.0, 4.0 / 3.0)))
        if not 0.0 < self.ratio[0] <= self.ratio[1]:
            raise ValueError(f"ratio must satisfy 0 < low <= high, got {self.ratio}")
        self.jitter = {k: cfg[k] for k in JITTER_OPS}
        self.jitter_ranges = jitter_ranges(**self.jitter)
        self.jitter_prob = _check_prob("color_jitter_prob", cfg.get("color_jitter_prob", 0.8))
        self.gray_prob = _check_prob("gray_scale_prob", cfg.get("gray_scale_prob", 0.2))
        self.blur_prob = _check_prob("gaussian_prob", cfg["gaussian_prob"])
        self.blur_sigma = tuple(float(s) for s in cfg.get("blur_sigma", (0.1, 2.0)))
        if not 0.0 < self.blur_sigma[0] <= self.blur_sigma[1]:
            raise ValueError(f"blur_sigma must satisfy 0 < low <= high, got {self.blur_sigma}")
        self.blur_kernel_size = int(cfg.get("blur_kernel_size") or blur_kernel_size(self.size))
        if self.blur_kernel_size < 1 or self.blur_kernel_size % 2 == 0:
            raise ValueError(f"blur_kernel_size must be odd and positive, got {self.blur_kernel_size}")
        self.solarization_prob = _check_prob("solarization_prob", cfg["solarization_prob"])
        self.flip_prob = _check_prob("horizontal_flip_prob", cfg.get("horizontal_flip_prob", 0.5))
        self.memory_format = memory_format
        self.gray_weights = tuple(float(v) for v in gray_weights)
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1), persistent=False)

    def extra_repr(self) -> str:
        return (
            f"size={self.size}, scale={self.scale}, ratio={self.ratio}, jitter={self.jitter} "
            f"(p={self.jitter_prob}), gray_p={self.gray_prob}, blur_p={self.blur_prob} "
            f"(sigma={self.blur_sigma}, k={self.blur_kernel_size}), solarize_p={self.solarization_prob}, "
            f"flip_p={self.flip_prob}"
        )

    def sample_params(
        self,
        n: int,
        height: int | Tensor,
        width: int | Tensor,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
    ) -> dict[str, Tensor]:
        """Draws every random parameter of the pipeline for ``n`` images.

        Args:
            n: number of images.
            height: input height, one for all (int) or one per image ((n,) tensor).
            width: input width, likewise.
            generator: random generator; its device is used for the draws.
            device: device of the draws when ``generator`` is None.

        Returns:
            Dict with ``top``, ``left``, ``h``, ``w`` (crop), ``jitter_apply``, ``jitter_order`` and the four
            factors ``brightness``, ``contrast``, ``saturation``, ``hue``, ``gray``, ``blur_apply``,
            ``blur_sigma``, ``solarize``, ``flip`` (bool masks / per-image values, shape (n,) or (n, 4)).
        """
        top, left, h, w = sample_crop_boxes(n, height, width, self.scale, self.ratio, generator, device)
        params = {"top": top, "left": left, "h": h, "w": w}
        jit = sample_jitter_params(n, **self.jitter, p=self.jitter_prob, generator=generator, device=device)
        params["jitter_apply"] = jit.pop("apply")
        params["jitter_order"] = jit.pop("order")
        params.update(jit)
        params["gray"] = sample_mask(n, self.gray_prob, generator, device)
        params["blur_apply"], params["blur_sigma"] = sample_blur_params(
            n, self.blur_prob, self.blur_sigma, generator, device
        )
        params["solarize"] = sample_mask(n, self.solarization_prob, generator, device)
        params["flip"] = sample_mask(n, self.flip_prob, generator, device)
        return params

    def apply_params(self, images: Images, params: dict[str, Tensor]) -> Tensor:
        """Applies the pipeline with the given parameters (see :meth:`sample_params`).

        Args:
            images: (N, 3, H, W) uint8 images (or float in [0, 1]), or N decoded (3, H_i, W_i) uint8 images
                on one device.
            params: per-image parameters.

        Returns:
            (N, 3, size, size) float32 normalised images in ``self.memory_format``, on the images' device.
        """
        if isinstance(images, Tensor):
            if images.dim() != 4 or images.shape[1] != 3:
                raise ValueError(f"expected images of shape (N, 3, H, W), got {tuple(images.shape)}")
            dev = images.device
            x = images.float().div_(255.0) if images.dtype == torch.uint8 else images.float()
            crop = [params[k].to(dev, non_blocking=True) for k in ("top", "left", "h", "w")]
            x = resized_crop(x, *crop, self.size)
        else:
            # Different sizes: one resize per image (crop_resize reads the boxes on the CPU).
            x = crop_resize(images, params["top"], params["left"], params["h"], params["w"], self.size)
        return self._after_crop(x, params)

    def _after_crop(self, x: Tensor, params: dict[str, Tensor]) -> Tensor:
        """Every step after the random resized crop: jitter, grayscale, blur, solarisation, flip and
        normalisation, on (N, 3, size, size) float images in [0, 1]."""
        dev = x.device
        p = {k: v.to(dev, non_blocking=True) for k, v in params.items()}
        x = self._jitter(x, p)
        if self.gray_prob > 0:
            gray = rgb_to_grayscale(x, self.gray_weights).expand_as(x)
            x = torch.where(p["gray"].view(-1, 1, 1, 1), gray, x)
        if self.blur_prob > 0:
            kernels = gaussian_kernels(p["blur_sigma"], self.blur_kernel_size)
            delta = torch.zeros_like(kernels)
            delta[:, self.blur_kernel_size // 2] = 1.0
            kernels = torch.where(p["blur_apply"].view(-1, 1), kernels, delta)
            x = gaussian_blur(x, kernels)
        if self.solarization_prob > 0:
            x = torch.where(p["solarize"].view(-1, 1, 1, 1), solarize(x), x)
        if self.flip_prob > 0:
            x = torch.where(p["flip"].view(-1, 1, 1, 1), x.flip(-1), x)
        x = (x - self.mean.to(dev)) / self.std.to(dev)
        return x.contiguous(memory_format=self.memory_format)

    def _jitter(self, x: Tensor, p: dict[str, Tensor]) -> Tensor:
        """Colour jitter in each image's own order; non-selected operations get identity factors."""
        active = [i for i, name in enumerate(JITTER_OPS) if self.jitter_ranges[name] is not None]
        if self.jitter_prob == 0 or not active:
            return x
        apply, order = p["jitter_apply"], p["jitter_order"]
        for position in range(4):
            here = order[:, position]
            for i in active:
                name = JITTER_OPS[i]
                chosen = apply & (here == i)
                if name == "hue":
                    x = torch.where(chosen.view(-1, 1, 1, 1), adjust_hue(x, p["hue"]), x)
                    continue
                # A blend with factor exactly 1 is the exact identity, so no mask is needed.
                factor = torch.where(chosen, p[name], torch.ones_like(p[name]))
                if name == "brightness":
                    x = adjust_brightness(x, factor)
                elif name == "contrast":
                    x = adjust_contrast(x, factor, self.gray_weights)
                else:
                    x = adjust_saturation(x, factor, self.gray_weights)
        return x

    def forward(self, images: Images, generator: torch.Generator | None = None) -> Tensor:
        """Augments a batch, each image with its own random parameters.

        Args:
            images: (N, 3, H, W) uint8 images on any device, or N decoded (3, H_i, W_i) uint8 images on one
                device.
            generator: random generator for reproducible draws (on the images' device or the CPU; decoded
                images of different sizes are cropped from CPU boxes, so a CPU generator avoids copies).

        Returns:
            (N, 3, size, size) float32 normalised images on the images' device.
        """
        if isinstance(images, Tensor):
            n, _, height, width = images.shape
            params = self.sample_params(n, height, width, generator, images.device)
        else:
            n = len(images)
            height = torch.tensor([int(img.shape[1]) for img in images])
            width = torch.tensor([int(img.shape[2]) for img in images])
            params = self.sample_params(n, height, width, generator, "cpu")
        return self.apply_params(images, params)


class TwoViewBatchAugment(torch.nn.Module):
    """One :class:`BatchViewAugment` per view, all applied to the same batch.

    Args:
        cfgs: one config per view (a single dict is used for two identical pipelines).
        mean: normalisation mean.
        std: normalisation std.
        memory_format: memory format of the outputs.
        gray_weights: luma weights (PIL's by default).
    """

    def __init__(
        self,
        cfgs: Sequence[dict] | dict,
        mean: Sequence[float],
        std: Sequence[float],
        memory_format: torch.memory_format = torch.contiguous_format,
        gray_weights: Sequence[float] = PIL_GRAY_WEIGHTS,
    ) -> None:
        super().__init__()
        if isinstance(cfgs, dict):
            cfgs = [cfgs, cfgs]
        if len(cfgs) < 1:
            raise ValueError("need at least one view config")
        self.views = torch.nn.ModuleList(
            BatchViewAugment(c, mean, std, memory_format, gray_weights) for c in cfgs
        )

    @property
    def num_views(self) -> int:
        """Number of views produced per image."""
        return len(self.views)

    def forward(self, images: Images, generator: torch.Generator | None = None) -> list[Tensor]:
        """Augments a batch once per view, with independent random parameters.

        Args:
            images: a batch as :meth:`BatchViewAugment.forward` takes it.
            generator: random generator for reproducible draws.

        Returns:
            List of (N, 3, size_v, size_v) float32 tensors, one per view.
        """
        return [view(images, generator) for view in self.views]

