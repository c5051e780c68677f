"""The linear probe (main_linear.py, cassle/evaluation/backbone.py, probe.py, lightning_probe.py):
checkpoint loading, the frozen backbone, both training paths, the metrics, label fractions and the
command line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys

import pytest
import torch

from cassle.args.linear import parse_args
from cassle.backbones import build_backbone
from cassle.errors import CheckpointError
from cassle.evaluation.backbone import build_head, build_probe_backbone, freeze
from cassle.evaluation.data import ProbeData, balanced_subset
from cassle.evaluation.probe import metrics_factory, probe_once
from cassle.utils.metrics import AccuracyAccumulator
from tests.faults.helpers import run_main
from tests.helpers import ROOT, assert_one_line_error, run_cli, tiny_argv

torch.set_num_threads(2)

# A short SimCLR pretraining on digits (one task with all ten classes): two epochs of batch 32, lr 0.5,
# a temperature of 0.2 and milder crops/colour changes than the defaults. One epoch is not enough since the
# small stem keeps PyTorch's default initialisation (as officially): random features are then strong on
# digits, and one epoch's probe ranged from 81% to 89% against the random backbone's 91% over settings.
PRETRAIN = [
    "--dataset", "digits", "--method", "simclr", "--num_tasks", "1", "--accelerator", "cpu",
    "--max_epochs", "2", "--batch_size", "32", "--num_workers", "0", "--optimizer", "sgd", "--lr", "0.5",
    "--warmup_epochs", "0", "--temperature", "0.2", "--proj_hidden_dim", "128", "--output_dim", "64",
    "--gaussian_prob", "0.0", "--saturation", "0", "--hue", "0", "--min_scale", "0.6", "--no_online_eval",
]
PROBE = ["--dataset", "digits", "--accelerator", "cpu", "--cache_features", "--batch_size", "256",
         "--num_workers", "0"]


@pytest.fixture(scope="module")
def trained_checkpoint(tmp_path_factory) -> str:
    """The final checkpoint of a real (short) digits SimCLR pretraining, trained in-process."""
    import cassle.train as train
    from cassle.args.pretrain import parse_args as parse_pretrain

    root = tmp_path_factory.mktemp("pretrain")
    train.run_continual(parse_pretrain(PRETRAIN + ["--checkpoint_dir", str(root), "--name", "simclr"]))
    return os.path.join(str(root), "simclr", "task0", "final.ckpt")


@pytest.fixture(scope="module")
def simclr_checkpoint(tmp_path_factory) -> str:
    """The final checkpoint of a one-step digits SimCLR task: a real checkpoint, for the tests of the probe's
    files and errors (what it learned does not matter there)."""
    import cassle.train as train
    from cassle.args.pretrain import parse_args as parse_pretrain

    root = tmp_path_factory.mktemp("one-step")
    train.run_continual(parse_pretrain(tiny_argv(str(root), "simclr", num_tasks=1, name="simclr")))
    return os.path.join(str(root), "simclr", "task0", "final.ckpt")


def probe_json(argv: list[str], output: str) -> dict:
    import main_linear

    assert main_linear.main(argv + ["--output", output]) == 0
    with open(output) as f:
        return json.load(f)


# ------------------------------------------------------------------------------------------------
# Probe quality


@pytest.mark.slow  # two epochs of pretraining and two 100-epoch probes: make test-slow
def test_trained_backbone_beats_a_random_one(trained_checkpoint, tmp_path):
    # Measured (CPU, seed 5, 100 probe epochs, lr 0.1, no momentum, cached features): trained 91.9 top-1,
    # probe loss 0.26; random 91.1, loss 0.68. Random ResNet features are strong on digits (their kNN top-1
    # is ~97%), so the clear margin is the probe loss; top-1 must not be worse by more than a point.
    trained = probe_json(PROBE + ["--pretrained_feature_extractor", trained_checkpoint, "--method", "simclr"],
                         str(tmp_path / "trained.json"))
    random = probe_json(PROBE + ["--random_init"], str(tmp_path / "random.json"))
    t, r = trained["metrics"], random["metrics"]
    print(f"trained {t['val_acc1']:.2f} (loss {t['val_loss']:.3f}), "
          f"random {r['val_acc1']:.2f} (loss {r['val_loss']:.3f})")
    assert t["val_acc1"] >= r["val_acc1"] - 1.0
    assert t["val_loss"] <= 0.5 * r["val_loss"]
    assert trained["method"] == "simclr" and trained["task_idx"] == 0 and random["random_init"] is True
    assert trained["probe"]["momentum"] == 0.0 and trained["probe"]["lr_decay_steps"] == [60, 80]
    for m in (t, r):
        assert set(m) >= {"val_loss", "val_acc1", "val_acc5", "knn_acc1", "knn_acc5"}
        assert set(m) >= {f"val_acc1_task{j}" for j in range(5)}
        assert all(0.0 <= m[f"val_acc1_task{j}"] <= 100.0 for j in range(5))
        assert m["val_acc5"] >= m["val_acc1"]
    # the random backbone is fixed by the seed
    again = probe_json(PROBE + ["--random_init", "--max_epochs", "2", "--knn_k", "0"], str(tmp_path / "r1.json"))
    twice = probe_json(PROBE + ["--random_init", "--max_epochs", "2", "--knn_k", "0"], str(tmp_path / "r2.json"))
    assert again["metrics"] == twice["metrics"]


def test_default_output_is_next_to_the_checkpoint(simclr_checkpoint, tmp_path):
    import main_linear

    argv = PROBE + ["--pretrained_feature_extractor", simclr_checkpoint, "--max_epochs", "1", "--knn_k", "0",
                    "--save_checkpoint"]
    assert main_linear.main(argv) == 0
    payload = json.load(open(simclr_checkpoint + ".linear.json"))
    assert payload["checkpoint"] == simclr_checkpoint and payload["probe"]["epochs"] == 1
    head = torch.load(simclr_checkpoint + ".linear.head.pt")
    assert head["weight"].shape == (10, 512)


# ------------------------------------------------------------------------------------------------
# Errors: one line, exit 2


def test_checkpoint_of_another_method_is_refused(simclr_checkpoint):
    result = run_main(PROBE + ["--pretrained_feature_extractor", simclr_checkpoint, "--method", "byol"],
                      entry="main_linear")
    assert_one_line_error(result, "--method simclr", "--method byol")


def test_corrupt_checkpoint_is_one_line_error(tmp_path):
    path = tmp_path / "corrupt.ckpt"
    path.write_bytes(b"PK\x03\x04 this is not a checkpoint" * 10)
    result = run_main(PROBE + ["--pretrained_feature_extractor", str(path)], entry="main_linear")
    assert_one_line_error(result, str(path), "corrupt")


def test_missing_checkpoint_is_one_line_error(tmp_path):
    result = run_cli("main_linear.py", PROBE + ["--pretrained_feature_extractor", str(tmp_path / "none.ckpt")])
    assert_one_line_error(result, "does not exist")


# ------------------------------------------------------------------------------------------------
# Loading the encoder strictly


def save_official(path, state_dict: dict) -> str:
    torch.save({"state_dict": state_dict, "epoch": 3}, path)  # no "cassle" metadata, like the official code
    return str(path)


def prefixed(module: torch.nn.Module, prefix: str) -> dict:
    return {prefix + k: v.clone() for k, v in module.state_dict().items()}


def test_official_checkpoint_loads_the_online_encoder_only(tmp_path):
    torch.manual_seed(0)
    online, momentum, frozen = (build_backbone("resnet18", True) for _ in range(3))
    state = {**prefixed(online, "encoder."), **prefixed(momentum, "momentum_encoder."),
             **prefixed(frozen, "frozen_encoder."), "projector.0.weight": torch.randn(8, 512),
             "classifier.weight": torch.randn(10, 512), "queue": torch.randn(2, 8, 16)}
    path = save_official(tmp_path / "official.ckpt", state)
    args = parse_args(PROBE + ["--pretrained_feature_extractor", path, "--method", "mocov2plus"])
    backbone, meta = build_probe_backbone(args, path)
    assert meta == {}
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, online.state_dict()[key]), key
    assert backbone.conv1.kernel_size == (3, 3)

    # an ImageNet-stem checkpoint (7x7 first convolution) gets that stem back, whatever the dataset
    imagenet = build_backbone("resnet18", False)
    path = save_official(tmp_path / "imagenet.ckpt", prefixed(imagenet, "encoder."))
    backbone, _ = build_probe_backbone(args, path)
    assert backbone.conv1.kernel_size == (7, 7)


@pytest.mark.parametrize("case", ["wrong_encoder", "no_encoder", "partial"])
def test_incomplete_or_mismatched_encoder_is_refused(tmp_path, case):
    online = build_backbone("resnet18", True)
    state = prefixed(online, "encoder.")
    if case == "no_encoder":
        state = {k.replace("encoder.", "momentum_encoder."): v for k, v in state.items()}
    if case == "partial":
        state.pop("encoder.layer4.1.bn2.weight")
    path = save_official(tmp_path / "x.ckpt", state)
    argv = PROBE + ["--pretrained_feature_extractor", path]
    args = parse_args(argv + (["--encoder", "resnet50"] if case == "wrong_encoder" else []))
    with pytest.raises(CheckpointError) as err:
        build_probe_backbone(args, path)
    message = str(err.value)
    assert "\n" not in message and path in message
    assert {"wrong_encoder": "--encoder resnet50", "no_encoder": "no encoder weights",
            "partial": "missing"}[case] in message


def test_metadata_names_the_method(tmp_path):
    online = build_backbone("resnet18", True)
    path = str(tmp_path / "m.ckpt")
    torch.save({"state_dict": prefixed(online, "encoder."), "cassle": {"method": "barlow_twins", "encoder": "resnet18",
                                                                     "small_images": True}}, path)
    with pytest.raises(CheckpointError, match="--method barlow_twins, not --method vicreg"):
        build_probe_backbone(parse_args(PROBE + ["--pretrained_feature_extractor", path,
                                                            "--method", "vicreg"]), path)
    build_probe_backbone(parse_args(PROBE + ["--pretrained_feature_extractor", path]), path)


# ------------------------------------------------------------------------------------------------
# The two training paths, the frozen backbone, the schedule


def test_lightning_and_cached_paths_give_the_same_metrics_and_keep_bn_fixed(tmp_path):
    # With lr 0 the head stays at its (seeded) initialisation, so both paths must report the same
    # numbers: the metric code, the evaluation data and the kNN are shared.
    common = ["--random_init", "--dataset", "digits", "--accelerator", "cpu", "--num_workers", "0",
              "--batch_size", "64", "--max_epochs", "1", "--lr", "0", "--knn_k", "5", "--limit_train_batches", "2",
              "--label_fraction", "0.1"]
    data = ProbeData(parse_args(common))
    backbone, _ = build_probe_backbone(parse_args(common), None)
    backbone = freeze(backbone)
    # give the BatchNorm layers non-trivial statistics; a train-mode forward would change them
    for m in backbone.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    before = {k: v.clone() for k, v in backbone.state_dict().items()}
    lightning = probe_once(parse_args(common), backbone, data)[0]
    for key, value in backbone.state_dict().items():
        assert torch.equal(value, before[key]), f"{key} changed during the Lightning probe"
    assert all(not m.training for m in backbone.modules())
    cached = probe_once(parse_args(common + ["--cache_features"]), backbone, data)[0]
    assert lightning.keys() == cached.keys()
    for key in lightning:
        assert lightning[key] == pytest.approx(cached[key], rel=1e-4, abs=1e-4), key


def test_lightning_probe_trains_only_the_head():
    from cassle.evaluation.lightning_probe import LinearModel

    args = parse_args(PROBE + ["--random_init", "--momentum", "0.9", "--lr", "0.3", "--weight_decay", "1e-4"])
    backbone = freeze(build_backbone("resnet18", True))
    model = LinearModel(backbone, build_head(512, 10, 5), args, metrics_factory(args))
    model.train()
    assert model.classifier.training and not any(m.training for m in model.backbone.modules())
    config = model.configure_optimizers()
    optimizer, scheduler = config["optimizer"], config["lr_scheduler"]["scheduler"]
    assert [p for g in optimizer.param_groups for p in g["params"]] == list(model.classifier.parameters())
    group = optimizer.param_groups[0]
    assert (group["lr"], group["momentum"], group["weight_decay"]) == (0.3, 0.9, 1e-4)
    lrs = []
    for _ in range(100):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[59] == pytest.approx(0.3) and lrs[60] == pytest.approx(0.03) and lrs[79] == pytest.approx(0.03)
    assert lrs[80] == pytest.approx(0.003) and lrs[99] == pytest.approx(0.003)


def test_step_schedule_factor():
    args = parse_args(PROBE + ["--random_init"])
    assert [args.lr_factor(e) for e in (0, 59, 60, 79, 80, 99)] == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])


# ------------------------------------------------------------------------------------------------
# Metrics


def test_per_task_and_per_domain_accuracy_by_hand():
    # 4 classes in 2 tasks: task0 = {2, 0}, task1 = {1, 3}
    metrics = AccuracyAccumulator(["task0", "task1"], class_to_group=[0, 1, 0, 1])
    logits = torch.tensor([[5.0, 0, 0, 0],   # y=0 right
                           [0, 5.0, 0, 0],   # y=2 wrong
                           [0, 5.0, 0, 0],   # y=1 right
                           [0, 0, 5.0, 0]])  # y=3 wrong
    targets = torch.tensor([0, 2, 1, 3])
    metrics.update(logits[:2], targets[:2])
    metrics.update(logits[2:], targets[2:])
    out = metrics.compute()
    assert out["val_acc1"] == 50.0 and out["val_acc5"] == 100.0
    assert out["val_acc1_task0"] == 50.0 and out["val_acc1_task1"] == 50.0
    expected_loss = torch.nn.functional.cross_entropy(logits, targets).item()
    assert out["val_loss"] == pytest.approx(expected_loss)

    domains = AccuracyAccumulator(["real", "quickdraw", "painting"])
    domains.update(logits, targets, torch.tensor([0, 0, 2, 2]))
    out = domains.compute()
    assert out["val_acc1_real"] == 50.0 and out["val_acc1_painting"] == 50.0
    assert math.isnan(out["val_acc1_quickdraw"])
    plain = AccuracyAccumulator()
    plain.update(logits, targets)
    assert set(plain.compute()) == {"val_loss", "val_acc1", "val_acc5"}


# ------------------------------------------------------------------------------------------------
# Label fraction


def test_label_fraction_subset_is_class_balanced_and_fixed_by_the_seed():
    from cassle.data.datasets import load_digits

    train, _ = load_digits()
    targets = train.targets
    counts = {c: targets.count(c) for c in range(10)}
    everything = list(range(len(targets)))
    subset = balanced_subset(targets, everything, 0.1, seed=5)
    for c in range(10):
        assert sum(1 for i in subset if targets[i] == c) == max(1, math.floor(0.1 * counts[c] + 0.5))
    assert subset == sorted(set(subset))
    assert subset == balanced_subset(targets, everything, 0.1, seed=5)
    assert subset != balanced_subset(targets, everything, 0.1, seed=6)
    tiny = balanced_subset(targets, everything, 0.001, seed=5)
    assert sorted(targets[i] for i in tiny) == list(range(10))  # at least one per class
    assert balanced_subset(targets, everything, 1.0, seed=5) == everything
    # the probe's training set goes through it
    data = ProbeData(parse_args(PROBE + ["--random_init", "--label_fraction", "0.1"]))
    assert data.train_indices() == subset and len(data.val_indices()) == 359


# ------------------------------------------------------------------------------------------------
# Command line


def run_and_list_imports(argv: list[str]) -> subprocess.CompletedProcess:
    code = ("import json, sys; sys.argv = ['main_linear.py'] + sys.argv[1:]; import main_linear; "
            "rc = main_linear.main(sys.argv[1:]); "
            "print(json.dumps(sorted(m for m in ('torch', 'pytorch_lightning', 'lightning', 'wandb') "
            "if m in sys.modules))); sys.exit(rc)")
    env = dict(os.environ, WANDB_MODE="disabled", OMP_NUM_THREADS="2")
    return subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, cwd=ROOT, env=env)


def test_dry_run_resolves_without_torch():
    proc = run_and_list_imports(["--random_init", "--dataset", "cifar100", "--dry_run"])
    assert proc.returncode == 0, proc.stderr
    config_line, imports_line = proc.stdout.strip().splitlines()
    assert json.loads(imports_line) == []
    config = json.loads(config_line)
    assert config["lr_decay_steps"] == [60, 80] and config["momentum"] == 0.0 and config["max_epochs"] == 100
    assert config["lr_decay_gamma"] == 0.1 and config["scheduler"] == "step" and config["weight_decay"] == 0.0
    assert len(config["tasks"]) == 5 and config["num_classes"] == 100


def test_probe_without_wandb_does_not_import_it(tmp_path):
    proc = run_and_list_imports(PROBE + ["--random_init", "--max_epochs", "1", "--knn_k", "0",
                                         "--output", str(tmp_path / "m.json")])
    assert proc.returncode == 0, proc.stderr[-2000:]
    imports = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "torch" in imports and "wandb" not in imports
    assert "pytorch_lightning" not in imports  # the cached path needs no Lightning
    assert "| val_acc1 " in proc.stdout
    assert json.load(open(tmp_path / "m.json"))["metrics"]["val_acc1"] > 0


# ------------------------------------------------------------------------------------------------
# DomainNet: per-domain accuracy, --domain, --domain_aware (a tiny folder in the official list format)

DOMAINS = ["real", "quickdraw", "painting", "sketch", "infograph", "clipart"]


@pytest.fixture
def tiny_domainnet(tmp_path) -> str:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    for d, domain in enumerate(DOMAINS):
        os.makedirs(tmp_path / domain)
        for split, labels in (("train", [0, 1, 1]), ("test", [0, 1])):
            lines = []
            for k, label in enumerate(labels):
                rel = f"{domain}/{split}_{k}.png"
                Image.fromarray(rng.integers(0, 256, (12, 12, 3), dtype=np.uint8)).save(tmp_path / rel)
                lines.append(f"{rel} {label + 2 * d}")
            (tmp_path / f"{domain}_{split}.txt").write_text("\n".join(lines) + "\n")
    return str(tmp_path)


def test_domainnet_per_domain_and_domain_aware_probes(tiny_domainnet, tmp_path):
    # batch 3: one full batch of a domain's three training images (the last partial batch is dropped)
    argv = ["--dataset", "domainnet", "--data_dir", tiny_domainnet, "--accelerator", "cpu", "--cache_features",
            "--random_init", "--batch_size", "3", "--num_workers", "0", "--max_epochs", "2", "--knn_k", "1"]
    payload = probe_json(argv + ["--domain_aware"], str(tmp_path / "all.json"))
    m = payload["metrics"]
    assert payload["task_names"] == DOMAINS and payload["split_strategy"] == "domain"
    for domain in DOMAINS:  # two test images per domain: 0, 50 or 100 percent
        assert m[f"val_acc1_{domain}"] in (0.0, 50.0, 100.0)
        assert m[f"domain_aware_acc1_{domain}"] in (0.0, 50.0, 100.0)
    assert m["val_acc1"] == pytest.approx(sum(m[f"val_acc1_{d}"] for d in DOMAINS) / 6)
    assert m["domain_aware_acc1"] == pytest.approx(sum(m[f"domain_aware_acc1_{d}"] for d in DOMAINS) / 6)
    assert m["domain_agnostic_acc1"] == m["val_acc1"]

    one = probe_json(argv + ["--domain", "sketch"], str(tmp_path / "sketch.json"))["metrics"]
    assert one["val_acc1_sketch"] == one["val_acc1"]
    assert all(one[f"val_acc1_{d}"] is None for d in DOMAINS if d != "sketch")  # no test images of theirs
