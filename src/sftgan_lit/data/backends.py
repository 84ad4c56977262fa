"""Where prepared splits live and how training reads them: one class per ``data.store_format``, chosen once
by the datamodule, so nothing else asks which store it has.

- ``MmapBackend`` (``mmap``): each split's memory-mapped store (``store.py``); training samples through
  ``sampling.EpochSampler`` (per-rank shards drawn from seed + epoch) and a ``ResumableLoader``.
- ``StreamBackend`` (``litdata``): the stores as LitData chunks in a folder or object storage
  (``streaming.py``); a missing stream is made from its store; training streams, LitData shards ranks and
  workers and checkpoints its position.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Mapping
from pathlib import Path

from torch.utils.data import DataLoader

from ..choices import StoreFormat
from ..config import require
from .dataset import TripletDataset
from .readers import StoreReader
from .sampling import EpochSampler, ResumableLoader
from .store import Store, read_json


class MmapBackend:
    """The memory-mapped stores, read where they were prepared."""

    def __init__(self, verify: bool = True) -> None:
        self.verify = verify

    def location(self, store_dir: Path) -> str:
        return str(store_dir)

    def prepare(self, store_dir: Path, prepare_store: Callable[[], None]) -> None:
        """Make the split's store if it is missing (``prepare_store`` skips a complete one)."""
        prepare_store()

    def reader(self, store_dir: Path, num_classes: int) -> tuple[StoreReader, dict]:
        """The split's reader and the source files that failed when it was prepared."""
        reader = StoreReader(Store(store_dir, num_classes=num_classes, verify=self.verify))
        return reader, read_json(store_dir / "complete.json").get("failures", {})

    def train_loader(self, dataset: TripletDataset, seed: int, trainer, batches_done, **common) -> DataLoader:
        """The training loader: the epoch's order and each sample's randomness from (seed, epoch, position),
        and the batches finished recorded, so a run stopped anywhere resumes exactly (``sampling.py``)."""
        sampler = EpochSampler(
            len(dataset),
            seed=seed,
            num_replicas=trainer.world_size if trainer else 1,
            rank=trainer.global_rank if trainer else 0,
            shuffle=True,
        )
        return ResumableLoader(dataset, sampler, batches_done, drop_last=True, **common)


class StreamBackend:
    """LitData streams, one per split, at ``stream_root`` (a folder or URL) or beside each store.

    Args:
        stream_root: the folder or ``s3://`` URL holding the streams (None: ``<store>-litdata``).
        stream_cache: where LitData keeps chunks of a remote stream (None: its default, bounded).
        storage_options: object-storage options passed to LitData (credentials, ``endpoint_url``).
    """

    def __init__(
        self, stream_root: str | None = None, stream_cache: str | None = None, storage_options: Mapping | None = None
    ) -> None:
        self.stream_root, self.stream_cache = stream_root, stream_cache
        self.storage_options = dict(storage_options or {})

    def location(self, store_dir: Path) -> str:
        from .streaming import join

        return join(self.stream_root, store_dir.name) if self.stream_root else f"{store_dir}-litdata"

    def prepare(self, store_dir: Path, prepare_store: Callable[[], None]) -> None:
        """A finished stream is used as it is (a node needs no sources); else it is made from the store."""
        from .streaming import read_info, write_stream

        stream = self.location(store_dir)
        if read_info(stream, self.storage_options) is not None:
            return
        prepare_store()
        write_stream(store_dir, stream, storage_options=self.storage_options)

    def reader(self, store_dir: Path, num_classes: int):
        from .streaming import StreamReader

        reader = StreamReader(self.location(store_dir), num_classes, self.stream_cache, self.storage_options)
        return reader, reader.info["failures"]

    def train_loader(self, dataset: TripletDataset, seed: int, trainer, batches_done, **common) -> DataLoader:
        """LitData shards, orders and checkpoints the stream itself; its length is exact (every rank and
        worker gets whole batches)."""
        from .streaming import StreamingTriplets, StreamLoader

        # Lightning warns for any iterable dataset with a length
        warnings.filterwarnings("ignore", message="Your `IterableDataset` has `__len__` defined")
        return StreamLoader(StreamingTriplets(dataset, seed), drop_last=True, **common)


def make_backend(
    store_format: StoreFormat,
    use_store: bool,
    epoch_length: int | None,
    verify_store: bool,
    stream_root: str | None,
    stream_cache: str | None,
    storage_options: Mapping | None,
) -> MmapBackend | StreamBackend:
    """The backend of ``data.store_format``, with the options that format needs checked."""
    if store_format is StoreFormat.mmap:
        return MmapBackend(verify_store)
    from ..extras import require as require_extra

    require_extra("litdata", "data.store_format=litdata")
    require(
        use_store, "data.use_store", use_store, "true with data.store_format=litdata (streams are made from stores)"
    )
    # a stream's epoch is one pass over its entries, in LitData's order
    require(epoch_length is None, "data.epoch_length", epoch_length, "null with data.store_format=litdata")
    return StreamBackend(stream_root, stream_cache, storage_options)
