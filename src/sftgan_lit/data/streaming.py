"""The streaming store: a prepared store's entries as LitData chunks, read from a folder or object storage.

``write_stream`` (``sftgan-prepare format=litdata``, ``data.store_format=litdata``) optimises the entries of a
finished memory-mapped store (``store.py``, which did the per-image checks and the crash-safe resume) into
LitData chunks at a folder or an ``s3://`` / ``gs://`` URL; LitData uploads as it writes. Each item is one
entry, unchanged: ``{index, file, category, image, labels?, probs?}`` with the store's uint8 arrays.
``sftgan.json`` is written last, beside LitData's ``index.json``: the store's header, the entry count,
each entry's name and size, and the files that failed in ``sftgan-prepare``. A stream without it is
unfinished and is refused.

Readers:

- ``StreamingTriplets`` streams the training split. LitData assigns chunks to ranks and workers itself (no
  ``DistributedSampler``), shuffles chunks and items per epoch, reads ahead and keeps a bounded local
  cache of remote chunks. Item ``index`` becomes the sample the memory-mapped store gives that index in
  the same epoch: ``TripletDataset.make`` with the draw ``(seed, epoch, position)``, where the position is
  the index's place in ``sampling.epoch_order``. An epoch therefore holds the memory-mapped store's
  samples (crops, rescale, flips, priors, category, background mix), in LitData's order.
- ``StreamReader`` reads entries by index (validation and test splits, the background mix).

LitData's ``StreamingDataLoader`` (``StreamLoader``) carries the stream's position: Lightning saves its
``state_dict`` in every checkpoint and a resumed run replays the epoch from there (Lightning does not fetch
ahead of a loader with a length, so the saved position is the last trained batch). Every rank resumes
from rank 0's state, which holds for all: LitData gives each rank the same number of batches.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from litdata import StreamingDataLoader, StreamingDataset, optimize

from ..files import atomic_write_bytes
from .dataset import TripletDataset
from .readers import Sample
from .sampling import epoch_positions
from .store import Store, StoreError, check_labels, check_probs, read_json

log = logging.getLogger(__name__)

STREAM_INFO = "sftgan.json"  # written last: the stream is complete
STREAM_VERSION = 1


def is_url(location: str | os.PathLike) -> bool:
    """``s3://...``, ``gs://...`` and the like: object storage, reached through LitData."""
    return "://" in str(location)


def join(location: str | os.PathLike, name: str) -> str:
    """``location/name`` for a folder or a URL (``Path`` would fold a URL's ``//``)."""
    return str(Path(location) / name) if not is_url(location) else f"{str(location).rstrip('/')}/{name}"


def _fs(url: str, storage_options: Mapping | None):
    from litdata.streaming.fs_provider import _get_fs_provider

    return _get_fs_provider(url, dict(storage_options or {}))


def read_info(location: str | os.PathLike, storage_options: Mapping | None = None) -> dict | None:
    """A stream's ``sftgan.json``, or None when there is none (no stream there, or an unfinished one)."""
    path = join(location, STREAM_INFO)
    if not is_url(location):
        return read_json(Path(path)) if Path(path).exists() else None
    fs = _fs(path, storage_options)
    if not fs.exists(path):
        return None
    with tempfile.TemporaryDirectory() as tmp:
        fs.download_file(path, os.path.join(tmp, STREAM_INFO))
        return read_json(Path(tmp) / STREAM_INFO)


def _write_info(location: str, info: dict, storage_options: Mapping | None) -> None:
    data = json.dumps(info, indent=1).encode()
    if not is_url(location):
        atomic_write_bytes(Path(location) / STREAM_INFO, data)
        return
    with tempfile.TemporaryDirectory() as tmp:
        local = os.path.join(tmp, STREAM_INFO)
        Path(local).write_bytes(data)
        _fs(location, storage_options).upload_file(local, join(location, STREAM_INFO))


def _unfinish(location: str, storage_options: Mapping | None) -> None:
    """Remove the completion mark before anything is rewritten: a stream cut short is never taken as finished."""
    if not is_url(location):
        Path(location, STREAM_INFO).unlink(missing_ok=True)
        return
    fs = _fs(location, storage_options)
    if fs.exists(join(location, STREAM_INFO)):
        fs.delete_file_or_directory(join(location, STREAM_INFO))


def _check_destination(store: Store, out: str) -> None:
    """LitData's overwrite deletes every ``.bin`` in ``out``: only an empty folder or an earlier stream may be it."""
    if is_url(out):
        return
    folder = Path(out).resolve()
    if folder == store.root.resolve() or store.root.resolve() in folder.parents:
        raise StoreError(f"{out}: the stream cannot be written inside the store it is made from ({store.root})")
    if folder.is_dir() and any(folder.iterdir()):
        if (folder / "header.json").exists() or not (folder / "index.json").exists():
            raise StoreError(
                f"{out}: the folder exists and is not a streaming store; give an empty or new folder for out"
            )


@functools.lru_cache(maxsize=4)
def _open(root: str) -> Store:
    return Store(root)  # once per optimize worker, not once per item


def _item(root: str, i: int) -> dict:
    """Entry ``i`` of the store at ``root`` as a LitData item (in an ``optimize`` worker)."""
    store = _open(root)
    item = {"index": i, "file": store.entries[i].file, "category": store.entries[i].category}
    item["image"] = np.array(store.image(i))
    if store.has_labels:
        item["labels"] = np.array(store.labels(i))
    if store.has_probs:
        item["probs"] = np.array(store.probs(i))
    return item


def write_stream(
    store_root: str | os.PathLike,
    out: str,
    chunk_bytes: str | int = "64MB",
    workers: int = 1,
    storage_options: Mapping | None = None,
    progress: bool = False,
) -> dict:
    """Optimise the finished memory-mapped store at ``store_root`` into a stream at ``out`` (a folder or a URL);
    returns the stream's info (``sftgan.json``). An earlier stream at ``out`` is replaced."""
    store = Store(store_root)
    out = str(out)
    _check_destination(store, out)
    _unfinish(out, storage_options)
    start_method = multiprocessing.get_start_method()
    try:
        optimize(
            fn=functools.partial(_item, str(store.root)),
            inputs=list(range(len(store))),
            output_dir=out,
            chunk_bytes=chunk_bytes,
            num_workers=max(1, min(workers, len(store))),
            mode="overwrite",
            # every worker writes a contiguous slice in order: LitData's item i is the store's entry i
            keep_data_ordered=True,
            reorder_files=False,
            # optimize sets the process's start method; this keeps the one the process has
            start_method=start_method,
            storage_options=dict(storage_options or {}),
            verbose=progress,
        )
    finally:
        multiprocessing.set_start_method(start_method, force=True)
    info = {
        "format": "sftgan-stream",
        "version": STREAM_VERSION,
        "header": store.header,
        "entries": len(store),
        "files": [e.file for e in store.entries],
        "sizes": [[e.height, e.width] for e in store.entries],
        "has_labels": store.has_labels,
        "has_probs": store.has_probs,
        "failures": read_json(store.root / "complete.json").get("failures", {}),
    }
    _write_info(out, info, storage_options)
    log.info("%s: %d entries streamed from %s", out, len(store), store.root)
    return info


def entry_sample(item: dict, background: bool) -> Sample:
    """A LitData item as what a reader's ``load`` returns."""
    category = 0 if background else int(item["category"])
    return item["image"], item.get("labels"), item.get("probs"), category, item["file"]


class StreamReader:
    """Entries of a stream by index (a ``readers.Reader``): random access, chunks fetched as needed.

    Args:
        location: the stream's folder or URL.
        num_classes: the configured prior's class count (checked against the stream's).
        cache_dir: where LitData keeps downloaded chunks of a remote stream (None: LitData's default).
        storage_options: credentials and endpoint for object storage (passed to LitData).
    """

    def __init__(
        self,
        location: str,
        num_classes: int | None = None,
        cache_dir: str | None = None,
        storage_options: Mapping | None = None,
    ) -> None:
        self.location, self.cache_dir = str(location), cache_dir
        self.storage_options = dict(storage_options or {})
        info = read_info(self.location, self.storage_options)
        if info is None:
            raise StoreError(
                f"{self.location}: no finished streaming store here (no {STREAM_INFO}); "
                "run sftgan-prepare format=litdata to make one"
            )
        if info.get("version") != STREAM_VERSION:
            raise StoreError(
                f"{self.location}: stream format {info.get('version')}, this version reads {STREAM_VERSION}"
            )
        self.info, self.header = info, info["header"]
        self.num_classes = int(self.header["num_classes"])
        if num_classes is not None and num_classes != self.num_classes:
            raise StoreError(
                f"{self.location}: stream made for {self.num_classes} classes ({self.header.get('prior')}), "
                f"the configured prior has {num_classes}"
            )
        self.background = bool(self.header.get("background", False))
        self._dataset: StreamingDataset | None = None
        self._pid: int | None = None

    def __len__(self) -> int:
        return int(self.info["entries"])

    @property
    def has_labels(self) -> bool:
        return bool(self.info["has_labels"])

    def sizes(self) -> list[tuple[int, int]]:
        return [(h, w) for h, w in self.info["sizes"]]

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_dataset": None, "_pid": None}  # each worker opens the stream itself

    def _stream(self) -> StreamingDataset:
        if self._dataset is None or self._pid != os.getpid():
            for attempt in range(6):
                try:
                    self._dataset = StreamingDataset(
                        self.location, cache_dir=self.cache_dir, storage_options=self.storage_options
                    )
                    break
                except ValueError as err:
                    # Workers opening one remote stream share its cache folder: one may find the folder made
                    # and its index.json not yet downloaded by another (LitData writes it in place). It is
                    # there a moment later; any other error, or a sixth miss, is the stream's own.
                    if "index.json" not in str(err) or attempt == 5:
                        raise
                    time.sleep(0.1 * 2**attempt)
            self._pid = os.getpid()
        return self._dataset

    def load(self, i: int) -> Sample:
        item = self._stream()[i]
        if int(item["index"]) != i:  # the optimised order is the store's; anything else would mix entries up
            raise StoreError(f"{self.location}: item {i} holds entry {item['index']}; prepare the stream again")
        return entry_sample(item, self.background)

    def check(self, i: int, labels: np.ndarray | None, probs: np.ndarray | None) -> None:
        where = f"{self.location}: entry {i} ({self.info['files'][i]})"
        if probs is not None:
            check_probs(probs, where)
        if labels is not None:
            check_labels(labels, self.num_classes, where)


class StreamingTriplets(StreamingDataset):
    """Training samples streamed from ``triplets.reader`` (a ``StreamReader``); see the module docstring.

    Args:
        triplets: the training ``TripletDataset`` over the stream: it makes each sample.
        seed: the run's seed (LitData's shuffle and every sample's draw).
    """

    def __init__(self, triplets: TripletDataset, seed: int) -> None:
        reader = triplets.reader
        if not isinstance(reader, StreamReader) or triplets.epoch_length not in (None, len(reader)):
            raise ValueError("StreamingTriplets streams a TripletDataset over a StreamReader, one pass per epoch")
        super().__init__(
            reader.location,
            cache_dir=reader.cache_dir,
            storage_options=reader.storage_options,
            shuffle=True,
            seed=seed,
            drop_last=True,  # every rank and worker the same number of whole batches
        )
        self.triplets, self.draw_seed = triplets, seed
        self._positions: tuple[int, list[int]] | None = None  # (epoch, each index's position in it)

    def _position(self, epoch: int, index: int) -> int:
        if self._positions is None or self._positions[0] != epoch:
            self._positions = (epoch, epoch_positions(len(self.triplets.reader), self.draw_seed, epoch))
        return self._positions[1][index]

    def __next__(self) -> dict:
        item = super().__next__()
        index = int(item["index"])
        epoch = self.current_epoch - 1  # LitData counts epochs from 1, the samplers from 0
        draw = (self.draw_seed, epoch, self._position(epoch, index))
        return self.triplets.make(index, draw, loaded=entry_sample(item, self.triplets.reader.background))


class StreamLoader(StreamingDataLoader):
    """LitData's loader, refusing in one line a checkpoint taken on another stream (LitData would fail in a
    worker process, with a traceback): every node of a job, and every resume of it, streams one location."""

    def load_state_dict(self, state: dict) -> None:
        saved = state["dataset"].get("input_dir_url") or state["dataset"].get("input_dir_path")
        here = self.dataset.input_dir.url or self.dataset.input_dir.path
        if saved != here:
            raise StoreError(
                f"the checkpoint streamed {saved}, this run streams {here}: resume with the same stream "
                "(data.stream_root), on every node"
            )
        super().load_state_dict(state)

    def __iter__(self):
        if self.restore and self._num_samples_yielded_streaming >= len(self.dataset):
            # The resumed epoch was handed out whole. Lightning stops at the loader's length without exhausting
            # the iterator, which LitData takes for a resume still to do: it would replay the saved position
            # at the start of every later epoch.
            self.restore = False
        return super().__iter__()
