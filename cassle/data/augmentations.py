"""Augmentation pipelines on PIL images (torchvision v1 transforms): the faithful reference path.

Pretraining view (docs/official.md §2.5), one pipeline per view:

    RandomResizedCrop(size, scale=(min_scale, max_scale), bicubic)   (max_scale 1 but for small crops)
    -> RandomApply([ColorJitter(brightness, contrast, saturation, hue)], p=0.8)
    -> RandomGrayscale(p=0.2)
    -> RandomApply([GaussianBlur(kernel, sigma ~ U[0.1, 2.0])], p=gaussian_prob)
    -> RandomSolarize(threshold=128, p=solarization_prob)   (on the uint8 PIL image)
    -> RandomHorizontalFlip(p=horizontal_flip_prob)
    -> ToTensor -> Normalize(mean, std)

The blur kernel is odd and about 10% of the crop size, at least 3: ``int(0.1 * size)`` rounded up to
odd, so 224 -> 23 (DALI's window in the official code), 32 -> 3, 16 -> 3.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from torchvision import transforms as T

from cassle.data.info import DatasetSpec, dataset_info, resolve_dataset

# The per-crop settings live in a torch-free module (the configuration builds them); re-exported here.
from cassle.data.views import VIEW_DEFAULTS, expand_view_configs

__all__ = [
    "VIEW_DEFAULTS",
    "MultiViewTransform",
    "blur_kernel_size",
    "build_linear_train_transform",
    "build_val_transform",
    "build_view_transform",
    "expand_view_configs",
]


def blur_kernel_size(size: int) -> int:
    """Odd Gaussian-blur kernel of about 10% of ``size``, at least 3."""
    k = int(0.1 * int(size))
    if k % 2 == 0:
        k += 1
    return max(3, k)


def build_view_transform(cfg: Mapping[str, Any], mean: Sequence[float], std: Sequence[float]) -> T.Compose:
    """One view's pretraining pipeline (see the module docstring). Missing ``cfg`` keys take
    :data:`VIEW_DEFAULTS`; unknown keys are an error (a misspelt key would otherwise be ignored)."""
    unknown = set(cfg) - set(VIEW_DEFAULTS)
    if unknown:
        raise ValueError(f"unknown augmentation keys: {', '.join(sorted(unknown))}")
    c = {**VIEW_DEFAULTS, **dict(cfg)}
    size = int(c["size"])
    return T.Compose([
        T.RandomResizedCrop(size, scale=(float(c["min_scale"]), float(c["max_scale"])),
                            interpolation=T.InterpolationMode.BICUBIC),
        T.RandomApply([T.ColorJitter(c["brightness"], c["contrast"], c["saturation"], c["hue"])], p=0.8),
        T.RandomGrayscale(p=0.2),
        T.RandomApply([T.GaussianBlur(blur_kernel_size(size), sigma=(0.1, 2.0))], p=float(c["gaussian_prob"])),
        T.RandomSolarize(threshold=128, p=float(c["solarization_prob"])),
        T.RandomHorizontalFlip(p=float(c["horizontal_flip_prob"])),
        T.ToTensor(),
        T.Normalize(tuple(mean), tuple(std)),
    ])


class MultiViewTransform:
    """Applies each pipeline to the same image: ``__call__(img)`` -> list of tensors, one per view."""

    def __init__(self, transforms: Sequence[Callable]):
        if not transforms:
            raise ValueError("MultiViewTransform needs at least one transform")
        self.transforms = list(transforms)

    def __call__(self, img) -> list[Any]:
        return [t(img) for t in self.transforms]

    def __len__(self) -> int:
        return len(self.transforms)

    def __repr__(self) -> str:
        inner = "\n".join(f"  view {i + 1}: {t!r}" for i, t in enumerate(self.transforms))
        return f"MultiViewTransform(\n{inner}\n)"


def _spec(dataset: str | DatasetSpec) -> DatasetSpec:
    return dataset if isinstance(dataset, DatasetSpec) else resolve_dataset(dataset)


def _mean_std(spec: DatasetSpec, mean: Sequence[float] | None, std: Sequence[float] | None):
    return tuple(mean if mean is not None else spec.mean), tuple(std if std is not None else spec.std)


def build_val_transform(dataset: str | DatasetSpec, mean: Sequence[float] | None = None,
                        std: Sequence[float] | None = None) -> T.Compose:
    """Evaluation pipeline of a dataset (a name, or the :class:`DatasetSpec` of a run).

    Small-image datasets and STL-10: ``ToTensor + Normalize`` (images as stored); imagenet100, imagenet,
    domainnet, custom: ``Resize(256)`` (bilinear) ``+ CenterCrop(224) + ToTensor + Normalize``;
    ``custom --small_stem``: ``Resize(size) + CenterCrop(size)`` first. ``mean``/``std`` default to the
    dataset's.
    """
    spec = _spec(dataset)
    mean, std = _mean_std(spec, mean, std)
    steps: list[Callable] = []
    if spec.eval_resize is not None:
        steps.append(T.Resize(spec.eval_resize, interpolation=T.InterpolationMode.BILINEAR))
    if spec.eval_crop is not None:
        steps.append(T.CenterCrop(spec.eval_crop))
    return T.Compose(steps + [T.ToTensor(), T.Normalize(mean, std)])


#: Interpolation of the probe's training crop by the loader the official probe used for a dataset
#: (``DATASET_INFO[...]["official_loader"]``): the torchvision path keeps ``RandomResizedCrop``'s
#: default, bilinear; the DALI pipeline of the ImageNet-100 / DomainNet probe scripts crops bicubic.
LINEAR_CROP_INTERPOLATION = {
    "torchvision": T.InterpolationMode.BILINEAR,
    "dali": T.InterpolationMode.BICUBIC,
}


def build_linear_train_transform(dataset: str | DatasetSpec, mean: Sequence[float] | None = None,
                                 std: Sequence[float] | None = None,
                                 size: int | None = None) -> T.Compose:
    """Linear-probe training pipeline: ``RandomResizedCrop(size, scale=(0.08, 1))`` (bilinear or
    bicubic as the official loader of the dataset: :data:`LINEAR_CROP_INTERPOLATION`)
    ``+ RandomHorizontalFlip`` (not for digits) ``+ ToTensor + Normalize``. ``size`` defaults to the
    dataset's probe size (CIFAR 32, digits 16, STL-10 96, ImageNet-style 224, custom --small_stem its
    ``--size``)."""
    spec = _spec(dataset)
    mean, std = _mean_std(spec, mean, std)
    size = int(size if size is not None else spec.probe_size)
    steps: list[Callable] = [
        T.RandomResizedCrop(size, scale=(0.08, 1.0),
                            interpolation=LINEAR_CROP_INTERPOLATION[dataset_info(spec.name)["official_loader"]])
    ]
    if spec.name != "digits":
        steps.append(T.RandomHorizontalFlip())
    steps += [T.ToTensor(), T.Normalize(mean, std)]
    return T.Compose(steps)
