"""The registry is the one place that names methods and regularisers; a new method needs one entry."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest

from cassle import registry
from cassle.args.pretrain import build_parser, parse_args
from cassle.registry import METHODS, REGULARIZERS, MethodSpec, RegularizerParams, register_method
from tests.helpers import ROOT, tiny_argv


def test_cli_choices_and_defaults_are_views_of_the_registry():
    parser = build_parser("vicreg")
    actions = {a.dest: a for a in parser._actions}
    assert list(actions["method"].choices) == list(METHODS)
    assert list(actions["distiller"].choices) == list(REGULARIZERS)
    for f in dataclasses.fields(registry.VICRegParams):
        assert actions[f.name].default == f.default
    assert actions["distill_lamb"].default == 25.0 and actions["negative_lamb"].default == 23.0  # VICReg's own
    assert build_parser("byol")._option_string_actions["--negative_lamb"].default == 1.0
    for name, spec in METHODS.items():
        assert build_parser(name)._option_string_actions["--output_dim"].default == spec.output_dim
        assert ("--queue_size" in build_parser(name)._option_string_actions) == (name == "mocov2plus")
        assert ("--base_tau_momentum" in build_parser(name)._option_string_actions) == spec.momentum


def test_every_regulariser_reads_only_declared_parameters():
    names = {f.name for f in dataclasses.fields(RegularizerParams)}
    for spec in REGULARIZERS.values():
        assert set(spec.uses) <= names and "distill_proj_hidden_dim" in spec.uses


def test_registry_import_is_torch_free():
    code = ("import sys; import cassle.registry, cassle.config, cassle.args.pretrain;"
            "print([m for m in ('torch', 'pytorch_lightning', 'numpy') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]"


def test_configuration_is_frozen_and_flat_form_is_json():
    cfg = parse_args(["--method", "mocov2plus", "--distiller", "mocov2plus_pnr", "--dataset", "digits"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.output_dim = 3  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.model.params.temperature = 1.0  # type: ignore[misc]
    flat = cfg.to_flat()
    assert json.loads(json.dumps(flat)) == flat
    assert flat["queue_size"] == 65536 and flat["distiller"] == "mocov2plus_pnr"
    assert flat["lr_scaled"] == 0.3 * 128 / 256


def test_unknown_pairs_are_refused():
    with pytest.raises(ValueError, match="unknown regularisers"):
        register_method(MethodSpec("x", "m:X", registry.NoParams, 8, regularizers={"nope": "m:Y"}))
    with pytest.raises(TypeError, match="MomentumParams"):
        MethodSpec("x", "m:X", registry.NoParams, 8, momentum=True)


@pytest.fixture
def toy_method():
    from tests.methods.toy_simsiam import ToySimSiamParams

    spec = register_method(MethodSpec(
        name="toy_simsiam", cls="tests.methods.toy_simsiam:ToySimSiam", params=ToySimSiamParams, output_dim=16,
        regularizers={"predictive": "tests.methods.toy_simsiam:ToySimSiamPredictive"},
    ))
    yield spec
    del METHODS["toy_simsiam"]


def test_a_new_method_through_the_registry_alone(tmp_path, toy_method):
    import cassle.train as train

    argv = tiny_argv(tmp_path, "simclr", "predictive", num_tasks=2)
    argv[argv.index("--method") + 1] = "toy_simsiam"
    at = argv.index("--output_dim")
    del argv[at:at + 2]  # the registry's default output_dim (16) is used
    cfg = parse_args(argv + ["--pred_hidden_dim", "8"])
    assert cfg.model.params.pred_hidden_dim == 8 and cfg.model.output_dim == 16
    manifest = train.run_continual(cfg)
    assert manifest.finished_tasks() == [0, 1]
    assert "train_predictive_distill_loss" in manifest.metrics(1) and "train_simsiam_loss" in manifest.metrics(1)
