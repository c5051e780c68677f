"""Task splits: the pure-Python randperm against real torch, the official CIFAR-100 seed-5 class blocks,
the data-incremental random_split and the DomainNet order."""

import os
import subprocess
import sys

import pytest
import torch

from cassle.data.splits import (
    DOMAINNET_DOMAINS,
    class_split,
    data_split,
    data_split_lengths,
    domain_split,
    task_domain,
    torch_randperm,
)
from cassle.errors import CassleError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# The official CIFAR-100 class split for seed 5 (seed_everything(5); torch.randperm(100).chunk(5)),
# listed sorted per task; task order matters.
CIFAR100_SEED5_TASKS = [
    [11, 15, 20, 22, 23, 29, 30, 39, 42, 53, 55, 63, 64, 68, 69, 73, 78, 79, 81, 86],
    [3, 4, 6, 7, 14, 37, 40, 45, 50, 51, 54, 58, 67, 75, 83, 89, 92, 96, 97, 98],
    [5, 8, 12, 16, 27, 28, 31, 34, 35, 49, 59, 60, 66, 71, 72, 76, 82, 84, 87, 99],
    [0, 1, 2, 13, 17, 18, 19, 25, 36, 38, 46, 52, 61, 62, 74, 77, 80, 85, 91, 94],
    [9, 10, 21, 24, 26, 32, 33, 41, 43, 44, 47, 48, 56, 57, 65, 70, 88, 90, 93, 95],
]

SEEDS = list(range(31)) + [5, 42, 1234]
SIZES = [1, 2, 10, 100, 345, 5000]


@pytest.mark.parametrize("seed", SEEDS)
def test_torch_randperm_matches_torch(seed):
    for n in SIZES:
        torch.manual_seed(seed)
        expected = torch.randperm(n).tolist()
        assert torch_randperm(n, seed) == expected, (seed, n)


def test_torch_randperm_matches_explicit_generator_and_edge_cases():
    for seed in (0, 7, 2**32 + 3):
        g = torch.Generator().manual_seed(seed)
        assert torch_randperm(257, seed) == torch.randperm(257, generator=g).tolist()
    assert torch_randperm(0, 3) == []
    assert sorted(torch_randperm(1000, 9)) == list(range(1000))


def test_class_split_official_cifar100_seed5():
    blocks = class_split(100, 5, 5)
    assert len(blocks) == 5
    for got, want in zip(blocks, CIFAR100_SEED5_TASKS):  # same order of tasks
        assert set(got) == set(want)
        assert len(got) == 20
    torch.manual_seed(5)
    ref = [c.tolist() for c in torch.randperm(100).chunk(5)]
    assert blocks == ref  # permutation order inside blocks, not sorted
    assert any(b != sorted(b) for b in blocks)


def test_class_split_matches_torch_chunk_for_other_settings():
    for n, t, seed in [(10, 5, 0), (10, 2, 3), (100, 10, 5), (345, 5, 1), (100, 4, 123)]:
        torch.manual_seed(seed)
        ref = [c.tolist() for c in torch.randperm(n).chunk(t)]
        assert class_split(n, t, seed) == ref
    assert class_split(100, 5, 6) != class_split(100, 5, 5)  # --seed changes the split


def test_class_split_needs_divisible_num_tasks():
    with pytest.raises(CassleError) as exc:
        class_split(100, 3, 5)
    msg = str(exc.value)
    assert "--num_tasks" in msg and "\n" not in msg


@pytest.mark.parametrize("n,t,seed", [(103, 5, 42), (1000, 3, 42), (7, 7, 42), (5000, 5, 1)])
def test_data_split_matches_random_split(n, t, seed):
    lengths = [n // t] * t
    lengths[0] += n % t
    assert data_split_lengths(n, t) == lengths
    subsets = torch.utils.data.random_split(range(n), lengths, generator=torch.Generator().manual_seed(seed))
    ref = [list(s.indices) for s in subsets]
    assert data_split(n, t, seed) == ref
    assert sorted(i for part in ref for i in part) == list(range(n))


def test_data_split_default_seed_is_42():
    assert data_split(50, 5) == data_split(50, 5, 42)
    assert data_split(50, 5) != data_split(50, 5, 5)
    with pytest.raises(CassleError):
        data_split(3, 5)


def test_domain_split_order():
    assert DOMAINNET_DOMAINS == ("real", "quickdraw", "painting", "sketch", "infograph", "clipart")
    assert domain_split(6) == list(DOMAINNET_DOMAINS)
    assert [task_domain(t) for t in range(6)] == list(DOMAINNET_DOMAINS)
    with pytest.raises(CassleError) as exc:
        domain_split(5)
    assert "--num_tasks" in str(exc.value) and "\n" not in str(exc.value)
    with pytest.raises(CassleError):
        task_domain(6)


def test_splits_and_info_import_without_torch():
    code = (
        "import sys\n"
        "import cassle.data.splits, cassle.data.info, cassle.data\n"
        "from cassle.data.info import DATASET_INFO\n"
        "assert cassle.data.splits.class_split(100, 5, 5)[0][0] == 11\n"
        "assert DATASET_INFO['cifar100']['num_classes'] == 100\n"
        "bad = [m for m in ('torch', 'torchvision', 'pytorch_lightning', 'lightning', 'numpy', 'PIL') "
        "if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr


def test_dataset_info_constants():
    from cassle.data.info import DATASET_INFO, dataset_info

    assert {k: v["num_classes"] for k, v in DATASET_INFO.items()} == {
        "cifar100": 100, "imagenet100": 100, "domainnet": 345, "digits": 10, "cifar10": 10, "stl10": 10,
        "imagenet": 1000, "custom": None}  # custom: the number of class folders
    assert DATASET_INFO["cifar100"]["mean"] == (0.4914, 0.4822, 0.4465)
    assert DATASET_INFO["cifar100"]["std"] == (0.247, 0.243, 0.261)
    for name in ("imagenet100", "domainnet", "imagenet", "custom"):
        assert DATASET_INFO[name]["mean"] == (0.485, 0.456, 0.406)
        assert DATASET_INFO[name]["std"] == (0.228, 0.224, 0.225)
        assert DATASET_INFO[name]["size"] == 224 and not DATASET_INFO[name]["fixed_size"]
        assert not DATASET_INFO[name]["small_images"] and not DATASET_INFO[name]["online_eval"]
    for name, size in (("cifar100", 32), ("cifar10", 32), ("digits", 16)):
        info = DATASET_INFO[name]
        assert info["size"] == size and info["fixed_size"] and info["small_images"] and info["online_eval"]
    with pytest.raises(CassleError) as exc:
        dataset_info("mnist")
    assert "--dataset" in str(exc.value)
