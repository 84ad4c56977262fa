"""The LitData streaming store (data/streaming.py): the memory-mapped store's samples, sharded by LitData,
made by ``sftgan-prepare format=litdata``, refused when unfinished or mismatched."""

from __future__ import annotations

import itertools
import json
import logging
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from sftgan_lit.cli import configuration_error
from sftgan_lit.config import ConfigError
from sftgan_lit.data import SFTGANDataModule, Store, StoreError
from sftgan_lit.data.prepare import prepare_from_config
from sftgan_lit.data.sampling import EpochSampler, epoch_order, epoch_positions
from sftgan_lit.data.streaming import STREAM_INFO, StreamingTriplets, StreamReader, write_stream
from sftgan_lit.priors import LabelPrior

from helpers import compose, tiny_demo_datamodule, write_folder

# the original recipe's augmentation and a heavy background mix: every random choice of a sample is exercised
AUGMENTED = {"bg_ratio": 0.5, "scales": [1.0, 0.75], "hflip": True, "rotate": True, "epoch_length": None}
KEYS = ("hr", "lr", "prior", "labels", "category", "seed")


def _streamed(store_root, **kwargs):
    args = {**AUGMENTED, "store_format": "litdata", "batch_size": 1, "num_workers": 2, **kwargs}
    return tiny_demo_datamodule(store_root, **args)


def _epochs_by_seed(loader, epochs):
    """Each epoch's samples, keyed by their seed (one per draw)."""
    return [{int(b["seed"][0]): b for b in loader} for _ in range(epochs)]


def test_the_stream_gives_the_memory_mapped_stores_samples_for_the_same_seed(tmp_path, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "5")
    mmap = tiny_demo_datamodule(tmp_path, **AUGMENTED).datasets["train"]
    streamed = _streamed(tmp_path)  # the same stores, optimised into LitData chunks beside them
    assert (tmp_path / "train-labels-litdata" / STREAM_INFO).exists()
    assert (tmp_path / "background-labels-litdata" / STREAM_INFO).exists()
    got = _epochs_by_seed(streamed.train_dataloader(), 2)  # two workers, LitData's shuffle
    sampler = EpochSampler(len(mmap), seed=5)
    backgrounds = 0
    for epoch in got:
        expected = [mmap[key] for key in sampler]  # the memory-mapped store's epoch, in its order
        assert sorted(epoch) == sorted(int(s["seed"]) for s in expected)  # the same draws, each once
        for sample in expected:
            batch = epoch[int(sample["seed"])]
            for key in KEYS:
                torch.testing.assert_close(batch[key][0], sample[key], rtol=0, atol=0, msg=key)
            assert batch["path"] == [sample["path"]]
            backgrounds += bool((sample["labels"] == 0).all())
    assert 0 < backgrounds < 8  # the background mix drew from the background stream, and not only
    assert sorted(got[0]) != sorted(got[1])  # a new epoch draws new crops


def test_litdata_shards_the_stream_over_ranks_and_workers_without_overlap(tmp_path, monkeypatch):
    dm = _streamed(tmp_path, bg_ratio=0.0)
    shares = []
    for rank in range(2):  # what LitData reads from torch.distributed in a real job
        monkeypatch.setenv("WORLD_SIZE", "2")
        monkeypatch.setenv("GLOBAL_RANK", str(rank))
        shares.append(_epochs_by_seed(dm.train_dataloader(), 1)[0])
    assert len(shares[0]) == len(shares[1]) == 2  # 4 scenes: 2 each
    assert not set(shares[0]) & set(shares[1])
    mmap = tiny_demo_datamodule(tmp_path, **{**AUGMENTED, "bg_ratio": 0.0}).datasets["train"]
    whole = {int(mmap[key]["seed"]) for key in EpochSampler(len(mmap))}
    assert set(shares[0]) | set(shares[1]) == whole


def test_a_resumed_epoch_taken_to_its_length_is_not_replayed_in_the_next(tmp_path):
    """Lightning takes ``len(loader)`` batches and never exhausts the iterator; LitData alone then replays the
    saved position at the start of every later epoch (seen in a 2 x 2 job resumed mid-epoch)."""
    dm = _streamed(tmp_path, bg_ratio=0.0)  # 4 scenes, batch 1: 4 batches per epoch

    def seeds(batches):
        return [int(b["seed"][0]) for b in batches]

    loader = dm.train_dataloader()
    epochs = [seeds(loader) for _ in range(3)]
    stopped = dm.train_dataloader()
    seeds(stopped)
    seeds(itertools.islice(stopped, 1))  # one batch into the second epoch, then a checkpoint
    state = stopped.state_dict()
    resumed = dm.train_dataloader()
    resumed.load_state_dict(state)
    assert seeds(itertools.islice(resumed, len(resumed) - 1)) == epochs[1][1:]  # as Lightning takes it
    assert seeds(resumed) == epochs[2]
    moved = {**state, "dataset": {**state["dataset"], "input_dir_path": "/elsewhere/train-labels-litdata"}}
    with pytest.raises(StoreError, match="the checkpoint streamed /elsewhere/train-labels-litdata, this run streams"):
        dm.train_dataloader().load_state_dict(moved)


def test_a_job_streams_without_the_source_images(tmp_path, caplog):
    """What a cluster node has: the streams (here a folder standing for s3://), not the sources; validation held
    out of the training images (data.val unset) included."""
    images, labels = write_folder(tmp_path / "src", 4, 64, 64)
    args = {
        "train": {"layout": "folder", "images": str(images), "labels": str(labels)},
        "store_root": str(tmp_path / "staging"),
        "stream_root": str(tmp_path / "streams"),
        "store_format": "litdata",
        "epoch_length": None,
        "val_holdout": 1,
        "crop_size": 32,
        "batch_size": 1,
        "num_workers": 0,
    }
    SFTGANDataModule(LabelPrior(), **args).prepare_data()
    assert {p.name for p in (tmp_path / "streams").iterdir()} == {"train-holdout1-labels", "val-holdout1-labels"}
    shutil.rmtree(tmp_path / "src")
    shutil.rmtree(tmp_path / "staging")
    node = SFTGANDataModule(LabelPrior(), **args)
    node.prepare_data()  # finds the streams: nothing to prepare
    with caplog.at_level(logging.INFO):
        node.setup()
    assert "validating on 1 of the 4 images of data.train, held out of training" in caplog.text
    assert len(list(node.train_dataloader())) == 3 and len(list(node.val_dataloader())) == 1


@pytest.fixture
def s3(monkeypatch):
    """An S3 API on localhost (moto's server) with a bucket, reached the way a job reaches AWS: ``s3://`` URLs and
    the standard AWS variables. LitData moves chunks with obstore where it can; obstore refuses the
    emulator's plain http, so its boto3 path runs here (the same requests; workers fork with it set)."""
    import boto3
    import litdata.streaming.downloader
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": f"http://{host}:{port}",
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(litdata.streaming.downloader, "_OBSTORE_AVAILABLE", False)
    boto3.client("s3").create_bucket(Bucket="bucket")
    yield boto3.client("s3")
    server.stop()


def test_a_stream_in_object_storage_gives_the_same_samples(tmp_path, s3, monkeypatch):
    monkeypatch.setenv("PL_GLOBAL_SEED", "2")
    mmap = tiny_demo_datamodule(tmp_path, **AUGMENTED).datasets["train"]
    streamed = _streamed(tmp_path, stream_root="s3://bucket/stores", stream_cache=str(tmp_path / "chunks"))
    keys = {o["Key"] for o in s3.list_objects_v2(Bucket="bucket")["Contents"]}
    assert {"stores/train-labels/sftgan.json", "stores/train-labels/index.json"} <= keys
    assert not (tmp_path / "train-labels-litdata").exists()  # nothing streamed to the local folder
    epoch = _epochs_by_seed(streamed.train_dataloader(), 1)[0]
    expected = [mmap[key] for key in EpochSampler(len(mmap), seed=2)]
    assert sorted(epoch) == sorted(int(s["seed"]) for s in expected)
    for sample in expected:
        for key in KEYS:
            torch.testing.assert_close(epoch[int(sample["seed"])][key][0], sample[key], rtol=0, atol=0, msg=key)
    # sftgan-prepare format=litdata into the bucket, from a local staging store
    images, labels = write_folder(tmp_path / "src", 2, 64, 64)
    args = [f"input.images={images}", f"input.labels={labels}", "min_size=32", "progress=false", "format=litdata"]
    out = ["out=s3://bucket/stores/mine", f"staging={tmp_path / 'mine'}"]
    assert prepare_from_config(compose([*args, *out], config_name="prepare")) == 0
    reader = StreamReader("s3://bucket/stores/mine", cache_dir=str(tmp_path / "chunks"))
    assert len(reader) == 2 and np.array_equal(reader.load(1)[0], Store(tmp_path / "mine").image(1))


def test_positions_invert_the_epoch_order():
    order = epoch_order(50, seed=3, epoch=2)
    positions = epoch_positions(50, seed=3, epoch=2)
    assert sorted(order) == list(range(50)) and [positions[i] for i in order] == list(range(50))
    assert order == EpochSampler(50, seed=3).order(2)


def test_a_stream_is_refused_when_unfinished_or_made_for_another_prior(tmp_path):
    dm = tiny_demo_datamodule(tmp_path)
    store = dm.datasets["train"].reader.store
    stream = tmp_path / "stream"
    write_stream(store.root, str(stream))
    reader = StreamReader(str(stream), num_classes=8)
    for i in range(len(store)):
        image, labels, probs, category, name = reader.load(i)
        assert np.array_equal(image, store.image(i)) and np.array_equal(labels, store.labels(i))
        assert name == store.entries[i].file and reader.sizes()[i] == (store.entries[i].height, store.entries[i].width)
    with pytest.raises(StoreError, match="stream made for 8 classes"):
        StreamReader(str(stream), num_classes=3)
    bad = np.array(store.labels(0))
    bad[0, 0] = 9
    with pytest.raises(StoreError, match=r"entry 0 \(.*\) has corrupted labels"):
        reader.check(0, bad, None)
    (stream / STREAM_INFO).unlink()  # as a write cut short leaves it
    with pytest.raises(StoreError, match="no finished streaming store"):
        StreamReader(str(stream))
    with pytest.raises(StoreError, match="not a streaming store"):
        write_stream(store.root, str(dm.demo_root()))  # the demo's source images
    with pytest.raises(StoreError, match="inside the store it is made from"):
        write_stream(store.root, str(store.root / "stream"))


def test_streaming_options_that_cannot_work_are_configuration_errors(tmp_path):
    with pytest.raises(ConfigError, match=r"data.store_format='parquet' is not one of mmap, litdata"):
        tiny_demo_datamodule(tmp_path, store_format="parquet")
    with pytest.raises(ConfigError, match=r"data.epoch_length=16: must be null with data.store_format=litdata"):
        tiny_demo_datamodule(tmp_path, store_format="litdata", epoch_length=16)
    with pytest.raises(ConfigError, match=r"data.use_store=False: must be true"):
        tiny_demo_datamodule(tmp_path, store_format="litdata", use_store=False, epoch_length=None)


def test_prepare_format_litdata_writes_a_stream_from_a_staging_store(tmp_path):
    images, labels = write_folder(tmp_path / "src", 3, 64, 64)
    out = tmp_path / "stream"
    args = [f"input.images={images}", f"input.labels={labels}", f"out={out}", "min_size=32", "progress=false"]
    cmd = [sys.executable, "-c", "from sftgan_lit.cli import prepare_main; prepare_main()", *args, "format=litdata"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=tmp_path, timeout=180)
    assert run.returncode == 0, run.stderr
    assert f"{out}: LitData stream of 3 entries, made from {out}-mmap" in run.stdout
    staging = Store(f"{out}-mmap")
    info = json.loads((out / STREAM_INFO).read_text())
    assert info["entries"] == 3 and info["files"] == [e.file for e in staging.entries]
    reader = StreamReader(str(out))
    assert all(np.array_equal(reader.load(i)[0], staging.image(i)) for i in range(3))
    # a URL needs a local staging folder; a folder that is something else is not overwritten
    for bad, message in (
        (["out=s3://bucket/train"], "staging=None: must be a local folder when out is a URL"),
        ([f"out={images}"], f"{images}: the folder exists and is not a streaming store"),
        (["workers=0"], "workers=0: must be an integer >= 1"),
        (["format=zarr"], "format='zarr' is not one of mmap, litdata"),
    ):
        cfg = compose([*args, "format=litdata", *bad], config_name="prepare")
        with pytest.raises(ValueError) as err:
            prepare_from_config(cfg)
        assert configuration_error(err.value) is not None and message in configuration_error(err.value)
    assert len(list(images.iterdir())) == 3  # untouched
    # without keep_staging the staging store goes once the stream is written
    cfg = compose([*args, "format=litdata", f"out={tmp_path / 'lean'}", "keep_staging=false"], config_name="prepare")
    assert prepare_from_config(cfg) == 0
    assert (tmp_path / "lean" / STREAM_INFO).exists() and not (tmp_path / "lean-mmap").exists()


def test_streaming_triplets_refuse_a_map_style_reader(tmp_path):
    dm = tiny_demo_datamodule(tmp_path, epoch_length=None)
    with pytest.raises(ValueError, match="over a StreamReader"):
        StreamingTriplets(dm.datasets["train"], seed=0)


def test_a_worker_that_finds_the_shared_cache_before_its_index_waits_for_it(tmp_path, monkeypatch):
    """Workers opening one remote stream share its cache folder; one found the folder made and its index.json
    not yet downloaded by another, and the epoch failed in CI. It waits for the index now; other errors stand."""
    import sftgan_lit.data.streaming as streaming

    dm = tiny_demo_datamodule(tmp_path)
    stream = tmp_path / "s"
    write_stream(dm._store_dir("train"), str(stream))
    reader = StreamReader(str(stream), num_classes=8)
    real, calls = streaming.StreamingDataset, []

    def racing(*args, **kwargs):
        calls.append(args)
        if len(calls) < 3:
            raise ValueError(f"The provided dataset `{stream}/x` doesn't contain any index.json file.")
        return real(*args, **kwargs)

    monkeypatch.setattr(streaming, "StreamingDataset", racing)
    monkeypatch.setattr(streaming.time, "sleep", lambda s: None)
    assert reader.load(0)[0].ndim == 3 and len(calls) == 3
    monkeypatch.setattr(streaming, "StreamingDataset", lambda *a, **k: (_ for _ in ()).throw(ValueError("other")))
    reader._dataset = None
    with pytest.raises(ValueError, match="other"):
        reader.load(0)
