"""Accuracy helpers and continual metrics against hand-computed examples (all in percent)."""

import math

import numpy as np
import pytest
import torch

from cassle.utils.metrics import (
    AccuracyAccumulator,
    accuracy_at_k,
    average_accuracy,
    class_to_task,
    forgetting,
    forward_transfer,
)


def test_accuracy_at_k_percent():
    logits = torch.tensor(
        [
            [0.9, 0.05, 0.03, 0.01, 0.005, 0.005],  # target 0: top-1 hit
            [0.1, 0.5, 0.2, 0.1, 0.05, 0.05],  # target 2: 2nd -> top-5 hit only
            [0.5, 0.4, 0.3, 0.2, 0.1, 0.05],  # target 5: last -> miss
            [0.01, 0.02, 0.03, 0.04, 0.1, 0.8],  # target 0: last -> miss
        ]
    )
    targets = torch.tensor([0, 2, 5, 0])
    acc1, acc5 = accuracy_at_k(logits, targets, topk=(1, 5))
    assert acc1.ndim == 0 and acc1.item() == pytest.approx(25.0)  # 1 of 4
    assert acc5.item() == pytest.approx(50.0)  # rows 0 and 1


def test_accuracy_at_k_clamps_k_and_handles_empty_batch():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.1]])
    targets = torch.tensor([2, 0])
    acc1, acc5 = accuracy_at_k(logits, targets, topk=(1, 5))  # 3 classes: top-5 -> top-3
    assert acc1.item() == pytest.approx(50.0) and acc5.item() == pytest.approx(100.0)
    empty = accuracy_at_k(torch.zeros(0, 3), torch.zeros(0, dtype=torch.long), topk=(1, 5))
    assert [a.item() for a in empty] == [0.0, 0.0]


# 3 x 3 example
ACC3 = [
    [80.0, 10.0, 5.0],
    [70.0, 75.0, 12.0],
    [60.0, 65.0, 72.0],
]
# final average: (60 + 65 + 72) / 3 = 197 / 3
# forgetting:    j=0: max(80, 70) - 60 = 20;  j=1: max(75) - 65 = 10;  mean = 15
# forward (b = [9, 8, 7]): j=1: acc[0][1] - 8 = 10 - 8 = 2;  j=2: acc[1][2] - 7 = 12 - 7 = 5;  mean = 3.5
B3 = [9.0, 8.0, 7.0]

# 4 x 4 example (the maximum of a column is not always on the diagonal)
ACC4 = [
    [50.0, 20.0, 21.0, 22.0],
    [55.0, 60.0, 30.0, 25.0],
    [52.0, 58.0, 70.0, 35.0],
    [40.0, 59.0, 50.0, 65.0],
]
# final average: (40 + 59 + 50 + 65) / 4 = 214 / 4 = 53.5
# forgetting:    j=0: max(50, 55, 52) - 40 = 15;  j=1: max(60, 58) - 59 = 1;  j=2: max(70) - 50 = 20
#                mean = 36 / 3 = 12
# forward (b = [10, 15, 20, 25]): j=1: 20 - 15 = 5;  j=2: 30 - 20 = 10;  j=3: 35 - 25 = 10;  mean = 25 / 3
B4 = [10.0, 15.0, 20.0, 25.0]


def test_three_by_three():
    assert average_accuracy(ACC3) == pytest.approx(197 / 3)
    assert forgetting(ACC3) == pytest.approx(15.0)
    assert forward_transfer(ACC3, B3) == pytest.approx(3.5)


def test_four_by_four_numpy_and_list():
    for acc in (ACC4, np.array(ACC4)):
        assert average_accuracy(acc) == pytest.approx(53.5)
        assert forgetting(acc) == pytest.approx(12.0)
        assert forward_transfer(acc, B4) == pytest.approx(25 / 3)


def test_negative_forgetting_and_unneeded_cells_may_be_missing():
    # [[50, None], [60, 70]]: forgetting = max(50) - 60 = -10 (the model improved on task 0)
    acc = [[50.0, None], [60.0, 70.0]]
    assert forgetting(acc) == pytest.approx(-10.0)
    assert average_accuracy(acc) == pytest.approx(65.0)
    with pytest.raises(ValueError, match=r"acc\[0\]\[1\]"):
        forward_transfer(acc, [0.0, 10.0])
    # Lower-triangular ragged rows and NaN holes are fine for forgetting.
    assert forgetting([[80.0], [70.0, 75.0], [60.0, 65.0, 72.0]]) == pytest.approx(15.0)
    nan_acc = np.array(ACC3)
    nan_acc[0, 2] = np.nan
    assert forgetting(nan_acc) == pytest.approx(15.0)
    with pytest.raises(ValueError, match=r"acc\[2\]\[1\]"):
        forgetting([[80.0], [70.0, 75.0], [60.0, None, 72.0]])
    with pytest.raises(ValueError):
        forward_transfer(ACC3, [1.0, 2.0])  # wrong baseline length


def test_single_task_and_data_incremental():
    assert forgetting([[50.0]]) is None
    assert forward_transfer([[50.0]], [10.0]) is None
    # Data-incremental: one column (whole validation set after each task).
    di = [[60.0], [65.0], [70.0]]
    assert average_accuracy(di) == 70.0
    with pytest.raises(ValueError, match="data-incremental"):
        forgetting(di)
    with pytest.raises(ValueError, match="data-incremental"):
        forward_transfer(di, [1.0, 1.0, 1.0])


# ------------------------------------------------------------------------------------------------
# AccuracyAccumulator against a per-sample computation


def naive_metrics(logits, targets, groups, names, prefix="val_"):
    """The same metrics sample by sample, in plain Python (NaN for a group without samples)."""
    n = len(targets)
    loss = sum(float(-torch.log_softmax(logits[i], 0)[targets[i]]) for i in range(n)) / n
    order = [sorted(range(logits.shape[1]), key=lambda c: -float(logits[i, c])) for i in range(n)]
    hit1 = [order[i][0] == int(targets[i]) for i in range(n)]
    hit5 = [int(targets[i]) in order[i][:5] for i in range(n)]
    out = {f"{prefix}loss": loss, f"{prefix}acc1": 100.0 * sum(hit1) / n, f"{prefix}acc5": 100.0 * sum(hit5) / n}
    for g, name in enumerate(names):
        members = [i for i in range(n) if int(groups[i]) == g]
        out[f"{prefix}acc1_{name}"] = 100.0 * sum(hit1[i] for i in members) / len(members) if members else math.nan
    return out


def assert_same_metrics(got, expected):
    assert got.keys() == expected.keys()
    for key, value in expected.items():
        if math.isnan(value):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(value, rel=1e-6), key  # float32 log-softmax


def random_batch(n=37, num_classes=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    # every class appears, and the scores are close, so top-1 and top-5 both hit and miss
    return torch.randn(n, num_classes, generator=g), torch.randint(0, num_classes, (n,), generator=g)


def test_accumulator_equals_per_sample_computation_with_class_groups():
    logits, targets = random_batch()
    lookup = class_to_task([[0, 1, 6], [2, 3, 7], [4, 5], []], 8)  # "task3" has no class: NaN
    assert lookup == [0, 0, 1, 1, 2, 2, 0, 1]
    names = ["task0", "task1", "task2", "task3"]
    acc = AccuracyAccumulator(names, class_to_group=lookup)
    for start in range(0, len(targets), 10):  # batches of 10, 10, 10, 7
        acc.update(logits[start:start + 10], targets[start:start + 10])
    groups = torch.tensor(lookup)[targets]
    assert_same_metrics(acc.compute(), naive_metrics(logits, targets, groups, names))
    assert math.isnan(acc.compute()["val_acc1_task3"])
    prefixed = acc.compute(prefix="momentum_val_")
    assert set(prefixed) == {f"momentum_val_{k}" for k in ("loss", "acc1", "acc5")} | {
        f"momentum_val_acc1_{name}" for name in names}


def test_accumulator_with_given_groups_and_without_groups():
    logits, targets = random_batch(seed=1)
    # tags -1 .. 4 for four named groups: -1 and 4 belong to no group and are only counted overall
    domains = torch.tensor([i % 6 - 1 for i in range(len(targets))])
    names = ["real", "quickdraw", "painting", "sketch"]
    acc = AccuracyAccumulator(names)
    acc.update(logits, targets, domains)
    assert_same_metrics(acc.compute(), naive_metrics(logits, targets, domains, names))
    plain = AccuracyAccumulator()
    plain.update(logits, targets)
    assert_same_metrics(plain.compute(), naive_metrics(logits, targets, domains, []))
    # top-5 with 3 classes is top-3: always a hit
    three = AccuracyAccumulator()
    three.update(torch.randn(5, 3), torch.tensor([0, 1, 2, 0, 1]))
    assert three.compute()["val_acc5"] == 100.0
    empty = AccuracyAccumulator(["task0"])
    assert all(math.isnan(v) for v in empty.compute().values())


def test_summed_halves_equal_the_whole():
    # What the cross-process reduce relies on: the sums of two processes' halves, added, give the
    # metrics of the whole evaluation set.
    logits, targets = random_batch(n=41, seed=2)
    lookup = [0, 1, 2, 3, 0, 1, 2, 3]
    names = [f"task{t}" for t in range(4)]
    whole = AccuracyAccumulator(names, class_to_group=lookup)
    whole.update(logits, targets)
    halves = [AccuracyAccumulator(names, class_to_group=lookup) for _ in range(2)]
    halves[0].update(logits[:20], targets[:20])
    halves[1].update(logits[20:], targets[20:])
    other = halves[1].sums.clone()
    halves[0].reduce(lambda t: t + other)  # Lightning's strategy.reduce returns the sum
    assert_same_metrics(halves[0].compute(), whole.compute())

    in_place = AccuracyAccumulator(names, class_to_group=lookup)
    in_place.update(logits[:20], targets[:20])

    def all_reduce_in_place(t):  # as torch.distributed.all_reduce: sums into its argument, returns None
        t.add_(other)

    in_place.reduce(all_reduce_in_place)
    assert_same_metrics(in_place.compute(), whole.compute())
