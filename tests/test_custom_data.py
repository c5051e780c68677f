"""Your own images through the command line: --dataset custom (any class count, odd sizes, grey images,
PNG and JPEG), --small_stem, --no_labels, and the one-line errors of bad folders (nothing written)."""

from __future__ import annotations

import json
import os

import pytest
from PIL import Image

from cassle.data.splits import class_split
from tests.helpers import assert_one_line_error, run_cli, tiny_argv

NUM_CLASSES = 10  # not 100: 5 tasks of 2 classes


def write_images(folder: str, count: int, shade: int) -> None:
    """``count`` images of mixed kinds: a 37x23 RGB JPEG, a grey 20x31 PNG, a 41x41 RGB PNG, ..."""
    os.makedirs(folder, exist_ok=True)
    for i in range(count):
        kind = i % 3
        if kind == 0:
            Image.new("RGB", (37, 23), (shade, 255 - shade, i * 20)).save(os.path.join(folder, f"{i}.jpg"))
        elif kind == 1:
            Image.new("L", (20, 31), shade).save(os.path.join(folder, f"{i}.png"))
        else:
            Image.new("RGB", (41, 41), (i * 30, shade, 0)).save(os.path.join(folder, f"{i}.PNG"))


@pytest.fixture(scope="module")
def image_folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("mydata")
    for k in range(NUM_CLASSES):
        write_images(str(root / "train" / f"class_{k:02d}"), 3, k * 25)
        write_images(str(root / "val" / f"class_{k:02d}"), 1, k * 25)
    return root


def custom_argv(checkpoint_dir, data_root, *extra: str, num_tasks: int = 5) -> list[str]:
    """The tiny digits command line of the other driver tests, on the image folders instead."""
    return tiny_argv(str(checkpoint_dir), num_tasks=num_tasks, extra=[
        "--dataset", "custom", "--data_dir", str(data_root), "--train_dir", "train", "--batch_size", "4", *extra])


def test_dry_run_counts_the_classes(image_folders, tmp_path):
    proc = run_cli("main_pretrain.py", custom_argv(tmp_path, image_folders, "--small_stem", "--val_dir", "val",
                                                   "--dry_run"))
    assert proc.returncode == 0, proc.stderr
    config = json.loads(proc.stdout)
    assert config["num_classes"] == NUM_CLASSES and config["small_images"] is True
    assert config["tasks"] == class_split(NUM_CLASSES, 5, 5) and config["online_eval"] is False
    assert [view["size"] for view in config["transform_kwargs"]] == [32, 32]
    assert config["dataset_spec"]["mean"] == [0.485, 0.456, 0.406]
    assert not os.listdir(tmp_path)


def test_small_stem_crops_follow_size(image_folders, tmp_path):
    from cassle.args.pretrain import parse_args

    def sizes(*extra):
        cfg = parse_args(custom_argv(tmp_path, image_folders, "--small_stem", "--multicrop", "--num_small_crops",
                                     "2", *extra))
        return [view.size for view in cfg.data.views]

    # the small crops are three quarters of the large ones, as CIFAR's 24 of 32
    assert sizes() == [32, 32, 24, 24]
    assert sizes("--size", "28") == [28, 28, 21, 21]
    assert sizes("--size", "28", "--small_size", "12") == [28, 28, 12, 12]


def test_two_tasks_on_my_folders_with_the_whole_run_probe(image_folders, tmp_path):
    argv = custom_argv(tmp_path, image_folders, "--small_stem", "--val_dir", "val", "--eval_every_task",
                       "--linear_max_epochs", "2", "--knn_k", "3", "--distiller", "simclr_pnr", num_tasks=2)
    proc = run_cli("main_pretrain.py", argv, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = tmp_path / "run"
    results = json.loads((run / "results.json").read_text())
    assert results["dataset"] == "custom" and results["finished_tasks"] == [0, 1]
    matrix = results["acc_matrix"]
    assert len(matrix) == 2 and all(len(row) == 2 for row in matrix)
    assert all(0.0 <= value <= 100.0 for row in matrix for value in row)
    assert results["forgetting"] is not None and results["forward_transfer"] is not None
    args = json.loads((run / "args.json").read_text())
    assert args["dataset_spec"]["small_images"] is True and args["num_classes"] == NUM_CLASSES
    # probing the run again without its --small_stem would evaluate other images: refused
    probe = ["--run_dir", str(run), "--dataset", "custom", "--data_dir", str(image_folders), "--train_dir", "train",
             "--val_dir", "val", "--accelerator", "cpu", "--cache_features"]
    assert_one_line_error(run_cli("main_linear.py", probe), "small_images", "--small_stem")


def test_no_labels_pretrains_with_the_data_split(tmp_path):
    pictures = tmp_path / "pictures"
    write_images(str(pictures), 6, 0)
    write_images(str(pictures / "nested"), 4, 200)
    argv = custom_argv(tmp_path / "runs", tmp_path, "--train_dir", "pictures", "--no_labels", "--size", "24",
                       num_tasks=2)
    proc = run_cli("main_pretrain.py", argv, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    split = json.loads((tmp_path / "runs" / "run" / "split.json").read_text())
    manifest = json.loads((tmp_path / "runs" / "run" / "manifest.json").read_text())
    assert split["split_strategy"] == "data" and split["tasks"] is None
    assert sorted(manifest["tasks"]) == ["0", "1"]
    assert all((tmp_path / "runs" / "run" / f"task{t}" / "final.ckpt").is_file() for t in (0, 1))
    args = json.loads((tmp_path / "runs" / "run" / "args.json").read_text())
    assert args["online_eval"] is False and args["transform_kwargs"][0]["size"] == 24


@pytest.fixture(scope="module")
def bad_folders(tmp_path_factory):
    bad = tmp_path_factory.mktemp("bad")
    write_images(str(bad / "train" / "a"), 4, 0)
    write_images(str(bad / "train" / "b"), 4, 99)
    (bad / "train" / "c").mkdir()  # an empty class folder
    write_images(str(bad / "broken" / "a"), 4, 0)
    (bad / "broken" / "a" / "1.png").write_bytes(b"\x89PNG\r\n\x1a\n broken")
    write_images(str(bad / "other" / "a"), 1, 0)
    write_images(str(bad / "other" / "z"), 1, 0)
    return bad


def test_bad_folders_from_the_command_line(bad_folders, tmp_path):
    runs = tmp_path / "runs"
    missing = run_cli("main_pretrain.py", custom_argv(runs, bad_folders, "--train_dir", "nowhere"))
    assert_one_line_error(missing, "--train_dir", str(bad_folders / "nowhere"), "does not exist")
    broken = run_cli("main_pretrain.py", custom_argv(runs, bad_folders, "--train_dir", "broken", "--num_tasks", "1"))
    assert_one_line_error(broken, str(bad_folders / "broken" / "a" / "1.png"), "not a readable image")
    probe = ["--random_init", "--dataset", "custom", "--data_dir", str(bad_folders), "--train_dir", "other",
             "--no_labels", "--accelerator", "cpu", "--checkpoint_dir", str(runs)]
    assert_one_line_error(run_cli("main_linear.py", probe), "linear probe", "--no_labels")
    assert not runs.exists() or not os.listdir(runs)


@pytest.mark.parametrize("extra, fragments", [
    (["--train_dir", "train"], ["train/c", "holds no image"]),
    (["--train_dir", "broken", "--no_labels"], ["broken/a/1.png", "not a readable image"]),
    (["--train_dir", "other", "--val_dir", "broken"], ["different class folders", "only in --train_dir: z"]),
    (["--train_dir", "other", "--no_labels", "--split_strategy", "class"], ["--split_strategy class", "--no_labels"]),
    (["--train_dir", "other", "--no_labels", "--online_eval"], ["--online_eval", "--no_labels"]),
    (["--train_dir", "other", "--online_eval"], ["--online_eval", "--val_dir"]),
    (["--train_dir", "other", "--eval_every_task"], ["--eval_every_task", "--val_dir"]),
    (["--train_dir", "other", "--mean", "0.5", "0.5"], ["--mean", "3 values"]),
])
def test_bad_folders_and_flags_in_process(bad_folders, tmp_path, capsys, extra, fragments):
    """The same entry point without a new interpreter per case (importing torch costs seconds)."""
    import main_pretrain

    runs = tmp_path / "runs"
    assert main_pretrain.main(custom_argv(runs, bad_folders, *extra, num_tasks=1)) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(fragment in errors[0] for fragment in fragments), errors
    assert not runs.exists() or not os.listdir(runs)
