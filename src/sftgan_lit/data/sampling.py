"""Which training sample comes when, so that a run can stop anywhere and resume exactly.

Two facts make a training epoch reproducible from three numbers (seed, epoch, position):

- **The order.** ``EpochSampler`` draws each epoch's permutation from ``seed + epoch`` (as
  ``DistributedSampler`` does), cuts it into one strided shard per rank, and yields, for each position,
  the sample's index and its **draw**: ``(seed, epoch, position in the epoch)``. It shards by itself (it is
  a ``DistributedSampler``, so Lightning does not wrap it), counts its own epochs, and can start mid-epoch.
- **The randomness of a sample** (crop, rescale, flips, background mix) comes from a generator seeded by
  its draw (``TripletDataset``), never from a worker's RNG stream: a sample is the same whichever worker,
  rank or run makes it.

``ResumableLoader`` is a ``DataLoader`` whose ``state_dict`` records how far the epoch got (the batches the
trainer has finished, not the ones prefetched) and whose ``load_state_dict`` makes the sampler start there.
Lightning saves that state in every checkpoint and restores it on resume (its ``_Stateful`` loaders).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable

import torch
from torch.utils.data import DataLoader, DistributedSampler

log = logging.getLogger(__name__)

Draw = tuple[int, int, int]  # (seed, epoch, position in the epoch): seeds one sample's randomness


def epoch_order(length: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """Epoch ``epoch``'s order of the indices ``0 .. length - 1``: a permutation drawn from ``seed + epoch``
    (as ``DistributedSampler`` draws it), or the index order without ``shuffle``. Position ``p`` of it is
    the sample whose draw is ``(seed, epoch, p)``, whichever store or rank reads it."""
    if not shuffle:
        return list(range(length))
    return torch.randperm(length, generator=torch.Generator().manual_seed(seed + epoch)).tolist()


def epoch_positions(length: int, seed: int, epoch: int, shuffle: bool = True) -> list[int]:
    """The inverse of ``epoch_order``: index ``i``'s position in the epoch (what a streaming store, which reads
    in its own order, needs to give index ``i`` the draw the memory-mapped store gives it)."""
    positions = torch.empty(length, dtype=torch.int64)
    positions[torch.tensor(epoch_order(length, seed, epoch, shuffle), dtype=torch.int64)] = torch.arange(length)
    return positions.tolist()


class EpochSampler(DistributedSampler):
    """Yields ``(index, draw)`` for this rank's share of each epoch, from position ``start`` on.

    Args:
        length: samples per epoch (indices ``0 .. length - 1``).
        seed: the run's seed; epoch ``e``'s order is drawn from ``seed + e``.
        num_replicas, rank: the ranks of a distributed run (1, 0 alone). Shards are strided and padded by
            wrapping to equal lengths, as ``DistributedSampler``'s.
        shuffle: False keeps the index order (each draw still has its own seed).
    """

    def __init__(self, length: int, seed: int = 0, num_replicas: int = 1, rank: int = 0, shuffle: bool = True) -> None:
        super().__init__(range(length), num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=seed)
        self.length = length
        self.start = 0  # this rank's samples of the epoch already used (a resume)
        self._begun = False  # whether an epoch has been iterated since the start or the last resume

    def set_epoch(self, epoch: int) -> None:
        """Ignored: the sampler counts its own epochs (one per ``iter``). Lightning passes its epoch count, which
        after a resume from an epoch-end checkpoint is one ahead of the uninterrupted run's (Lightning 2.6: seen
        here; the cause of a DDP resume that was not exact)."""

    def resume(self, epoch: int, start: int) -> None:
        """The next ``iter`` yields epoch ``epoch`` from this rank's sample ``start`` on."""
        self.epoch, self.start, self._begun = epoch, start, False

    def order(self, epoch: int) -> list[int]:
        """The whole epoch's order, padded to ``total_size`` (every rank's share interleaved)."""
        order = epoch_order(self.length, self.seed, epoch, self.shuffle)
        pad = self.total_size - len(order)
        return order + (order * math.ceil(pad / max(len(order), 1)))[:pad]

    def __iter__(self):
        if self._begun:  # a new epoch
            self.epoch, self.start = self.epoch + 1, 0
        self._begun = True
        return self._draws(self.epoch, self.start)

    def _draws(self, epoch: int, start: int):
        order = self.order(epoch)
        for pos in range(start, self.num_samples):
            position = pos * self.num_replicas + self.rank
            yield order[position], (self.seed, epoch, position)

    def __len__(self) -> int:  # the whole share: the trainer counts a resumed epoch's batches from where it stopped
        return self.num_samples


class ResumableLoader(DataLoader):
    """A ``DataLoader`` over an ``EpochSampler`` that Lightning checkpoints (``state_dict``) and resumes.

    ``batches_done``: returns how many batches of the current epoch the trainer has finished (the
    datamodule reads it from the trainer's progress); prefetched batches are not counted.
    """

    def __init__(self, dataset, sampler: EpochSampler, batches_done: Callable[[], int], **kwargs) -> None:
        super().__init__(dataset, sampler=sampler, **kwargs)
        self.batches_done = batches_done

    def _facts(self) -> dict:
        s = self.sampler
        return {"seed": s.seed, "length": s.length, "num_replicas": s.num_replicas, "batch_size": self.batch_size}

    def state_dict(self) -> dict:
        return {"epoch": self.sampler.epoch, "batches": int(self.batches_done()), **self._facts()}

    def load_state_dict(self, state: dict) -> None:
        saved = {k: state.get(k) for k in self._facts()}
        if saved != self._facts():
            log.warning(
                "resuming with other data settings (%s, the checkpoint has %s): epoch %s starts again from its beginning",
                self._facts(),
                saved,
                state.get("epoch"),
            )
            return
        epoch, start = int(state["epoch"]), int(state["batches"]) * self.batch_size
        if start + self.batch_size > self.sampler.num_samples:  # the epoch was done (drop_last): the next one
            epoch, start = epoch + 1, 0
        self.sampler.resume(epoch, start)
        log.info("resuming at epoch %d, sample %d of this rank's %d", epoch, start, self.sampler.num_samples)
