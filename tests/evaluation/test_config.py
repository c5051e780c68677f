"""The probe's configuration (cassle/evaluation/config.py): one set of defaults for the command line
and the whole-run evaluation, frozen after resolution, and the run flags -> configuration mapping."""

from __future__ import annotations

import dataclasses
import json

import pytest

from cassle.args.linear import build_parser, parse_args
from cassle.args.pretrain import parse_args as parse_pretrain_args
from cassle.errors import CassleError
from cassle.evaluation.config import LinearConfig, flag_defaults, linear_config_for_run
from tests.helpers import assert_one_line_error, run_cli, tiny_argv


def test_every_default_is_a_flag_and_the_parser_uses_it():
    parser = build_parser()
    dests = {action.dest for action in parser._actions}
    defaults = flag_defaults()
    assert set(defaults) <= dests, f"fields without a flag: {sorted(set(defaults) - dests)}"
    parsed = vars(parser.parse_args([]))
    assert {k: parsed[k] for k in defaults} == defaults
    # the official probe's protocol (docs/official.md §6)
    assert (defaults["max_epochs"], defaults["momentum"], defaults["weight_decay"]) == (100, 0.0, 0.0)
    assert (defaults["lr_decay_steps"], defaults["lr_decay_gamma"], defaults["scheduler"]) == ((60, 80), 0.1, "step")


def test_resolved_configuration_is_frozen_and_derived_with_replace():
    config = parse_args(["--random_init", "--dataset", "cifar100", "--gpus", "0,1"])
    assert isinstance(config, LinearConfig)
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.lr = 1.0
    assert (config.accelerator, config.devices, config.num_devices, config.precision) == ("gpu", (0, 1), 2, "auto")
    assert config.num_classes == 100 and config.small_images and len(config.tasks) == 5
    assert config.task_names == ("task0", "task1", "task2", "task3", "task4")
    sketch = dataclasses.replace(parse_args(["--random_init", "--dataset", "domainnet", "--dry_run"]), domain="sketch")
    assert sketch.domain == "sketch" and sketch.num_tasks == 6 and sketch.tasks is None


@pytest.mark.parametrize("argv, fragment", [
    (["--semi_supervised", "0.1", "--label_fraction", "0.1"], "--semi_supervised"),
    (["--semi_supervised", "1.0"], "--semi_supervised must be in (0, 1)"),
    (["--label_fraction", "0"], "--label_fraction must be in (0, 1]"),
    (["--batch_size", "0"], "--batch_size"),
])
def test_bad_values_are_one_line_errors(argv, fragment):
    with pytest.raises(CassleError, match=fragment.replace("(", r"\(").replace(")", r"\)").replace("[", r"\[")
                       .replace("]", r"\]")):
        parse_args(["--random_init"] + argv)


def test_dry_run_prints_the_semi_supervised_setting():
    result = run_cli("main_linear.py", ["--random_init", "--semi_supervised", "0.1", "--dry_run"])
    assert result.returncode == 0, result.stderr
    config = json.loads(result.stdout)
    assert config["semi_supervised"] == 0.1 and config["label_fraction"] == 1.0
    both = run_cli("main_linear.py", ["--random_init", "--semi_supervised", "0.1", "--label_fraction", "0.5",
                                      "--dry_run"])
    assert_one_line_error(both, "--semi_supervised", "--label_fraction")


# ------------------------------------------------------------------------------------------------
# The whole-run evaluation's configuration from a run's flags


def run_flags(tmp_path, extra: list[str]) -> dict:
    """The resolved flags of a real pretraining command line, as args.json stores them."""
    cfg = parse_pretrain_args(tiny_argv(str(tmp_path), extra=extra))
    (tmp_path / cfg.run.name).mkdir()
    return json.loads(json.dumps(cfg.to_flat(), default=str))


def argv_route(flags: dict) -> LinearConfig:
    """What --eval_every_task built before linear_config_for_run: flags -> argv -> the linear parser."""
    argv = ["--run_dir", flags["run_dir"], "--dataset", flags["dataset"], "--data_dir", flags["data_dir"],
            "--encoder", flags["encoder"], "--method", flags["method"], "--lr", "0.1", "--seed", str(flags["seed"]),
            "--num_tasks", str(flags["num_tasks"]), "--split_strategy", flags["split_strategy"],
            "--batch_size", str(flags["batch_size"]), "--num_workers", str(flags["num_workers"]),
            "--accelerator", flags["accelerator"], "--knn_k", str(flags["knn_k"]), "--name", f"{flags['name']}-linear"]
    if flags["accelerator"] == "cpu":
        argv += ["--cache_features", "--precision", "32"]  # cached features, in float32
    else:
        argv += ["--precision", flags["precision"]]
        if isinstance(flags["devices"], list):
            argv += ["--gpus", ",".join(str(d) for d in flags["devices"])]
    if flags["linear_max_epochs"] is not None:
        argv += ["--max_epochs", str(flags["linear_max_epochs"])]
    if flags["wandb"]:
        argv += ["--wandb"] + (["--offline"] if flags["offline"] else [])
        argv += [f for flag in ("project", "entity") if flags[flag] for f in (f"--{flag}", flags[flag])]
    return parse_args(argv)


def comparable(config: LinearConfig) -> dict:
    out = config.to_dict()
    if not config.wandb:  # without wandb these are never used
        out.update(project=None, entity=None, offline=False)
    return out


@pytest.mark.parametrize("extra", [
    [],
    ["--linear_max_epochs", "3", "--knn_k", "5", "--seed", "7", "--num_tasks", "2"],
    ["--wandb", "--offline", "--project", "p", "--split_strategy", "data", "--precision", "bf16"],
])
def test_config_for_run_equals_the_command_line_route(tmp_path, extra):
    flags = run_flags(tmp_path, extra)
    config = linear_config_for_run(flags)
    assert comparable(config) == comparable(argv_route(flags))
    assert config.cache_features and config.precision == "32-true"  # the CPU path, in float32
    assert config.run_dir == flags["run_dir"] and config.name == "run-linear" and config.method == "simclr"


def test_config_for_run_on_a_gpu_keeps_its_device_and_precision(tmp_path):
    flags = run_flags(tmp_path, [])
    flags.update(accelerator="gpu", devices=[1, 2], precision="16-mixed")  # as resolved on a GPU machine
    config = linear_config_for_run(flags)
    assert comparable(config) == comparable(argv_route(flags))
    assert (config.devices, config.precision, config.cache_features) == ((1, 2), "16-mixed", False)
    overridden = linear_config_for_run(flags, lr=3.0, cache_features=True, max_epochs=7)
    assert (overridden.lr, overridden.cache_features, overridden.max_epochs) == (3.0, True, 7)
    with pytest.raises(ValueError, match="tasks"):
        linear_config_for_run(flags, tasks=((0,),))  # derived from the split, never given
