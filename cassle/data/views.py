"""Per-crop augmentation settings, from the command-line values to one dict per crop (torch-free).

A pretraining batch holds, for every image, ``num_crops`` large crops followed by
``num_small_crops`` small ones (multi-crop). Each crop has its own pipeline settings, a dict with
the keys of :data:`VIEW_DEFAULTS`, which :func:`cassle.data.augmentations.build_view_transform`
(PIL path) and :class:`cassle.data.device.BatchViewAugment` (``--fast_data``) turn into a
pipeline. How the flags spread over the crops:

- colour and blur flags (``--brightness --contrast --saturation --hue --gaussian_prob
  --solarization_prob``): one value for every crop, or one per crop (large crops first);
- large-crop geometry (``--size --min_scale``): one value, or one per large crop; the crop area
  is drawn from ``[min_scale, 1]``;
- small-crop geometry (``--small_size --small_min_scale --small_max_scale``): one value, or one
  per small crop; the area is drawn from ``[small_min_scale, small_max_scale]``.

The defaults of the small crops are CaSSLe's multi-crop constants: 24 px on 32 px datasets
(three quarters of the crop, which also gives 12 px on the 16 px digits), 96 px on 224 px
datasets, and an area in [0.05, 0.14].
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cassle.data.info import dataset_info
from cassle.errors import CassleError

__all__ = [
    "VIEW_DEFAULTS",
    "SMALL_CROP_DEFAULTS",
    "expand_view_configs",
    "pretrain_view_configs",
]

#: Keys of one crop's settings, with the official parser's defaults.
VIEW_DEFAULTS: dict[str, Any] = {
    "brightness": 0.4,
    "contrast": 0.4,
    "saturation": 0.2,
    "hue": 0.1,
    "gaussian_prob": 0.5,
    "solarization_prob": 0.0,
    "min_scale": 0.08,
    "max_scale": 1.0,
    "size": 224,
    "horizontal_flip_prob": 0.5,
}

#: Area range of the small crops (CaSSLe's ``prepare_multicrop_transform`` constants).
SMALL_CROP_DEFAULTS: dict[str, float] = {"small_min_scale": 0.05, "small_max_scale": 0.14}

Values = float | int | Sequence[float | int]


def _spread(flag: str, values: Values, count: int, what: str) -> list[Any]:
    """``values`` (one value, or a list of 1 or ``count`` values) as exactly ``count`` values.

    ``what`` names the unit in the error, e.g. "per view" or "per large crop".
    """
    spread = list(values) if isinstance(values, (list, tuple)) else [values]
    if len(spread) == 1:
        spread = spread * count
    if len(spread) != count:
        raise CassleError(f"--{flag} takes 1 value or {count} ({what}), got {len(spread)}")
    return spread


def expand_view_configs(cfg: Mapping[str, Any], num_views: int = 2) -> list[dict[str, Any]]:
    """Per-view configs from flags that hold one value (shared) or ``num_views`` values (view 1,
    view 2, ...), as the official ``nargs="+"`` augmentation flags. Keys absent from ``cfg`` stay
    absent (the pipeline builders fill in :data:`VIEW_DEFAULTS`)."""
    views: list[dict[str, Any]] = [{} for _ in range(num_views)]
    for key, value in cfg.items():
        if key not in VIEW_DEFAULTS:
            raise ValueError(f"unknown augmentation key {key!r}")
        for view, val in zip(views, _spread(key, value, num_views, "one per view")):
            view[key] = val
    return views


def _check_scale(flag: str, low: float, high: float, high_flag: str | None = None) -> None:
    if not 0.0 < low <= high <= 1.0:
        if high_flag is None:
            raise CassleError(f"--{flag} must be in (0, 1], got {low}")
        raise CassleError(f"--{flag} ({low}) and --{high_flag} ({high}) must satisfy "
                          f"0 < {flag} <= {high_flag} <= 1")


def pretrain_view_configs(
    dataset: str,
    brightness: Values,
    contrast: Values,
    saturation: Values,
    hue: Values,
    gaussian_prob: Values,
    solarization_prob: Values,
    min_scale: Values | None = None,
    size: Values | None = None,
    num_crops: int = 2,
    num_small_crops: int = 0,
    multicrop: bool = False,
    small_size: Values | None = None,
    small_min_scale: Values = SMALL_CROP_DEFAULTS["small_min_scale"],
    small_max_scale: Values = SMALL_CROP_DEFAULTS["small_max_scale"],
) -> list[dict[str, Any]]:
    """One settings dict per crop of a pretraining batch: ``num_crops`` large crops, then
    ``num_small_crops`` small ones (see the module docstring for how each flag spreads).

    Dataset rules: ``min_scale`` None means 0.08 (0.4 on digits, where an 8% crop of a 16 px digit
    keeps almost nothing); datasets with a fixed crop size (cifar100 32 px, digits 16 px) ignore
    ``size``; ``small_size`` None means the dataset's small-crop size; digits are never flipped.

    Args:
        dataset: a ``--dataset`` name.
        brightness, contrast, saturation, hue, gaussian_prob, solarization_prob: one value, or one
            per crop (``num_crops + num_small_crops``).
        min_scale: smallest area fraction of a large crop; one value or one per large crop.
        size: side of the large crops; one value or one per large crop (None: the dataset's).
        num_crops: large crops per image, at least 2 (the two that the momentum encoders and the
            regularisers see are the first two).
        num_small_crops: small crops per image, >= 0; more than 0 needs ``multicrop``.
        multicrop: the official ``--multicrop`` switch: small crops are used only with it, and it
            needs at least one.
        small_size: side of the small crops; one value or one per small crop.
        small_min_scale, small_max_scale: area range of the small crops; one value or one per small
            crop.

    Returns:
        ``num_crops + num_small_crops`` dicts, large crops first. A large crop's dict has the keys
        brightness, contrast, saturation, hue, gaussian_prob, solarization_prob, min_scale, size,
        horizontal_flip_prob (its area's upper bound is 1); a small crop's has max_scale as well.

    Raises:
        CassleError: a flag with the wrong number of values, an impossible scale or crop count.
    """
    info = dataset_info(dataset)
    if num_crops < 2:
        raise CassleError(f"--num_crops (large crops per image) must be at least 2, got {num_crops}")
    if num_small_crops < 0:
        raise CassleError(f"--num_small_crops must be at least 0, got {num_small_crops}")
    if multicrop and num_small_crops == 0:
        raise CassleError("--multicrop needs --num_small_crops of at least 1")
    if num_small_crops and not multicrop:
        raise CassleError(f"--num_small_crops {num_small_crops} needs --multicrop "
                          f"(the official code silently drops the small crops without it)")

    total = num_crops + num_small_crops
    per_crop_unit = "one per crop" if not num_small_crops else (
        f"one per crop: {num_crops} large, then {num_small_crops} small")
    colour = {
        flag: _spread(flag, value, total, per_crop_unit)
        for flag, value in (("brightness", brightness), ("contrast", contrast),
                            ("saturation", saturation), ("hue", hue),
                            ("gaussian_prob", gaussian_prob), ("solarization_prob", solarization_prob))
    }
    if min_scale is None:
        min_scale = 0.4 if dataset == "digits" else VIEW_DEFAULTS["min_scale"]
    if info["fixed_size"] or size is None:
        size = info["size"]
    large_min_scales = _spread("min_scale", min_scale, num_crops, "one per large crop")
    large_sizes = _spread("size", size, num_crops, "one per large crop")
    flip = 0.0 if dataset == "digits" else VIEW_DEFAULTS["horizontal_flip_prob"]

    configs: list[dict[str, Any]] = []
    for crop in range(num_crops):
        _check_scale("min_scale", float(large_min_scales[crop]), 1.0)
        configs.append({
            **{flag: values[crop] for flag, values in colour.items()},
            "min_scale": large_min_scales[crop],
            "size": int(large_sizes[crop]),
            "horizontal_flip_prob": flip,
        })

    if num_small_crops:
        unit = "one per small crop"
        small_sizes = _spread("small_size", info["small_size"] if small_size is None else small_size,
                              num_small_crops, unit)
        lows = _spread("small_min_scale", small_min_scale, num_small_crops, unit)
        highs = _spread("small_max_scale", small_max_scale, num_small_crops, unit)
        for k in range(num_small_crops):
            _check_scale("small_min_scale", float(lows[k]), float(highs[k]), "small_max_scale")
            if int(small_sizes[k]) < 1:
                raise CassleError(f"--small_size must be at least 1, got {small_sizes[k]}")
            crop = num_crops + k
            configs.append({
                **{flag: values[crop] for flag, values in colour.items()},
                "min_scale": lows[k],
                "max_scale": highs[k],
                "size": int(small_sizes[k]),
                "horizontal_flip_prob": flip,
            })
    return configs
