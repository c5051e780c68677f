"""The glue between a method, its regulariser and the losses, checked by value.

For every (method, regulariser) pair the registry lists, a real model of task 1 (teacher built, g in place)
computes ``training_losses`` on tiny random views; the test recomputes each part on its own (the forward
passes by hand, the losses with the slow references of ``tests/losses/reference.py``, the weights and
temperatures typed here, not read from the configuration) and compares. A flipped sign on a weight, a
dropped term, a swapped argument or the wrong temperature flag changes the value and fails the test.
Every hyperparameter is given a distinct, unusual value so that using one in place of another shows.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from cassle.args.pretrain import parse_args
from cassle.distillers import RegularizerMixin
from cassle.registry import METHODS, REGULARIZERS, import_object, method_spec
from tests.losses import reference as ref

torch.set_num_threads(2)

B, SIZE = 8, 16
SMALL = {"--proj_hidden_dim": "24", "--distill_proj_hidden_dim": "20"}
# Distinct values for every weight and temperature (none equal to another or to its default).
FLAGS = {
    "simclr": {"--output_dim": "12", "--temperature": "0.55"},
    "mocov2plus": {"--output_dim": "12", "--temperature": "0.45", "--queue_size": "16"},
    "byol": {"--output_dim": "12", "--pred_hidden_dim": "20"},
    "barlow_twins": {"--output_dim": "10", "--scale_loss": "0.2", "--lamb": "0.013"},
    "vicreg": {"--output_dim": "10", "--sim_loss_weight": "21", "--var_loss_weight": "17", "--cov_loss_weight": "2.5"},
}
REG_FLAGS = {"--distill_lamb": "0.7", "--negative_lamb": "0.3", "--distill_temperature": "0.35",
             "--distill_barlow_lamb": "0.021", "--distill_scale_loss": "0.27"}
VICREG_REG_FLAGS = {**REG_FLAGS, "--distill_lamb": "9", "--negative_lamb": "4"}
PAIRS = [(m, r) for m, spec in METHODS.items() for r in spec.regularizers]


def build(method: str, regularizer: str | None, extra: dict[str, str] | None = None):
    flags = {**SMALL, **FLAGS[method], **(VICREG_REG_FLAGS if method == "vicreg" else REG_FLAGS), **(extra or {})}
    argv = ["--dataset", "digits", "--method", method, "--accelerator", "cpu", "--batch_size", str(B),
            "--num_tasks", "5", "--checkpoint_dir", "/nonexistent"]
    argv += [x for kv in flags.items() for x in kv]
    if regularizer:
        argv += ["--distiller", regularizer]
    cfg = parse_args(argv)
    torch.manual_seed(0)
    model = method_spec(method).model_class(regularizer)(cfg.model, 1)
    if regularizer:
        model.build_teacher()
        with torch.no_grad():  # move the student away from the teacher so that every term matters
            for p in list(model.projector.parameters()) + list(model.encoder.layer4.parameters()):
                p.add_(0.05 * torch.randn_like(p))
    model.train()
    return cfg, model


def batch():
    g = torch.Generator().manual_seed(1)
    views = [torch.randn(B, 3, SIZE, SIZE, generator=g) for _ in range(2)]
    X_eval = torch.randn(B, 3, SIZE, SIZE, generator=g)
    y = torch.randint(0, 10, (B,), generator=g)
    return {"task1": (torch.arange(B), views, y), "online_eval": (torch.arange(B), X_eval, y)}, views, X_eval, y


@torch.no_grad()
def by_hand(model, views, X_eval, y):
    """Every tensor the losses need, computed here without the model's forward helpers."""
    out = {"z": [model.projector(model.encoder(X)) for X in views]}
    out["ce"] = F.cross_entropy(model.classifier(model.encoder(X_eval)), y).item()
    if getattr(model, "momentum_encoder", None) is not None:
        out["mz"] = [model.momentum_projector(model.momentum_encoder(X)) for X in views]
        if model.momentum_classifier is not None:
            out["ce"] += F.cross_entropy(model.momentum_classifier(model.momentum_encoder(X_eval)), y).item()
    if getattr(model, "predictor", None) is not None:
        out["pred"] = [model.predictor(z) for z in out["z"]]
    if isinstance(model, RegularizerMixin):
        model.frozen_encoder.eval()  # the teacher always runs in eval mode (model.train() flips it)
        model.frozen_projector.eval()
        out["f"] = [model.frozen_projector(model.frozen_encoder(X)) for X in views]
        x = [F.normalize(z, dim=1) for z in out["z"]] if model.distill_input_key == "q" else out["z"]
        out["p"] = [model.distill_predictor(v) for v in x]
    return out


def expected_ssl(method: str, h: dict, queue: torch.Tensor | None) -> float:
    z1, z2 = h["z"]
    if method == "simclr":
        return ref.simclr(z1, z2, 0.55)
    if method == "mocov2plus":
        q1, q2 = (F.normalize(z, dim=1) for z in h["z"])
        k1, k2 = (F.normalize(m, dim=1) for m in h["mz"])
        return 0.5 * (ref.queue_infonce(q1, k2, [queue[1]], 0.45) + ref.queue_infonce(q2, k1, [queue[0]], 0.45))
    if method == "byol":
        (p1, p2), (m1, m2) = h["pred"], h["mz"]
        return ref.byol(p1, m2) + ref.byol(p2, m1)  # the official BYOL sums its two directions
    if method == "barlow_twins":
        return ref.barlow(z1, z2, 0.013, 0.2)
    if method == "vicreg":
        return 21 * ref.mse(z1, z2) + 17 * ref.vicreg_variance(z1, z2) + 2.5 * ref.vicreg_covariance(z1, z2)
    raise AssertionError(method)


def expected_pnr_objective(method: str, h: dict, queue, frozen_queue) -> float:
    """SimCLR and MoCo PNR replace the SSL loss; the value of that replacement."""
    (p1, p2), (f1, f2) = h["p"], h["f"]
    if method == "simclr":
        main, reg = ref.simclr_pnr(*h["z"], p1, p2, f1, f2, 0.35)  # both terms at --distill_temperature
        return main + reg
    q1, q2 = (F.normalize(z, dim=1) for z in h["z"])
    k1, k2 = (F.normalize(m, dim=1) for m in h["mz"])
    n1, n2 = F.normalize(p1, dim=1), F.normalize(p2, dim=1)
    v1, v2 = F.normalize(f1, dim=1), F.normalize(f2, dim=1)
    total = 0.0
    for q, k, p, v, b in ((q1, k2, n1, v1, 1), (q2, k1, n2, v2, 0)):
        negatives = [queue[b], frozen_queue[b]]  # both queues of the other view
        total += ref.queue_infonce(q, k, negatives, 0.45) + ref.queue_infonce(p, v, negatives, 0.35)
    return 0.5 * total


def expected_regularizer(regularizer: str, h: dict, distill_type: str = "byol") -> float:
    (p1, p2), (f1, f2) = h["p"], h["f"]
    if regularizer == "byol_pnr":
        positive, negative = ref.byol_pnr(p1, p2, f1, f2)
        return 0.7 * positive - 0.3 * negative
    if regularizer == "barlow_pnr":
        positive, negative = ref.barlow_pnr(p1, p2, f1, f2, 0.021, 0.27)
        return 0.7 * positive - 0.3 * negative
    if regularizer == "vicreg_pnr":
        positive, negative = ref.vicreg_pnr(p1, p2, f1, f2)
        return 9 * positive - 4 * negative
    if regularizer == "contrastive":
        q, v = ref.rows(torch.cat([p1, p2])), ref.rows(torch.cat([f1, f2]))
        return 0.7 * 0.5 * (ref.contrastive_direction(q, v, 0.35) + ref.contrastive_direction(v, q, 0.35))
    if regularizer == "predictive":
        if distill_type == "byol":
            return 0.7 * 0.5 * (ref.byol(p1, f1) + ref.byol(p2, f2))
        neg_cos = [ref.mean([-ref.cos(a, b) for a, b in zip(ref.rows(p), ref.rows(f))])
                   for p, f in ((p1, f1), (p2, f2))]
        return 0.7 * 0.5 * sum(neg_cos)
    if regularizer == "decorrelative":
        return 0.7 * 0.5 * (ref.barlow(p1, f1, 0.021, 0.27) + ref.barlow(p2, f2, 0.021, 0.27))
    if regularizer == "predictive_mse":
        return 9 * 0.5 * (ref.mse(p1, f1) + ref.mse(p2, f2))
    return 0.0  # simclr_pnr, mocov2plus_pnr: no added term, the objective is replaced


def check(method, regularizer, extra=None, distill_type="byol"):
    cfg, model = build(method, regularizer, extra)
    data, views, X_eval, y = batch()
    queue = model.queue.clone() if hasattr(model, "queue") else None
    frozen_queue = model.queue2.clone() if hasattr(model, "queue2") else None
    h = by_hand(model, views, X_eval, y)
    total, logs, outs = model.training_losses(data)
    replaced = bool(regularizer) and REGULARIZERS[regularizer].family == "pnr" and method in ("simclr", "mocov2plus")
    if replaced:
        ssl_expected = expected_pnr_objective(method, h, queue, frozen_queue)
    else:
        ssl_expected = expected_ssl(method, h, queue)
    reg_expected = expected_regularizer(regularizer, h, distill_type) if regularizer else 0.0
    total_expected = ssl_expected + reg_expected + h["ce"]
    assert total.item() == pytest.approx(total_expected, rel=2e-4, abs=2e-5), (ssl_expected, reg_expected, h["ce"])
    return model, outs, logs, h, queue


@pytest.mark.parametrize("method, regularizer", PAIRS, ids=[f"{m}-{r}" for m, r in PAIRS])
def test_training_loss_is_ssl_plus_regularizer_plus_classifier(method, regularizer):
    model, outs, logs, h, queue = check(method, regularizer)
    # The logged regulariser value is the unweighted term (official log keys).
    key = REGULARIZERS[regularizer].log_key
    assert key in logs, sorted(logs)


@pytest.mark.parametrize("method", list(METHODS))
def test_task0_model_is_plain_ssl(method):
    model, *_ = check(method, None)
    assert not isinstance(model, RegularizerMixin)


def test_predictive_distill_type_other_than_byol_uses_negative_cosine():
    check("byol", "predictive", {"--distill_type": "cosine"}, distill_type="cosine")


def test_without_teacher_a_regularised_model_is_the_plain_method():
    """Before build_teacher (never happens in a run, but a mixin must not break its method)."""
    cfg, model = build("byol", None)
    data, *_ = batch()
    plain, _, _ = model.training_losses(data)
    cfg, regularised = build("byol", "byol_pnr")
    regularised.frozen_encoder = regularised.frozen_projector = None
    regularised.load_state_dict(model.state_dict(), strict=False)
    value, _, _ = regularised.training_losses(data)
    assert value.item() == pytest.approx(plain.item(), rel=1e-6)


# ---------------------------------------------------------------------------------- parameter groups
def groups_of(model) -> dict[str, dict]:
    optimizer = model.configure_optimizers()
    return {g["name"]: g for g in optimizer.param_groups}


@pytest.mark.parametrize("method, regularizer", PAIRS, ids=[f"{m}-{r}" for m, r in PAIRS])
def test_parameter_groups_and_learning_rates(method, regularizer):
    cfg, model = build(method, regularizer, {"--lr": "0.8", "--classifier_lr": "0.13", "--weight_decay": "3e-4"})
    groups = groups_of(model)
    lr = 0.8 * B / 256  # batch-scaled
    assert groups["backbone"]["lr"] == pytest.approx(lr) and groups["projector"]["lr"] == pytest.approx(lr)
    assert groups["classifier"]["lr"] == pytest.approx(0.13) and groups["classifier"]["weight_decay"] == 0.0
    # --distill_lamb is 0.7 here: g trains at lr / 0.7 for byol_pnr and predictive (the official rule).
    scaled = regularizer in ("byol_pnr", "predictive")
    assert groups["distill_predictor"]["lr"] == pytest.approx(lr / 0.7 if scaled else lr)
    expected_names = {"backbone", "projector", "classifier", "distill_predictor"}
    if method == "byol":
        expected_names.add("predictor")
    if method_spec(method).momentum and cfg.model.params.momentum_classifier:
        expected_names.add("momentum_classifier")
    assert set(groups) == expected_names
    # Every trainable parameter in exactly one group; the teacher and momentum branch in none.
    optimised = [id(p) for g in groups.values() for p in g["params"]]
    assert len(optimised) == len(set(optimised))
    trainable = {id(p) for n, p in model.named_parameters() if p.requires_grad}
    assert set(optimised) == trainable
    frozen = [p for m in (model.frozen_encoder, model.frozen_projector) for p in m.parameters()]
    assert frozen and not any(p.requires_grad for p in frozen)
    if method_spec(method).momentum:
        assert not any(id(p) in set(optimised) for p in model.momentum_encoder.parameters())


def test_distill_lamb_at_least_one_keeps_the_base_lr_for_g():
    cfg, model = build("byol", "byol_pnr", {"--lr": "0.8", "--distill_lamb": "2.0"})
    assert groups_of(model)["distill_predictor"]["lr"] == pytest.approx(0.8 * B / 256)


def test_every_registered_class_is_the_mixin_over_its_method():
    for name, spec in METHODS.items():
        base = spec.model_class()
        assert not issubclass(base, RegularizerMixin)
        for regularizer in spec.regularizers:
            cls = spec.model_class(regularizer)
            mixin = import_object(REGULARIZERS[regularizer].mixin)
            assert issubclass(cls, base) and issubclass(cls, mixin), (name, regularizer)
            assert cls.regularizer_name == regularizer
            assert cls.__module__.startswith("cassle.") and "<locals>" not in cls.__qualname__  # importable


# ---------------------------------------------------------------------------------- EMA at the model level
def test_ema_of_the_momentum_branch_follows_the_official_order(tmp_path):
    """After optimiser step k of a task: no EMA at k = 1; from k = 2 on, tau(k - 2) (cosine schedule)."""
    import pytorch_lightning as pl

    from cassle.train import TaskData, quiet_lightning

    quiet_lightning()
    cfg, model = build("byol", None, {"--base_tau_momentum": "0.9", "--final_tau_momentum": "0.99",
                                      "--max_epochs": "1", "--num_workers": "0"})
    steps = 4
    seen = []

    class Snap(pl.Callback):  # runs before the module's own on_train_batch_end (the EMA)
        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
            seen.append(({k: v.clone() for k, v in module.encoder.state_dict().items()},
                         {k: v.clone() for k, v in module.momentum_encoder.state_dict().items()}))

        def on_train_end(self, trainer, module):
            seen.append((None, {k: v.clone() for k, v in module.momentum_encoder.state_dict().items()}))

    trainer = pl.Trainer(max_epochs=1, limit_train_batches=steps, accelerator="cpu", devices=1, logger=False,
                         callbacks=[Snap()], enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    from pytorch_lightning.utilities import CombinedLoader

    data = TaskData(cfg)
    model.current_task_idx = 0
    trainer.fit(model, train_dataloaders=CombinedLoader(data.train_loaders(0, "cpu"), mode="min_size"))
    total = trainer.estimated_stepping_batches
    tau = lambda s: 0.99 - (0.99 - 0.9) * (math.cos(math.pi * s / total) + 1) / 2  # noqa: E731
    key = "layer1.0.conv1.weight"
    for k in range(1, steps + 1):
        online_k, momentum_before = seen[k - 1]
        momentum_after = seen[k][1]
        if k == 1:
            assert torch.equal(momentum_after[key], momentum_before[key])
        else:
            t = tau(k - 2)
            expected = t * momentum_before[key] + (1 - t) * online_k[key]
            assert torch.allclose(momentum_after[key], expected, atol=1e-6), k


# ---------------------------------------------------------------------------------- multi-crop, supervised
MULTI = {"--multicrop": None, "--num_small_crops": "2"}


def multicrop_batch():
    g = torch.Generator().manual_seed(2)
    views = [torch.randn(B, 3, s, s, generator=g) for s in (SIZE, SIZE, 12, 12)]  # 2 large, 2 small
    y = torch.tensor([0, 1, 0, 2, 1, 3, 0, 4])  # repeated labels: supervised positives across images
    X_eval = torch.randn(B, 3, SIZE, SIZE, generator=g)
    return {"task1": (torch.arange(B), views, y), "online_eval": (torch.arange(B), X_eval, y)}, views, X_eval, y


def build_flags(method, regularizer, extra):
    flags = {**SMALL, **FLAGS[method], **(VICREG_REG_FLAGS if method == "vicreg" else REG_FLAGS), **extra}
    argv = ["--dataset", "digits", "--method", method, "--accelerator", "cpu", "--batch_size", str(B)]
    for key, value in flags.items():
        argv += [key] if value is None else [key, value]
    if regularizer:
        argv += ["--distiller", regularizer]
    cfg = parse_args(argv)
    torch.manual_seed(0)
    model = method_spec(method).model_class(regularizer)(cfg.model, 1)
    if regularizer:
        model.build_teacher()
    model.train()
    return model


@pytest.mark.parametrize("method", list(METHODS))
def test_multicrop_loss_of_the_model_equals_the_reference_over_the_chosen_pairs(method):
    model = build_flags(method, None, MULTI)
    data, views, X_eval, y = multicrop_batch()
    queue = model.queue.clone() if hasattr(model, "queue") else None
    with torch.no_grad():
        z = [model.projector(model.encoder(X)) for X in views]
        mz = [model.momentum_projector(model.momentum_encoder(X)) for X in views[:2]] \
            if method_spec(method).momentum else None
        ce = by_hand(model, views[:2], X_eval, y)["ce"]
    total, _, _ = model.training_losses(data)
    if method == "simclr":
        expected = ref.simclr_multicrop(z, 0.55)
    elif method == "mocov2plus":
        assert queue.shape[0] == 2  # one queue per large crop
        expected = ref.moco_multicrop([F.normalize(x, dim=1) for x in z], [F.normalize(m, dim=1) for m in mz],
                                      [queue[0], queue[1]], 0.45)
    elif method == "byol":
        expected = ref.byol_multicrop([model.predictor(x).detach() for x in z], mz)
    elif method == "barlow_twins":
        expected = ref.barlow_multicrop(z, 2, 0.013, 0.2)
    else:
        expected = ref.vicreg_multicrop(z, 2, 21, 17, 2.5)
    assert total.item() == pytest.approx(expected + ce, rel=2e-4, abs=2e-5)


def test_supervised_simclr_uses_the_labels():
    model = build_flags("simclr", None, {"--supervised": None})
    data, views, X_eval, y = batch()
    labels = torch.tensor([0, 1, 0, 2, 1, 3, 0, 4])
    data["task1"] = (data["task1"][0], data["task1"][1], labels)
    with torch.no_grad():
        z = [model.projector(model.encoder(X)) for X in views]
        ce = by_hand(model, views, X_eval, y)["ce"]
    total, _, _ = model.training_losses(data)
    assert total.item() == pytest.approx(ref.simclr_multicrop(z, 0.55, labels=labels) + ce, rel=2e-4)
    assert ref.simclr_multicrop(z, 0.55, labels=labels) != pytest.approx(ref.simclr(z[0], z[1], 0.55), rel=1e-3)


def test_regularisers_see_the_first_two_large_crops_only():
    model = build_flags("byol", "byol_pnr", MULTI)
    data, views, X_eval, y = multicrop_batch()
    _, _, outs = model.training_losses(data)
    assert len(outs["frozen_z"]) == len(outs["distill_p"]) == 2 and len(outs["z"]) == 4
    h = by_hand(model, views[:2], X_eval, y)
    for got, want in zip(outs["distill_p"] + outs["frozen_z"], h["p"] + h["f"]):
        assert torch.allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("argv, fragment", [
    (["--method", "simclr", "--distiller", "simclr_pnr", "--multicrop", "--num_small_crops", "2"], "two crops"),
    (["--method", "mocov2plus", "--distiller", "mocov2plus_pnr", "--num_crops", "3"], "two crops"),
    (["--method", "simclr", "--distiller", "simclr_pnr", "--supervised"], "--supervised"),
])
def test_combinations_without_a_meaning_are_refused(argv, fragment):
    from cassle.errors import CassleError

    with pytest.raises(CassleError, match=fragment):
        parse_args(argv)
