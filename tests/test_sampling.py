"""The training order and each sample's randomness (data/sampling.py): shards, epochs, resume, workers."""

from __future__ import annotations

import torch

from sftgan_lit.data.sampling import EpochSampler, ResumableLoader

from helpers import tiny_demo_datamodule


def test_shards_cover_each_epoch_once_and_epochs_differ():
    shards = [list(EpochSampler(10, seed=3, num_replicas=3, rank=r)) for r in range(3)]
    assert all(len(s) == 4 for s in shards)  # 10 padded to 12 by wrapping, as DistributedSampler
    indices = [i for s in shards for i, _ in s]
    assert set(indices) == set(range(10)) and len(indices) == 12
    draws = {d for s in shards for _, d in s}
    assert draws == {(3, 0, p) for p in range(12)}  # one draw per position of the epoch, across the ranks
    sampler = EpochSampler(10, seed=3)
    first, second = [i for i, _ in sampler], [i for i, _ in sampler]  # each iter is the next epoch
    assert sorted(first) == sorted(second) == list(range(10)) and first != second
    sampler.set_epoch(7)  # Lightning's count is ignored: the sampler counts its own epochs
    assert [d[1] for _, d in sampler][:1] == [2]


def test_a_resumed_sampler_continues_the_epoch_and_then_the_next():
    whole = EpochSampler(12, seed=1, num_replicas=2, rank=1)
    epochs = [list(whole), list(whole)]
    resumed = EpochSampler(12, seed=1, num_replicas=2, rank=1)
    resumed.resume(0, 4)
    assert list(resumed) == epochs[0][4:] and list(resumed) == epochs[1]


class _Keys(torch.utils.data.Dataset):
    def __len__(self):
        return 8

    def __getitem__(self, key):
        return torch.tensor([key[0], *key[1]])


def test_loader_state_is_the_batches_the_trainer_finished():
    done = [0]
    loader = ResumableLoader(_Keys(), EpochSampler(8, seed=0), lambda: done[0], batch_size=2, drop_last=True)
    batches = list(loader)
    done[0] = 3
    state = loader.state_dict()
    assert state == {"epoch": 0, "batches": 3, "seed": 0, "length": 8, "num_replicas": 1, "batch_size": 2}
    again = ResumableLoader(_Keys(), EpochSampler(8, seed=0), lambda: 0, batch_size=2, drop_last=True)
    again.load_state_dict(state)
    assert [b.tolist() for b in again] == [b.tolist() for b in batches[3:]]
    other = ResumableLoader(_Keys(), EpochSampler(8, seed=0), lambda: 0, batch_size=4, drop_last=True)
    other.load_state_dict(state)  # another batch size: the epoch starts again (with a warning)
    assert len(list(other)) == 2
    done[0] = 4  # the whole epoch was done: a resume starts the next one
    fresh = ResumableLoader(_Keys(), EpochSampler(8, seed=0), lambda: 0, batch_size=2, drop_last=True)
    fresh.load_state_dict(loader.state_dict())
    assert {int(b[0, 2]) for b in fresh} == {1}


def test_a_sample_does_not_depend_on_the_worker_that_makes_it(tmp_path):
    def batches(workers):
        dm = tiny_demo_datamodule(tmp_path / "s", num_workers=workers, batch_size=2, epoch_length=8)
        return list(dm.train_dataloader())

    alone, pooled = batches(0), batches(2)
    assert len(alone) == 4
    for a, b in zip(alone, pooled, strict=True):
        assert a["path"] == b["path"] and torch.equal(a["hr"], b["hr"]) and torch.equal(a["seed"], b["seed"])
