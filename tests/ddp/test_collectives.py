"""What is gathered or all-reduced across processes, checked under 2 real processes (gloo) against the same
computation on one process: MoCo's enqueued keys, Barlow Twins' correlation matrix and its 1/W gradient,
and the validation accuracy sums."""

from __future__ import annotations

import os
import socket
import tempfile

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(rank: int, port: int, out: str, fn_name: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    try:
        result = globals()[fn_name](rank)
        torch.save(result, os.path.join(out, f"{rank}.pt"))
    finally:
        dist.destroy_process_group()


def spawn(fn_name: str) -> list:
    with tempfile.TemporaryDirectory() as out:
        mp.start_processes(_run, args=(_free_port(), out, fn_name), nprocs=WORLD, start_method="fork")
        return [torch.load(os.path.join(out, f"{r}.pt")) for r in range(WORLD)]


def batches(seed: int, n: int = 6, d: int = 5):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, d, generator=g) for _ in range(WORLD)]


# ------------------------------------------------------------------------------------------- MoCo
def moco_enqueue(rank: int):
    from cassle.methods.mocov2plus import MoCoV2Plus

    keys = [batches(1), batches(2)]  # [view][rank] -> (6, 5)
    queue = torch.zeros(2, 5, 24)
    ptr = torch.zeros(1, dtype=torch.long)
    MoCoV2Plus.enqueue(queue, ptr, [keys[0][rank], keys[1][rank]])
    return queue, ptr


def test_moco_enqueues_the_keys_of_every_rank_as_one_process_with_the_global_batch():
    results = spawn("moco_enqueue")
    keys = [batches(1), batches(2)]
    for queue, ptr in results:
        for view in range(2):
            expected = torch.cat(keys[view]).T  # rank 0's keys, then rank 1's: the global batch in order
            assert torch.equal(queue[view, :, :12], expected)
            assert torch.equal(queue[view, :, 12:], torch.zeros(5, 12))
        assert int(ptr) == 12
    assert torch.equal(results[0][0], results[1][0])


# ------------------------------------------------------------------------------------------- Barlow
def barlow_correlation(rank: int):
    from cassle.losses.barlow import barlow_loss_func, cross_correlation

    z1 = batches(3)[rank].requires_grad_(True)
    z2 = batches(4)[rank]
    c = cross_correlation(z1, z2)
    loss = barlow_loss_func(z1, z2, lamb=0.01, scale_loss=0.5)
    loss.backward()
    return c.detach(), loss.detach(), z1.grad


def test_barlow_correlation_is_the_mean_of_the_ranks_and_its_gradient_is_one_over_w():
    from cassle.losses.barlow import barlow_loss_func, batch_standardise

    results = spawn("barlow_correlation")
    a, b = batches(3), batches(4)
    local = [batch_standardise(a[r]).T @ batch_standardise(b[r]) / a[r].shape[0] for r in range(WORLD)]
    mean = (local[0] + local[1]) / WORLD
    for rank, (c, loss, grad) in enumerate(results):
        assert torch.allclose(c, mean, atol=1e-6)
        # Value: the loss of the averaged matrix. Gradient: through this rank's own matrix only, scaled by 1/W.
        diag = torch.diagonal(mean)
        expected = 0.5 * ((1 - diag).pow(2).sum() + 0.01 * (mean.pow(2).sum() - diag.pow(2).sum()))
        assert torch.allclose(loss, expected, atol=1e-5)
        z1 = a[rank].clone().requires_grad_(True)
        c_local = batch_standardise(z1).T @ batch_standardise(b[rank]) / z1.shape[0]
        c_total = c_local / WORLD + (mean - local[rank] / WORLD).detach()
        d = torch.diagonal(c_total)
        (0.5 * ((1 - d).pow(2).sum() + 0.01 * (c_total.pow(2).sum() - d.pow(2).sum()))).backward()
        assert torch.allclose(grad, z1.grad, atol=1e-6)
    # One process on its own batch (no process group) weights the same terms W times more.
    single = a[0].clone().requires_grad_(True)
    barlow_loss_func(single, b[0], lamb=0.01, scale_loss=0.5).backward()
    assert not torch.allclose(single.grad, results[0][2], atol=1e-6)


# ------------------------------------------------------------------------------------------- accuracy
def accuracy_sums(rank: int):
    from cassle.utils.metrics import AccuracyAccumulator

    g = torch.Generator().manual_seed(5)
    logits, targets = torch.randn(20, 4, generator=g), torch.randint(0, 4, (20,), generator=g)
    acc = AccuracyAccumulator(["task0", "task1"], class_to_group=[0, 0, 1, 1])
    acc.update(logits[rank::WORLD], targets[rank::WORLD])  # this rank's share, as the validation loader gives it
    acc.reduce(lambda sums: dist.all_reduce(sums))
    return acc.compute()


def test_validation_metrics_reduced_over_ranks_equal_one_process_on_the_whole_set():
    from cassle.utils.metrics import AccuracyAccumulator

    results = spawn("accuracy_sums")
    g = torch.Generator().manual_seed(5)
    logits, targets = torch.randn(20, 4, generator=g), torch.randint(0, 4, (20,), generator=g)
    whole = AccuracyAccumulator(["task0", "task1"], class_to_group=[0, 0, 1, 1])
    whole.update(logits, targets)
    expected = whole.compute()
    for metrics in results:
        assert metrics.keys() == expected.keys()
        for key in expected:  # counts add up exactly; the loss sums are float32 cross-entropies
            assert metrics[key] == pytest.approx(expected[key], rel=1e-6 if key.endswith("loss") else 1e-12), key
