"""The probe's training data (cassle/evaluation/data.py, probe.py): the official semi-supervised split,
full batches only (the official probe drops the last partial batch), and the one-line error when
not one batch fits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.model_selection import train_test_split

from cassle.args.linear import parse_args
from cassle.errors import CassleError
from cassle.evaluation.data import ProbeData, semi_supervised_subset
from cassle.evaluation.probe import train_head_on_features
from tests.faults.helpers import run_main
from tests.helpers import assert_one_line_error

PROBE = ["--random_init", "--dataset", "digits", "--accelerator", "cpu", "--num_workers", "0"]


def official_split(targets, fraction):
    """The official main_linear.py's --semi_supervised subset, called exactly as it does."""
    return train_test_split(range(len(targets)), train_size=fraction, stratify=targets, random_state=42)[0]


@pytest.mark.parametrize("fraction", [0.01, 0.1, 0.5])
def test_semi_supervised_subset_is_the_official_split(fraction):
    rng = np.random.default_rng(0)
    targets = rng.choice(10, size=3000, p=np.linspace(1, 3, 10) / np.linspace(1, 3, 10).sum()).tolist()
    ours = semi_supervised_subset(targets, range(len(targets)), fraction)
    assert ours == sorted(official_split(targets, fraction))
    counts = np.bincount([targets[i] for i in ours], minlength=10)
    expected = np.bincount(targets, minlength=10) * fraction
    assert np.all(np.abs(counts - expected) <= 1)  # stratified


def test_probe_trains_on_the_official_subset_of_digits():
    config = parse_args(PROBE + ["--semi_supervised", "0.1"])
    data = ProbeData(config)
    assert data.train_indices() == sorted(official_split(data.train.targets, 0.1))
    # --label_fraction draws another (seeded, class-balanced) subset of about the same size
    other = ProbeData(parse_args(PROBE + ["--label_fraction", "0.1"])).train_indices()
    assert other != data.train_indices() and abs(len(other) - len(data.train_indices())) <= 10


def test_semi_supervised_split_that_cannot_be_stratified_is_one_line():
    with pytest.raises(CassleError, match="--semi_supervised 0.1") as err:
        semi_supervised_subset([0] * 50 + [1], range(51), 0.1)  # class 1 has one image
    assert "\n" not in str(err.value)


def test_training_loader_drops_the_last_partial_batch():
    data = ProbeData(parse_args(PROBE + ["--batch_size", "4"]))
    indices = list(range(10))
    train = list(data.loader("train", indices, augment=True))
    assert [len(batch[1]) for batch in train] == [4, 4]
    assert [len(batch[1]) for batch in data.loader("val", indices)] == [4, 4, 2]  # evaluation keeps every image


class RecordingHead(torch.nn.Linear):
    def __init__(self):
        super().__init__(3, 2)
        self.batch_sizes = []

    def forward(self, x):
        self.batch_sizes.append(x.shape[0])
        return super().forward(x)


def test_cached_features_path_drops_the_last_partial_batch():
    config = parse_args(PROBE + ["--batch_size", "4", "--max_epochs", "2"])
    train = {"feats": torch.randn(10, 3), "targets": torch.randint(0, 2, (10,))}
    head = RecordingHead()
    train_head_on_features(head, train, config)
    assert head.batch_sizes == [4, 4, 4, 4]  # 10 images: two full batches per epoch


def test_training_set_smaller_than_one_batch_is_one_line_error():
    # --label_fraction 0.005: one or two images per class, about 10 in all: fewer than one batch of 64
    result = run_main(PROBE + ["--cache_features", "--label_fraction", "0.005", "--batch_size", "64",
                               "--knn_k", "0", "--max_epochs", "1"], entry="main_linear")
    assert_one_line_error(result, "--batch_size 64", "training images")
