"""Accuracy helpers and continual metrics against hand-computed examples (all in percent)."""

import math

import numpy as np
import pytest
import torch

from cassle.utils.metrics import (
    accuracy_at_k,
    average_accuracy,
    continual_summary,
    forgetting,
    forward_transfer,
    weighted_mean,
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


def test_weighted_mean():
    outs = [
        {"acc": torch.tensor(50.0), "batch_size": 2},
        {"acc": 100.0, "batch_size": 6},
        {"acc": torch.tensor(0.0), "batch_size": 0},
    ]
    # (50 * 2 + 100 * 6 + 0 * 0) / 8 = 700 / 8 = 87.5
    assert weighted_mean(outs, "acc") == pytest.approx(87.5)
    assert weighted_mean([{"a": 1.0, "n": 3}], "a", batch_size_key="n") == 1.0
    assert math.isnan(weighted_mean([], "acc"))


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
    assert continual_summary(ACC3, B3) == pytest.approx(
        {"final_avg_acc": 197 / 3, "forgetting": 15.0, "forward_transfer": 3.5}
    )


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
    assert continual_summary([[50.0]], [10.0]) == {
        "final_avg_acc": 50.0, "forgetting": None, "forward_transfer": None
    }
    # Data-incremental: one column (whole validation set after each task).
    di = [[60.0], [65.0], [70.0]]
    expected = {"final_avg_acc": 70.0, "forgetting": None, "forward_transfer": None}
    assert continual_summary(di) == expected
    assert continual_summary(di, random_baseline=[1.0, 1.0, 1.0], data_incremental=True) == expected
    with pytest.raises(ValueError, match="data-incremental"):
        forgetting(di)
    # Class-IL without a random baseline: forward transfer not computed.
    assert continual_summary(ACC3)["forward_transfer"] is None
