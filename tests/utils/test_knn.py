"""Weighted kNN classifier: separable clusters and an explicit-loop reference."""

import math

import pytest
import torch

from cassle.utils.knn import WeightedKNNClassifier


def _clusters(n_per_class, num_classes=4, dim=16, noise=0.05, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centers = torch.eye(dim)[:num_classes] * 3.0
    feats, labels = [], []
    for c in range(num_classes):
        feats.append(centers[c] + noise * torch.randn(n_per_class, dim, generator=gen))
        labels.append(torch.full((n_per_class,), c, dtype=torch.long))
    return torch.cat(feats), torch.cat(labels)


def test_well_separated_clusters_are_classified_perfectly():
    train_x, train_y = _clusters(30, seed=0)
    test_x, test_y = _clusters(10, seed=1)
    knn = WeightedKNNClassifier(k=20, T=0.07)
    # Accumulate over several "batches", as during validation.
    for i in range(0, 120, 40):
        knn.update(train_features=train_x[i : i + 40], train_targets=train_y[i : i + 40])
    knn.update(test_features=test_x[:15], test_targets=test_y[:15])
    knn.update(test_features=test_x[15:], test_targets=test_y[15:])
    acc1, acc5 = knn.compute()
    assert acc1 == pytest.approx(100.0) and acc5 == pytest.approx(100.0)
    # compute() resets the stored features.
    assert knn.train_features == [] and knn.test_features == []
    assert all(math.isnan(a) for a in knn.compute())


def _reference(train_x, train_y, test_x, test_y, k, T, num_classes, distance="cosine", eps=1e-5):
    """Slow explicit loops: per test sample, per neighbour."""
    top1 = top5 = 0
    for x, y in zip(test_x, test_y):
        scores = []
        for tx, ty in zip(train_x, train_y):
            if distance == "cosine":
                s = float(torch.dot(x, tx) / (x.norm() * tx.norm()))
            else:
                s = 1.0 / (float((x - tx).norm()) + eps)
            scores.append((s, int(ty)))
        scores.sort(key=lambda t: -t[0])
        votes = [0.0] * num_classes
        for s, label in scores[:k]:
            votes[label] += math.exp(s / T) if distance == "cosine" else s
        order = sorted(range(num_classes), key=lambda c: -votes[c])
        top1 += int(order[0] == int(y))
        top5 += int(int(y) in order[:5])
    n = len(test_y)
    return 100.0 * top1 / n, 100.0 * top5 / n


@pytest.mark.parametrize("distance", ["cosine", "euclidean"])
@pytest.mark.parametrize("max_size", [int(5e6), 30])  # 30 // 25 train -> one test row per chunk
def test_matches_explicit_loop(distance, max_size):
    gen = torch.Generator().manual_seed(3)
    num_classes = 7
    train_x = torch.randn(25, 5, generator=gen, dtype=torch.double)
    train_y = torch.randint(0, num_classes, (25,), generator=gen)
    train_y[:num_classes] = torch.arange(num_classes)  # every class present
    test_x = torch.randn(12, 5, generator=gen, dtype=torch.double)
    test_y = torch.randint(0, num_classes, (12,), generator=gen)

    # k = all training samples: every class gets a positive vote, so rankings have no ties.
    knn = WeightedKNNClassifier(k=25, T=0.5, max_distance_matrix_size=max_size, distance_fx=distance)
    knn.update(train_x, train_y, test_x, test_y)
    got = knn.compute()
    ref = _reference(train_x, train_y, test_x, test_y, 25, 0.5, num_classes, distance)
    assert got == pytest.approx(ref)

    # Small k: compare top-1 (zero-vote classes may tie further down the ranking).
    knn = WeightedKNNClassifier(k=3, T=0.5, max_distance_matrix_size=max_size, distance_fx=distance)
    knn.update(train_x, train_y, test_x, test_y)
    acc1, _ = knn.compute()
    ref1, _ = _reference(train_x, train_y, test_x, test_y, 3, 0.5, num_classes, distance)
    assert acc1 == pytest.approx(ref1)


def test_non_contiguous_labels_and_k_larger_than_train_set():
    train_x, train_y = _clusters(3, num_classes=2, seed=0)
    test_x, test_y = _clusters(2, num_classes=2, seed=1)
    knn = WeightedKNNClassifier(k=50)
    knn.update(train_x, train_y * 5, test_x, test_y * 5)  # labels {0, 5}
    acc1, acc5 = knn.compute()
    assert acc1 == pytest.approx(100.0) and acc5 == pytest.approx(100.0)


def test_bad_arguments():
    with pytest.raises(ValueError):
        WeightedKNNClassifier(distance_fx="manhattan")
    knn = WeightedKNNClassifier()
    with pytest.raises(ValueError):
        knn.update(train_features=torch.zeros(2, 3))
