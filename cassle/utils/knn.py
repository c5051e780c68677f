"""Weighted k-nearest-neighbour classifier for evaluating representations (InstDisc style).

Each test feature votes with its ``k`` nearest training features; with cosine distance a
neighbour of similarity ``s`` contributes ``exp(s / T)`` to its class, with euclidean distance it
contributes ``1 / (d + epsilon)``. The test set is processed in chunks so that the
test-by-train similarity matrix never holds more than ``max_distance_matrix_size`` entries
(at least one test row per chunk).

PNR's official code disables kNN evaluation; this class is kept for CaSSLe parity.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class WeightedKNNClassifier:
    """Accumulates train/test features, then reports weighted-kNN top-1/top-5 accuracy.

    Args:
        k: number of neighbours (clamped to the number of training samples).
        T: temperature of the cosine vote weights ``exp(sim / T)``.
        max_distance_matrix_size: most entries of one test-chunk x train similarity matrix.
        distance_fx: ``"cosine"`` (on L2-normalised features) or ``"euclidean"``.
        epsilon: added to euclidean distances before inverting them.
    """

    def __init__(
        self,
        k: int = 20,
        T: float = 0.07,
        max_distance_matrix_size: int = int(5e6),
        distance_fx: str = "cosine",
        epsilon: float = 1e-5,
    ) -> None:
        if distance_fx not in ("cosine", "euclidean"):
            raise ValueError(f"distance_fx must be 'cosine' or 'euclidean', got {distance_fx!r}")
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        self.k = int(k)
        self.T = float(T)
        self.max_distance_matrix_size = int(max_distance_matrix_size)
        self.distance_fx = distance_fx
        self.epsilon = float(epsilon)
        self.reset()

    def reset(self) -> None:
        """Forget every accumulated feature and target."""
        self.train_features: list[torch.Tensor] = []
        self.train_targets: list[torch.Tensor] = []
        self.test_features: list[torch.Tensor] = []
        self.test_targets: list[torch.Tensor] = []

    def update(
        self,
        train_features: torch.Tensor | None = None,
        train_targets: torch.Tensor | None = None,
        test_features: torch.Tensor | None = None,
        test_targets: torch.Tensor | None = None,
    ) -> None:
        """Store a batch of training and/or test features with their labels.

        Args:
            train_features: ``(N, D)`` features of training samples.
            train_targets: ``(N,)`` labels of those samples.
            test_features: ``(M, D)`` features of test samples.
            test_targets: ``(M,)`` labels of those samples.
        """
        if (train_features is None) != (train_targets is None):
            raise ValueError("train_features and train_targets must be given together")
        if (test_features is None) != (test_targets is None):
            raise ValueError("test_features and test_targets must be given together")
        if train_features is not None:
            if train_features.size(0) != train_targets.size(0):
                raise ValueError("train_features and train_targets differ in length")
            self.train_features.append(train_features.detach())
            self.train_targets.append(train_targets.detach())
        if test_features is not None:
            if test_features.size(0) != test_targets.size(0):
                raise ValueError("test_features and test_targets differ in length")
            self.test_features.append(test_features.detach())
            self.test_targets.append(test_targets.detach())

    @torch.no_grad()
    def compute(self) -> tuple[float, float]:
        """Classify every stored test feature, then reset.

        Returns:
            ``(acc1, acc5)`` in percent; ``(nan, nan)`` when no train or no test data was stored.
            Top-5 is clamped to the number of classes.
        """
        if not self.train_features or not self.test_features:
            self.reset()
            return float("nan"), float("nan")

        train_features = torch.cat(self.train_features)
        if not train_features.is_floating_point() or train_features.element_size() < 4:
            train_features = train_features.float()  # e.g. fp16 features under AMP
        train_targets = torch.cat(self.train_targets).long()
        test_features = torch.cat(self.test_features).to(train_features.device, train_features.dtype)
        test_targets = torch.cat(self.test_targets).long().to(train_features.device)
        self.reset()

        num_train = train_targets.numel()
        num_test = test_targets.numel()
        if num_train == 0 or num_test == 0:
            return float("nan"), float("nan")

        if self.distance_fx == "cosine":
            train_features = F.normalize(train_features, dim=1)
            test_features = F.normalize(test_features, dim=1)

        num_classes = int(max(train_targets.max().item(), test_targets.max().item())) + 1
        k = min(self.k, num_train)
        top5_k = min(5, num_classes)
        chunk = max(1, self.max_distance_matrix_size // num_train)

        top1 = 0
        top5 = 0
        for start in range(0, num_test, chunk):
            feats = test_features[start : start + chunk]
            targets = test_targets[start : start + chunk]
            if self.distance_fx == "cosine":
                scores = feats @ train_features.t()
            else:
                scores = 1.0 / (torch.cdist(feats, train_features) + self.epsilon)
            scores, indices = scores.topk(k, dim=1, largest=True, sorted=True)
            neighbour_labels = train_targets[indices]  # (b, k)
            if self.distance_fx == "cosine":
                weights = (scores / self.T).exp()
            else:
                weights = scores
            votes = torch.zeros(feats.size(0), num_classes, device=feats.device, dtype=weights.dtype)
            votes.scatter_add_(1, neighbour_labels, weights)
            ranked = votes.argsort(dim=1, descending=True)
            correct = ranked.eq(targets.view(-1, 1))
            top1 += int(correct[:, :1].sum().item())
            top5 += int(correct[:, :top5_k].sum().item())

        return top1 * 100.0 / num_test, top5 * 100.0 / num_test
