"""The training-pair pool of Real-ESRGAN (``_dequeue_and_enqueue``): degraded batches go into a pool of
``size`` samples, and once it is full each batch is swapped for ``batch_size`` samples drawn from it, so that a
batch mixes samples degraded in different batches.

The pool holds every per-sample entry of the batch (HR, LR, the sharpened target, labels, prior when the
workers made it, category, path), on the batch's device. Its shuffle is drawn from the incoming batch's own
seed, so a resumed run swaps the same samples; its content is part of the datamodule's state, which Lightning
keeps in every checkpoint.
"""

from __future__ import annotations

import torch


class TrainingPairPool:
    """Args: ``size``: samples held (0: no pool; a multiple of the batch size, as Real-ESRGAN requires: the
    datamodule rounds ``data.degradation.pool_size`` down to one)."""

    def __init__(self, size: int) -> None:
        self.size = int(size)
        self.entries: dict[str, torch.Tensor | list] | None = None
        self.filled = 0

    def __call__(self, batch: dict, seed: int) -> dict:
        """Enqueue ``batch``; once the pool is full, return a batch of pooled samples in its place."""
        if self.size <= 0:
            return batch
        n = len(batch["path"])
        if self.size % n:  # the datamodule sizes the pool in whole batches
            raise ValueError(f"a training-pair pool of {self.size} samples cannot take batches of {n}")
        keys = sorted(k for k, v in batch.items() if torch.is_tensor(v) or isinstance(v, list))
        if self.entries is None or set(self.entries) != set(keys):
            self.entries, self.filled = {k: _empty(batch[k], self.size) for k in keys}, 0
        # a pool restored from a checkpoint comes back on the host: it follows the batches to their device
        self.entries = {k: v.to(batch[k].device) if torch.is_tensor(v) else v for k, v in self.entries.items()}
        if self.filled < self.size:  # filling: the batch goes on as it came
            for k in keys:
                _put(self.entries[k], slice(self.filled, self.filled + n), batch[k])
            self.filled += n
            return batch
        order = torch.randperm(self.size, generator=torch.Generator().manual_seed(seed))
        out = dict(batch)
        for k in keys:
            pooled = _take(self.entries[k], order)
            out[k] = _take(pooled, torch.arange(n))
            rest = _take(pooled, torch.arange(n, self.size))
            # the incoming batch takes the places of the samples handed out
            self.entries[k] = _cat(_clone(batch[k]), rest)
        return out

    def state_dict(self) -> dict:
        if not self.entries:
            return {}
        return {
            "filled": self.filled,
            "entries": {k: v if torch.is_tensor(v) else list(v) for k, v in self.entries.items()},
        }

    def load_state_dict(self, state: dict) -> None:
        if not state:
            self.entries, self.filled = None, 0
            return
        self.entries, self.filled = dict(state["entries"]), int(state["filled"])


def _empty(value, size: int):
    if torch.is_tensor(value):
        return torch.zeros((size, *value.shape[1:]), dtype=value.dtype, device=value.device)
    return [None] * size


def _put(store, where: slice, value) -> None:
    if torch.is_tensor(store):
        store[where] = value.detach()
    else:
        store[where] = list(value)


def _take(store, index: torch.Tensor):
    if torch.is_tensor(store):
        return store[index.to(store.device)]
    return [store[int(i)] for i in index]


def _cat(a, b):
    return torch.cat([a, b]) if torch.is_tensor(a) else list(a) + list(b)


def _clone(value):
    return value.detach().clone() if torch.is_tensor(value) else list(value)
