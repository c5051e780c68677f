"""EpochSampler shards like torch's DistributedSampler; EpochLoader reads the epoch at the first batch."""

import os
import subprocess
import sys

import numpy as np
import pytest
from torch.utils.data import DistributedSampler

import cassle
from cassle.data.epochs import EpochLoader, EpochSampler, StreamSpec, split_key


@pytest.mark.parametrize("n", [10, 11, 13])
@pytest.mark.parametrize("world_size", [1, 2, 3])
@pytest.mark.parametrize("drop_last", [True, False])
def test_shard_is_distributed_samplers_on_the_epoch_order(n, world_size, drop_last):
    indices = np.arange(100, 100 + n)
    for rank in range(world_size):
        sampler = EpochSampler(indices, 2, seed=4, rank=rank, world_size=world_size, drop_last=drop_last)
        order = sampler.epoch_order(3)
        reference = DistributedSampler(range(n), num_replicas=world_size, rank=rank, shuffle=False,
                                       drop_last=drop_last)
        assert sampler.shard(3).tolist() == order[list(reference)].tolist()
        assert sampler.num_samples == len(reference)


def test_ranks_split_each_epoch_into_equal_disjoint_batches():
    n, batch, world = 23, 3, 2
    samplers = [EpochSampler(range(n), batch, seed=9, rank=r, world_size=world) for r in range(world)]
    for epoch in (0, 1):
        order = samplers[0].epoch_order(epoch)
        assert order.tolist() == samplers[1].epoch_order(epoch).tolist()  # the same on every rank
        assert sorted(order.tolist()) == list(range(n))
        per_rank = [np.concatenate(s.batches(epoch)) for s in samplers]
        assert [len(s) for s in samplers] == [3, 3]  # (23 // 2) // 3, the last partial batch dropped
        assert all(len(b) == batch for s in samplers for b in s.batches(epoch))
        assert not set(per_rank[0]) & set(per_rank[1])
        # together: the first len * batch * world positions of the order, rank r at r, r + W, ...
        covered = len(samplers[0]) * batch * world
        assert sorted(np.concatenate(per_rank).tolist()) == sorted(order[:covered].tolist())
        assert per_rank[1].tolist() == order[1:covered:world].tolist()
    assert samplers[0].epoch_order(0).tolist() != samplers[0].epoch_order(1).tolist()
    other_seed = EpochSampler(range(n), batch, seed=10)
    assert other_seed.epoch_order(0).tolist() != samplers[0].epoch_order(0).tolist()


def test_iteration_yields_keys_of_the_current_epoch():
    sampler = EpochSampler(np.arange(10).reshape(-1, 1) * 2, 4, seed=1)  # an (n, 1) array is flattened
    assert len(sampler) == 2 and list(sampler)[0][0][0] == 0
    sampler.set_epoch(5)
    batches = list(sampler)
    assert [[i for _, i in b] for b in batches] == [b.tolist() for b in sampler.batches(5)]
    assert {e for b in batches for e, _ in b} == {5}
    assert split_key((5, 8)) == (5, 8) and split_key(8) == (None, 8)
    unshuffled = EpochSampler(range(7), 3, seed=1, shuffle=False, drop_last=False)
    assert [b.tolist() for b in unshuffled.batches(2)] == [[0, 1, 2], [3, 4, 5], [6]]


def test_invalid_arguments():
    with pytest.raises(ValueError):
        EpochSampler(range(4), 0, seed=0)
    with pytest.raises(ValueError):
        EpochSampler(range(4), 2, seed=0, rank=2, world_size=2)


class _EpochEcho(EpochLoader):
    def _iterate(self, epoch):
        for batch in self.sampler.batches(epoch):
            yield epoch, batch.tolist()


def test_loader_reads_the_epoch_at_the_first_batch_not_at_iter():
    # Lightning calls iter() before set_epoch (and prefetches nothing when the length is known).
    loader = _EpochEcho(StreamSpec(range(8), 2, seed=3, task=1, name="task"))
    it = iter(loader)
    loader.set_epoch(4)
    epoch, first = next(it)
    assert epoch == 4 and first == loader.sampler.batches(4)[0].tolist()
    assert len(loader) == 4 and loader.epoch == 4
    again = list(loader)  # iterating does not advance the epoch: only set_epoch does
    assert {e for e, _ in again} == {4}


def test_streams_tasks_and_ranks_get_their_own_seeds():
    def make(task=0, stream="task", rank=0):
        return _EpochEcho(StreamSpec(range(40), 4, seed=5, task=task, name=stream, rank=rank, world_size=2))

    base = make()
    assert make().sampler.epoch_order(0).tolist() == base.sampler.epoch_order(0).tolist()
    assert make(rank=1).sampler.epoch_order(0).tolist() == base.sampler.epoch_order(0).tolist()
    assert make(task=1).sampler.epoch_order(0).tolist() != base.sampler.epoch_order(0).tolist()
    assert make(stream="online_eval").sampler.epoch_order(0).tolist() != base.sampler.epoch_order(0).tolist()
    seeds = {base.batch_seed(0, 0), base.batch_seed(1, 0), base.batch_seed(0, 1), make(rank=1).batch_seed(0, 0),
             make(task=1).batch_seed(0, 0), make(stream="online_eval").batch_seed(0, 0)}
    assert len(seeds) == 6 and base.batch_seed(0, 0) == make().batch_seed(0, 0)


def test_skip_first_resumes_in_the_middle_of_an_epoch():
    """A task resumed from a checkpoint taken after k batches of epoch e gets batches k.. of that epoch,
    then whole epochs again."""
    sampler = EpochSampler(range(40), 4, seed=3)
    whole = [b.tolist() for b in sampler.batches(2)]
    sampler.set_epoch(2)
    sampler.skip_first(2, 3)
    assert sampler.first_position(2) == 3 and sampler.first_position(1) == 0
    assert [[i for _, i in keys] for keys in sampler] == whole[3:]
    assert [[i for _, i in keys] for keys in sampler] == whole  # only once
    assert [p for p, _ in sampler.numbered_batches(2)] == list(range(len(whole)))


def test_module_is_torch_free():
    code = "import sys, cassle.data.epochs; assert 'torch' not in sys.modules; print('ok')"
    root = os.path.dirname(os.path.dirname(cassle.__file__))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=root)
    assert out.stdout.strip() == "ok", out.stderr
