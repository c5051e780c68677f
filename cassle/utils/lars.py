"""LARS: layer-wise adaptive learning rates on top of SGD with momentum.

The update follows the official PNR / CaSSLe optimiser (see the README, "optimisation"):
for every parameter ``p`` with a gradient ``g`` in a group with weight decay ``wd`` and
learning rate ``lr``

* with ``exclude_bias_n_norm`` and ``p.ndim == 1`` (biases, BatchNorm affine): ``g`` is left
  untouched and the parameter gets **no weight decay at all**;
* otherwise, if ``||p|| == 0`` or ``||g|| == 0`` (zero-norm guard): ``g`` is left untouched, no
  trust ratio and no weight decay that step;
* otherwise ``r = eta * ||p|| / (||g|| + wd * ||p|| + 1e-8)``, with ``clip_lr``
  ``r = min(r / lr, 1)``, and ``g <- (g + wd * p) * r``.

Then a plain SGD step (momentum, dampening 0, optional Nesterov) runs with weight decay 0.
The weight decay of each group is restored afterwards, so it stays visible in
``param_groups`` (for logging and checkpoints).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch

_EPS = 1e-8


def _plain_sgd_step() -> Callable[..., Any]:
    """Return ``torch.optim.SGD.step`` without the profiling/hook wrapper torch may add.

    ``torch.optim.Optimizer`` wraps the ``step`` of every optimiser class it instantiates so that
    step hooks run. Once a plain ``SGD`` has been created in the process, ``SGD.step`` carries
    that wrapper too; calling it from ``LARS.step`` (which is wrapped itself) would fire the
    step hooks twice. Unwrapping one level avoids that.
    """
    step = torch.optim.SGD.step
    if getattr(step, "hooked", False) and hasattr(step, "__wrapped__"):
        return step.__wrapped__  # type: ignore[no-any-return]
    return step


class LARS(torch.optim.SGD):
    """SGD with momentum wrapped in LARS (layer-wise adaptive rate scaling).

    It is a real ``torch.optim.Optimizer`` subclass (so Lightning, LR schedulers and AMP's
    ``GradScaler``, which unscales the gradients before ``step``, work with it). Every param
    group may carry its own ``lr`` and ``weight_decay``; ``eta``, ``clip_lr`` and
    ``exclude_bias_n_norm`` are stored per group as well (defaulting to the constructor values).

    Args:
        params: parameters or parameter groups to optimise.
        lr: learning rate (default for groups that do not set their own).
        momentum: SGD momentum factor.
        weight_decay: weight decay (L2 penalty), applied inside the LARS rescaling.
        eta: LARS trust coefficient.
        clip_lr: if True, the local learning rate is clipped: ``r <- min(r / lr, 1)``.
        exclude_bias_n_norm: if True, 1-D parameters skip LARS and get no weight decay.
        nesterov: use Nesterov momentum in the inner SGD step.
    """

    def __init__(
        self,
        params: Iterable[Any],
        lr: float,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        eta: float = 1e-3,
        clip_lr: bool = False,
        exclude_bias_n_norm: bool = False,
        nesterov: bool = False,
    ) -> None:
        if eta < 0.0:
            raise ValueError(f"invalid LARS trust coefficient eta: {eta}")
        super().__init__(
            params,
            lr=lr,
            momentum=momentum,
            dampening=0.0,
            weight_decay=weight_decay,
            nesterov=nesterov,
        )
        extra = {"eta": eta, "clip_lr": clip_lr, "exclude_bias_n_norm": exclude_bias_n_norm}
        # Groups added later through ``add_param_group`` pick these up from ``defaults``.
        self.defaults.update(extra)
        for group in self.param_groups:
            for key, value in extra.items():
                group.setdefault(key, value)

    @torch.no_grad()
    def _apply_lars(self) -> None:
        """Rescale the gradients in place (trust ratio and weight decay), group by group."""
        for group in self.param_groups:
            wd = group["weight_decay"]
            group_lr = group["lr"]
            eta = group.get("eta", self.defaults["eta"])
            clip_lr = group.get("clip_lr", self.defaults["clip_lr"])
            exclude = group.get("exclude_bias_n_norm", self.defaults["exclude_bias_n_norm"])
            for p in group["params"]:
                g = p.grad
                if g is None:
                    continue
                if g.is_sparse:
                    raise RuntimeError("LARS does not support sparse gradients")
                if exclude and p.ndim == 1:
                    # Biases and norm layers: plain SGD on the raw gradient, no weight decay.
                    continue
                p_norm = torch.linalg.vector_norm(p)
                g_norm = torch.linalg.vector_norm(g)
                # Zero-norm guard without a host-device synchronisation: where it triggers,
                # the trust ratio becomes 1 and the weight decay 0, which leaves g unchanged.
                active = (p_norm > 0) & (g_norm > 0)
                ratio = eta * p_norm / (g_norm + wd * p_norm + _EPS)
                if clip_lr:
                    ratio = torch.clamp(ratio / group_lr, max=1.0)
                ratio = torch.where(active, ratio, torch.ones_like(ratio))
                if wd != 0:
                    wd_eff = torch.where(active, torch.full_like(p_norm, wd), torch.zeros_like(p_norm))
                    g.add_(p * wd_eff)
                g.mul_(ratio)

    @torch.no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:  # type: ignore[override]
        """Perform one optimisation step.

        Args:
            closure: optional closure that re-evaluates the model and returns the loss
                (as Lightning passes it); it runs with gradients enabled before the update.

        Returns:
            The closure's return value, or None.
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()

        self._apply_lars()

        saved_wd = [group["weight_decay"] for group in self.param_groups]
        try:
            for group in self.param_groups:
                group["weight_decay"] = 0.0
            _plain_sgd_step()(self)
        finally:
            for group, wd in zip(self.param_groups, saved_wd):
                group["weight_decay"] = wd
        return loss
