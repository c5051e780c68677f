"""resolve_dataset: a dataset's facts from --dataset and the data flags, without torch."""

import os
import subprocess
import sys

import pytest

from cassle.data.info import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    STL10_MEAN,
    DatasetSpec,
    join_data_path,
    resolve_dataset,
    spec_from_args,
)
from cassle.errors import CassleError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one_line(exc_info, *needles):
    msg = str(exc_info.value)
    assert "\n" not in msg, msg
    for needle in needles:
        assert str(needle) in msg, (needle, msg)


def class_tree(root, names):
    for name in names:
        os.makedirs(os.path.join(root, name), exist_ok=True)
    return str(root)


def test_custom_counts_the_class_folders_of_train_dir(tmp_path):
    class_tree(tmp_path / "data" / "mine" / "train", [f"c{i}" for i in range(7)])
    (tmp_path / "data" / "mine" / "train" / "stray.jpg").write_bytes(b"")  # a file is not a class
    spec = resolve_dataset("custom", data_dir=str(tmp_path / "data"), train_dir="mine/train")
    assert spec.num_classes == 7 and spec.split_strategies == ("class", "data")
    assert (spec.mean, spec.std) == (IMAGENET_MEAN, IMAGENET_STD)
    # the official custom defaults: ImageNet stem, 224 crops, evaluation as imagenet100, no online eval
    assert (spec.small_images, spec.size, spec.size_honoured) == (False, 224, True)
    assert (spec.eval_resize, spec.eval_crop, spec.probe_size) == (256, 224, 224)
    assert not spec.online_eval and not spec.has_val and not spec.no_labels
    # an absolute --train_dir is not joined to --data_dir
    same = resolve_dataset("custom", data_dir="/elsewhere", train_dir=str(tmp_path / "data" / "mine" / "train"),
                           val_dir="v")
    assert same.num_classes == 7 and same.has_val


def test_custom_small_stem_size_mean_std(tmp_path):
    train = class_tree(tmp_path, ["a", "b"])
    spec = resolve_dataset("custom", train_dir=train, small_stem=True)
    assert spec.small_images and spec.size == 32  # the small-stem default crop
    assert (spec.eval_resize, spec.eval_crop, spec.probe_size) == (32, 32, 32)
    spec = resolve_dataset("custom", train_dir=train, small_stem=True, size=28, mean=[0.5, 0.4, 0.3],
                           std=(0.2, 0.2, 0.1))
    assert (spec.size, spec.eval_resize, spec.eval_crop, spec.probe_size) == (28, 28, 28, 28)
    assert spec.mean == (0.5, 0.4, 0.3) and spec.std == (0.2, 0.2, 0.1)
    big = resolve_dataset("custom", train_dir=train, size=160)
    assert big.size == 160 and (big.eval_resize, big.eval_crop) == (256, 224)  # as imagenet100


def test_custom_no_labels(tmp_path):
    spec = resolve_dataset("custom", train_dir=str(tmp_path / "not-even-listed"), no_labels=True, val_dir="x")
    assert spec.no_labels and spec.num_classes == 1
    assert spec.split_strategies == ("data",) and spec.default_split_strategy == "data"
    assert not spec.has_val and not spec.every_train_image_labelled
    for what in ("--online_eval", "the linear probe"):
        with pytest.raises(CassleError) as exc:
            spec.require_evaluation(what)
        one_line(exc, what, "--no_labels")


def test_custom_flag_errors(tmp_path):
    with pytest.raises(CassleError) as exc:
        resolve_dataset("custom")
    one_line(exc, "--train_dir", "--dataset custom")
    with pytest.raises(CassleError) as exc:
        resolve_dataset("custom", train_dir=str(tmp_path / "missing"))
    one_line(exc, "--train_dir", tmp_path / "missing", "does not exist")
    with pytest.raises(CassleError) as exc:
        resolve_dataset("custom", train_dir=str(tmp_path))  # no sub-folders
    one_line(exc, str(tmp_path), "no class sub-folders", "--no_labels")
    train = class_tree(tmp_path / "t", ["a"])
    with pytest.raises(CassleError) as exc:
        resolve_dataset("custom", train_dir=train, mean=[0.5, 0.5])
    one_line(exc, "--mean", "3 values")
    with pytest.raises(CassleError) as exc:
        resolve_dataset("custom", train_dir=train, std=[0.5, 0.0, 0.5])
    one_line(exc, "--std", "positive")
    with pytest.raises(CassleError) as exc:
        resolve_dataset("custom", train_dir=train, size=0)
    one_line(exc, "--size")
    spec = resolve_dataset("custom", train_dir=train)
    with pytest.raises(CassleError) as exc:
        spec.require_evaluation("--eval_every_task")
    one_line(exc, "--eval_every_task", "--val_dir")


@pytest.mark.parametrize("flags, fragment", [
    ({"no_labels": True}, "--no_labels"),
    ({"mean": [0.5, 0.5, 0.5]}, "--mean/--std"),
    ({"std": [0.5, 0.5, 0.5]}, "--mean/--std"),
])
def test_custom_only_flags_are_refused_elsewhere(flags, fragment):
    with pytest.raises(CassleError) as exc:
        resolve_dataset("cifar100", **flags)
    one_line(exc, fragment, "--dataset cifar100")


def test_official_datasets():
    cifar10 = resolve_dataset("cifar10", size=224, small_stem=True)  # --size is ignored, as officially
    assert (cifar10.num_classes, cifar10.size, cifar10.small_images, cifar10.online_eval) == (10, 32, True, True)
    assert (cifar10.eval_resize, cifar10.eval_crop, cifar10.probe_size) == (None, None, 32)
    stl10 = resolve_dataset("stl10", size=64)
    assert (stl10.num_classes, stl10.size, stl10.small_images, stl10.online_eval) == (10, 96, False, False)
    assert stl10.mean == STL10_MEAN and (stl10.eval_resize, stl10.eval_crop, stl10.probe_size) == (None, None, 96)
    assert not stl10.every_train_image_labelled and resolve_dataset("stl10", small_stem=True).small_images
    with pytest.raises(CassleError) as exc:
        stl10.require_evaluation("--online_eval", every_train_label=True)
    one_line(exc, "--online_eval", "stl10", "unlabelled")
    stl10.require_evaluation("the linear probe")  # the probe reads the labelled split only
    imagenet = resolve_dataset("imagenet", size=160)
    assert (imagenet.num_classes, imagenet.size, imagenet.small_images) == (1000, 160, False)
    assert (imagenet.eval_resize, imagenet.eval_crop) == (256, 224)
    with pytest.raises(CassleError) as exc:
        resolve_dataset("mnist")
    one_line(exc, "--dataset", "mnist")


def test_spec_round_trip_and_args(tmp_path):
    spec = resolve_dataset("custom", train_dir=class_tree(tmp_path, ["a", "b"]), val_dir="v", small_stem=True)
    assert DatasetSpec(**{k: tuple(v) if isinstance(v, list) else v for k, v in spec.as_dict().items()}) == spec

    class Args:  # a parsed command line: --size is a list there
        dataset, data_dir, train_dir, val_dir, size, small_stem = "custom", None, str(tmp_path), "v", [24, 20], True

    assert spec_from_args(Args()).size == 24
    assert join_data_path("/d", "rel") == "/d/rel" and join_data_path("/d", "/abs") == "/abs"
    assert join_data_path("/d", None) is None and join_data_path(None, "rel") == "rel"


def test_resolving_custom_data_imports_no_torch(tmp_path):
    class_tree(tmp_path, ["a", "b", "c"])
    code = (
        "import sys\n"
        "from cassle.data.info import resolve_dataset\n"
        f"assert resolve_dataset('custom', train_dir={str(tmp_path)!r}).num_classes == 3\n"
        "bad = [m for m in ('torch', 'torchvision', 'numpy', 'PIL') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
