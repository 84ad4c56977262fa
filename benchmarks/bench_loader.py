"""Training triplets per second: prepared store (memory-mapped), LitData stream, decoding the source PNGs.

Same run, same sampling code (HR 96 crops with the original's random rescale, flips, MATLAB-bicubic
LR, labels prior), 2 workers, batch 16; the only difference is the reader. Source scenes are
512x512 (the size class of OST photos) so that decoding costs what it costs on real data. The stream
is read from a local folder (what a node's LitData cache holds once chunks are downloaded). A stream's
epoch is one pass over the scenes (12 batches here), and each epoch restarts the workers' pipeline: the
stream is compared with the memory-mapped store run with the same epochs, and the store is also shown
with one endless epoch (the figure of the earlier rows).

    .venv/bin/python benchmarks/bench_loader.py [--batches 60] [--size 512]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from results import Results

from sftgan_lit.data import SFTGANDataModule
from sftgan_lit.priors import LabelPrior


def forever(loader):
    """Batches across epochs (a stream's epoch ends; the memory-mapped store's is set very long here)."""
    while True:
        yield from loader


def triplets_per_second(dm: SFTGANDataModule, batches: int) -> float:
    dm.setup()
    it = forever(dm.train_dataloader())
    for _ in range(3):  # warm up: worker start, page cache, first memory maps
        next(it)
    t0 = time.perf_counter()
    n = 0
    for _ in range(batches):
        batch = next(it)
        n += batch["hr"].shape[0]
    return n / (time.perf_counter() - t0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=96)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--scenes", type=int, default=192)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        common = dict(
            train={"layout": "demo"},
            demo={"size": args.size, "num_train": args.scenes, "num_val": 1, "num_test": 1, "num_background": 8},
            cache_dir=tmp,
            store_root=str(Path(tmp) / "stores"),
            batch_size=16,
            crop_size=96,
            num_workers=args.workers,
            persistent_workers=True,
            epoch_length=10**6,
        )
        store_dm = SFTGANDataModule(LabelPrior(), use_store=True, **common)
        t0 = time.perf_counter()
        store_dm.prepare_data()
        prep = time.perf_counter() - t0
        files_dm = SFTGANDataModule(LabelPrior(), use_store=False, **common)
        rate_files = triplets_per_second(files_dm, args.batches)
        rate_store = triplets_per_second(store_dm, args.batches)
        passes = {**common, "epoch_length": None}  # one pass over the scenes per epoch, as a stream's
        rate_store_passes = triplets_per_second(SFTGANDataModule(LabelPrior(), **passes), args.batches)
        stream_dm = SFTGANDataModule(LabelPrior(), store_format="litdata", **passes)
        t0 = time.perf_counter()
        stream_dm.prepare_data()  # LitData chunks optimised from the stores above
        optimise = time.perf_counter() - t0
        rate_stream = triplets_per_second(stream_dm, args.batches)
        stores = Path(tmp) / "stores"
        mb = sum(p.stat().st_size for p in stores.rglob("*.bin") if not p.parent.name.endswith("-litdata")) / 1e6
        pixels = sum(e.height * e.width for e in store_dm.datasets["train"].reader.store.entries)
        train_store = stores / "train-labels"
        per_mp = {n: (train_store / f"{n}.bin").stat().st_size / pixels for n in ("images", "labels")}
    results = Results("loader")
    results.note(
        f"source: {args.scenes} demo scenes {args.size}x{args.size} + 8 background; demo generation + prepare "
        f"{prep:.1f} s; store {mb:.1f} MB; LitData stream optimised in {optimise:.1f} s"
    )
    results.note(
        f"bytes per pixel in the store: image {per_mp['images']:.2f}, labels {per_mp['labels']:.2f}, a cached "
        "8-class prior 8 (uint8, by construction), against 32 for the original's float32 .pth files"
    )
    rows = results.table(
        ["reader", "triplets/s", "ratio"], f"batch 16, HR 96, {args.workers} workers, {args.batches} batches timed"
    )
    rows += [
        ["decode the source PNGs each time", f"{rate_files:.0f}", "1.00x"],
        ["prepared store (memory-mapped), one endless epoch", f"{rate_store:.0f}", f"{rate_store / rate_files:.1f}x"],
        [
            "prepared store (memory-mapped), epochs of one pass",
            f"{rate_store_passes:.0f}",
            "1.00x (the stream's reference)",
        ],
        [
            "LitData stream from a local folder, epochs of one pass",
            f"{rate_stream:.0f}",
            f"{rate_stream / rate_store_passes:.2f}x the store",
        ],
    ]
    results.save()


if __name__ == "__main__":
    main()
