"""The one place that names every SSL method and every regulariser (torch-free).

Each method is declared once, as a :class:`MethodSpec`: its command-line name, its LightningModule class
(a ``"module:Class"`` path imported only when a model is built, so ``--dry_run`` never imports torch), the
dataclass of its own hyperparameters (each field is a command-line flag with its default and help text),
its projector defaults, whether it has a momentum branch, and the regularisers that may wrap it (each a
concrete, importable class: the regulariser's mixin over this method). Each regulariser is declared once
as a :class:`RegularizerSpec`. Every list of names, every default and every CLI choice in the project is a
view of these two tables.

Adding a method (say SimSiam) takes one method module, one loss module and one entry here::

    @dataclass(frozen=True)
    class SimSiamParams:
        pred_hidden_dim: int = param(512, "hidden width of the predictor")

    register_method(MethodSpec(
        name="simsiam", cls="cassle.methods.simsiam:SimSiam", params=SimSiamParams, output_dim=2048,
        regularizers={"predictive": "cassle.methods.simsiam:SimSiamPredictive"},
    ))
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cassle.errors import CassleError


def param(default: Any, help: str = "", **extra: Any) -> Any:
    """A hyperparameter field: its default and the help text of its command-line flag.

    ``extra`` may hold ``choices`` (a tuple) for the flag.
    """
    return field(default=default, metadata={"help": help, **extra})


# ============================================================================ method hyperparameters
@dataclass(frozen=True)
class NoParams:
    """A method without hyperparameters of its own."""


@dataclass(frozen=True)
class MomentumParams:
    """Hyperparameters of every method with a momentum (EMA) encoder and projector."""

    base_tau_momentum: float = param(0.99, "EMA coefficient tau at the start of every task")
    final_tau_momentum: float = param(1.0, "EMA coefficient tau at the end of every task (cosine schedule)")
    momentum_classifier: bool = param(False, "also train an online classifier on the momentum encoder")


@dataclass(frozen=True)
class SimCLRParams:
    temperature: float = param(0.1, "softmax temperature of the NT-Xent loss")
    supervised: bool = param(False, "supervised contrastive loss: every other crop with the same label is a positive")


@dataclass(frozen=True)
class MoCoV2PlusParams(MomentumParams):
    temperature: float = param(0.2, "softmax temperature of the InfoNCE loss")
    queue_size: int = param(65536, "keys per view in the FIFO queue (a multiple of the global batch)")


@dataclass(frozen=True)
class BYOLParams(MomentumParams):
    pred_hidden_dim: int = param(512, "hidden width of the predictor")


@dataclass(frozen=True)
class BarlowTwinsParams:
    scale_loss: float = param(0.025, "factor of the whole Barlow Twins loss")
    lamb: float = param(5e-3, "weight of the off-diagonal terms")


@dataclass(frozen=True)
class VICRegParams:
    sim_loss_weight: float = param(25.0, "weight of the invariance (MSE) term")
    var_loss_weight: float = param(25.0, "weight of the variance term")
    cov_loss_weight: float = param(1.0, "weight of the covariance term")


# ============================================================================ regulariser hyperparameters
@dataclass(frozen=True)
class RegularizerParams:
    """Hyperparameters shared by every regulariser; each regulariser reads the ones it lists in ``uses``.

    They are accepted whatever the regulariser (a fine-tuning run simply ignores them), as officially.
    """

    distill_lamb: float = param(1.0, "weight of the regulariser's positive (distillation) term")
    distill_temperature: float = param(0.2, "temperature of the contrastive regularisers")
    distill_proj_hidden_dim: int = param(2048, "hidden width of the distill predictor g")
    distill_barlow_lamb: float = param(5e-3, "off-diagonal weight of the Barlow Twins distillation term")
    distill_scale_loss: float = param(0.1, "factor of the Barlow Twins distillation term")
    negative_lamb: float = param(1.0, "weight of PNR's pseudo-negative term (BYOL, Barlow Twins, VICReg)")
    distill_type: str = param("byol", "predictive regulariser: 'byol' (2 - 2 cos) or any other value (-cos)")
    loss_alpha: float = param(0.5, "parsed for the official scripts; unused, as officially")


# ============================================================================ the two tables
@dataclass(frozen=True)
class MethodSpec:
    """One SSL method.

    Attributes:
        name: the ``--method`` value.
        cls: ``"module:Class"`` of its LightningModule (imported lazily).
        params: dataclass of its own hyperparameters (each field a flag).
        output_dim: default ``--output_dim`` (projector output width).
        proj_hidden_dim: default ``--proj_hidden_dim``.
        momentum: whether it has a momentum encoder (the EMA flags come from :class:`MomentumParams`).
        regularizers: ``--distiller`` name -> ``"module:Class"`` of the regularised model class.
        regularizer_defaults: this method's defaults of :class:`RegularizerParams` fields, where they differ.
    """

    name: str
    cls: str
    params: type
    output_dim: int
    proj_hidden_dim: int = 2048
    momentum: bool = False
    regularizers: Mapping[str, str] = field(default_factory=dict)
    regularizer_defaults: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.momentum != issubclass(self.params, MomentumParams):
            raise TypeError(f"method {self.name}: momentum={self.momentum} but params {self.params.__name__} "
                            f"{'does not derive' if self.momentum else 'derives'} from MomentumParams")
        unknown = set(self.regularizer_defaults) - {f.name for f in dataclasses.fields(RegularizerParams)}
        if unknown:
            raise TypeError(f"method {self.name}: unknown regulariser defaults {sorted(unknown)}")

    def model_class(self, regularizer: str | None = None) -> type:
        """The LightningModule class: the plain method, or its class regularised by ``regularizer``."""
        if regularizer is None:
            return import_object(self.cls)
        if regularizer not in self.regularizers:
            raise CassleError(f"--distiller {regularizer} cannot wrap --method {self.name} "
                              f"(it takes: {', '.join(self.regularizers) or 'none'})")
        return import_object(self.regularizers[regularizer])


@dataclass(frozen=True)
class RegularizerSpec:
    """One regulariser (``--distiller``).

    Attributes:
        name: the ``--distiller`` value.
        family: ``"pnr"`` (pseudo-negatives) or ``"cassle"`` (the CaSSLe baseline).
        mixin: ``"module:Class"`` of the mixin every regularised class of it derives from.
        uses: the :class:`RegularizerParams` fields it reads (the others are ignored).
        log_key: the metric it always logs (its official name).
        summary: one line for ``--help`` and the README.
    """

    name: str
    family: str
    mixin: str
    uses: tuple[str, ...]
    log_key: str
    summary: str

    def __post_init__(self) -> None:
        if self.family not in ("pnr", "cassle"):
            raise TypeError(f"regulariser {self.name}: family must be 'pnr' or 'cassle', got {self.family!r}")
        unknown = set(self.uses) - {f.name for f in dataclasses.fields(RegularizerParams)}
        if unknown:
            raise TypeError(f"regulariser {self.name}: unknown parameters {sorted(unknown)}")


METHODS: dict[str, MethodSpec] = {}
REGULARIZERS: dict[str, RegularizerSpec] = {}


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add a method; its regularisers must be registered already."""
    if spec.name in METHODS:
        raise ValueError(f"method {spec.name!r} is registered already")
    unknown = set(spec.regularizers) - set(REGULARIZERS)
    if unknown:
        raise ValueError(f"method {spec.name!r}: unknown regularisers {sorted(unknown)}")
    METHODS[spec.name] = spec
    return spec


def register_regularizer(spec: RegularizerSpec) -> RegularizerSpec:
    if spec.name in REGULARIZERS:
        raise ValueError(f"regulariser {spec.name!r} is registered already")
    REGULARIZERS[spec.name] = spec
    return spec


def method_spec(name: str) -> MethodSpec:
    try:
        return METHODS[name]
    except KeyError:
        raise CassleError(f"--method {name!r} is not one of {', '.join(METHODS)}") from None


def regularizer_spec(name: str) -> RegularizerSpec:
    try:
        return REGULARIZERS[name]
    except KeyError:
        raise CassleError(f"--distiller {name!r} is not one of {', '.join(REGULARIZERS)}") from None


def methods_of(regularizer: str) -> tuple[str, ...]:
    """The methods that ``regularizer`` may wrap."""
    return tuple(name for name, spec in METHODS.items() if regularizer in spec.regularizers)


def regularizer_of(method: str, family: str) -> str | None:
    """The regulariser of ``family`` ("pnr" or "cassle") that wraps ``method`` (None if there is none)."""
    names = [r for r in method_spec(method).regularizers if REGULARIZERS[r].family == family]
    return names[0] if names else None


def momentum_methods() -> tuple[str, ...]:
    return tuple(name for name, spec in METHODS.items() if spec.momentum)


def import_object(path: str) -> Any:
    """``"package.module:Name"`` -> the object (the module is imported on first use)."""
    module, _, name = path.partition(":")
    try:
        return getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise ImportError(f"registry entry {path!r} does not resolve: {err}") from err


# ============================================================================ the entries
_PNR = "cassle.distillers.pnr"
_CASSLE = "cassle.distillers.cassle"

register_regularizer(RegularizerSpec(
    "simclr_pnr", "pnr", f"{_PNR}:SimCLRPNRMixin", ("distill_temperature", "distill_proj_hidden_dim"),
    "train_simlr_pnr_loss",
    "SimCLR with teacher pseudo-negatives; replaces SimCLR's own loss from task 1 on"))
register_regularizer(RegularizerSpec(
    "mocov2plus_pnr", "pnr", f"{_PNR}:MoCoV2PlusPNRMixin", ("distill_temperature", "distill_proj_hidden_dim"),
    "train_moco_pnr_loss",
    "MoCo V2+ with a queue of teacher projections as extra negatives; replaces MoCo's own loss from task 1 on"))
register_regularizer(RegularizerSpec(
    "byol_pnr", "pnr", f"{_PNR}:BYOLPNRMixin", ("distill_lamb", "negative_lamb", "distill_proj_hidden_dim"),
    "train_byol_pnr_negative_loss",
    "BYOL: distill_lamb * predictive term - negative_lamb * pseudo-negative term"))
register_regularizer(RegularizerSpec(
    "barlow_pnr", "pnr", f"{_PNR}:BarlowPNRMixin",
    ("distill_lamb", "negative_lamb", "distill_barlow_lamb", "distill_scale_loss", "distill_proj_hidden_dim"),
    "train_negative_loss",
    "Barlow Twins: distill_lamb * decorrelative term - negative_lamb * pseudo-negative term"))
register_regularizer(RegularizerSpec(
    "vicreg_pnr", "pnr", f"{_PNR}:VICRegPNRMixin", ("distill_lamb", "negative_lamb", "distill_proj_hidden_dim"),
    "train_predictive_negative_loss",
    "VICReg: distill_lamb * MSE to the past - negative_lamb * MSE to the other view's past"))
register_regularizer(RegularizerSpec(
    "contrastive", "cassle", f"{_CASSLE}:ContrastiveMixin",
    ("distill_lamb", "distill_temperature", "distill_proj_hidden_dim"),
    "train_contrastive_distill_loss", "CaSSLe: symmetric InfoNCE between g(z) and the teacher"))
register_regularizer(RegularizerSpec(
    "predictive", "cassle", f"{_CASSLE}:PredictiveMixin",
    ("distill_lamb", "distill_type", "distill_proj_hidden_dim"),
    "train_predictive_distill_loss", "CaSSLe: BYOL-style prediction of the teacher"))
register_regularizer(RegularizerSpec(
    "decorrelative", "cassle", f"{_CASSLE}:DecorrelativeMixin",
    ("distill_lamb", "distill_barlow_lamb", "distill_scale_loss", "distill_proj_hidden_dim"),
    "train_decorrelative_distill_loss", "CaSSLe: Barlow Twins loss between g(z) and the teacher"))
register_regularizer(RegularizerSpec(
    "predictive_mse", "cassle", f"{_CASSLE}:PredictiveMSEMixin",
    ("distill_lamb", "distill_proj_hidden_dim"),
    "train_predictive_mse_distill_loss", "CaSSLe: MSE between g(z) and the teacher"))

register_method(MethodSpec(
    name="simclr", cls="cassle.methods.simclr:SimCLR", params=SimCLRParams, output_dim=128,
    regularizers={"simclr_pnr": f"{_PNR}:SimCLRPNR", "contrastive": f"{_CASSLE}:SimCLRContrastive"},
))
register_method(MethodSpec(
    name="mocov2plus", cls="cassle.methods.mocov2plus:MoCoV2Plus", params=MoCoV2PlusParams, output_dim=128,
    momentum=True,
    regularizers={"mocov2plus_pnr": f"{_PNR}:MoCoV2PlusPNR", "contrastive": f"{_CASSLE}:MoCoV2PlusContrastive"},
))
register_method(MethodSpec(
    name="byol", cls="cassle.methods.byol:BYOL", params=BYOLParams, output_dim=256, momentum=True,
    regularizers={"byol_pnr": f"{_PNR}:BYOLPNR", "predictive": f"{_CASSLE}:BYOLPredictive"},
))
register_method(MethodSpec(
    name="barlow_twins", cls="cassle.methods.barlow_twins:BarlowTwins", params=BarlowTwinsParams, output_dim=2048,
    regularizers={"barlow_pnr": f"{_PNR}:BarlowTwinsPNR", "decorrelative": f"{_CASSLE}:BarlowTwinsDecorrelative"},
))
register_method(MethodSpec(
    name="vicreg", cls="cassle.methods.vicreg:VICReg", params=VICRegParams, output_dim=2048,
    regularizers={"vicreg_pnr": f"{_PNR}:VICRegPNR", "predictive_mse": f"{_CASSLE}:VICRegPredictiveMSE"},
    regularizer_defaults={"distill_lamb": 25.0, "negative_lamb": 23.0},
))
