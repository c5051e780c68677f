"""Reading and comparing the batches of a training loader, for the loader tests of both data paths."""

import torch


def epoch_batches(loader, epoch: int) -> list:
    """All batches of ``epoch`` (set as Lightning sets it)."""
    loader.set_epoch(epoch)
    return list(loader)


def same_batches(a: list, b: list) -> bool:
    """Whether two lists of ``(indexes, views, targets)`` batches are equal, views included."""
    def flat(batch):
        idx, views, y = batch
        return [idx, y] + (list(views) if isinstance(views, list) else [views])

    return len(a) == len(b) and all(torch.equal(x, y) for p, q in zip(a, b) for x, y in zip(flat(p), flat(q)))
