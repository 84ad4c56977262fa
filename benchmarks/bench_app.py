"""Benchmark: the prior painter's latencies on this CPU (sftgan-app's handlers, without the browser).

- time to first result for an uploaded LR image (read, segmenter prior, whole SR, the two download PNGs);
- edit latency for a brush stroke covering ``--stroke`` x ``--stroke`` LR pixels: incremental (the kept
  activations, only what the stroke reaches) vs a full recompute of the generator on the same edit, in
  one run; and the whole handler (the stroke's layer read, the run, the two PNGs written).

Rows: the released sizes (SFT-Net 64 features / 16 blocks, OutdoorSceneSeg ResNet-101; random weights:
speed does not depend on values) and the demo recipe's SFT-Net (32 features / 4 blocks) with the same
segmenter. Strokes alternate between two classes so that each one changes the prior.

    python benchmarks/bench_app.py [--lr-size 256] [--stroke 64] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from results import Results
from timing import best

from sftgan_lit.app.session import AppModels
from sftgan_lit.app.ui import PainterApp
from sftgan_lit.categories import OUTDOOR_COLORS
from sftgan_lit.data.io import write_png
from sftgan_lit.inference.engines import choose
from sftgan_lit.inference.runtime import segmenter_engine
from sftgan_lit.models import OutdoorSceneSeg, SFTGenerator, sftgan_pytorch
from sftgan_lit.priors import SegmenterPrior, SegmentOptions


def stroke_layer(size: tuple[int, int], y0: int, x0: int, side: int, color) -> np.ndarray:
    layer = np.zeros((*size, 4), np.uint8)
    layer[y0 : y0 + side, x0 : x0 + side, :3] = color
    layer[y0 : y0 + side, x0 : x0 + side, 3] = 255
    return layer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr-size", type=int, default=256)
    parser.add_argument("--stroke", type=int, default=64, help="side of the brush stroke in LR pixels")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    torch.manual_seed(0)
    n, k = args.lr_size, args.stroke
    tmp = Path(tempfile.mkdtemp())
    rng = np.random.default_rng(0)
    upload = tmp / "upload.png"
    write_png(upload, rng.integers(0, 256, (n, n, 3), dtype=np.uint8))
    torch.save(OutdoorSceneSeg().state_dict(), tmp / "segmenter.pth")
    choice = choose("auto", "auto", torch.device("cpu"))  # the app's default for the segmenter
    segment = SegmentOptions(precision=choice.precision, engine=segmenter_engine(choice))
    results = Results("app")
    rows = results.table(
        [
            "generator",
            "first result (s)",
            "of it: prior (s)",
            "edit, incremental (s)",
            "edit, full recompute (s)",
            "incremental speed-up",
            "edit through the handler (s)",
        ],
        f"LR {n}x{n} -> SR {4 * n}x{4 * n}, a {k}x{k}-LR-pixel stroke; segmenter on {choice.engine} "
        f"{choice.precision} (sftgan-app's default), generator torch fp32",
    )
    demo = dict(num_features=32, num_blocks=4, cond_channels=16, cond_hidden_channels=32, sft_hidden_channels=16)
    for name, generator in (
        ("released size (64 x 16 blocks)", sftgan_pytorch()),
        ("demo size (32 x 4)", SFTGenerator(**demo)),
    ):
        generator = generator.eval().to(memory_format=torch.channels_last)
        segmenter = SegmenterPrior("segmenter", str(tmp / "segmenter.pth"), mode="online")
        models = AppModels(generator, None, segmenter, max_lr_pixels=n * n, segment=segment)
        app = PainterApp(models, max_sessions=2)
        app.upload(str(upload), "LR (super-resolve as is)", None)  # one-time: the engine's graph, allocations
        t0 = time.perf_counter()
        out = app.upload(str(upload), "LR (super-resolve as is)", None)
        first = time.perf_counter() - t0
        key = out[0]
        session, _ = app.store.get(key)
        t0 = time.perf_counter()
        session.set_source("segmenter")  # the prior alone, again
        prior_s = time.perf_counter() - t0
        y0 = x0 = 4 * (n // 2 - k // 2)
        layers = [stroke_layer(session.hr_size, y0, x0, 4 * k, OUTDOOR_COLORS[c]) for c in (5, 6)]
        turn = [0]

        def incremental():
            turn[0] ^= 1
            session.set_paint_layer(layers[turn[0]])
            session.run()

        def full():
            turn[0] ^= 1
            session.set_paint_layer(layers[turn[0]])
            result = session._results[session.strength]
            result.full_pass(session.prior())

        def handler():
            turn[0] ^= 1
            app.run(key, {"background": None, "layers": [layers[turn[0]]], "composite": None}, None, 1.0)

        inc_s, full_s = best(incremental, args.repeats), best(full, args.repeats)
        session.set_paint_layer(None)
        session.run()
        handler_s = best(handler, args.repeats)
        rows.append(
            [
                name,
                f"{first:.2f}",
                f"{prior_s:.2f}",
                f"{inc_s:.2f}",
                f"{full_s:.2f}",
                f"{full_s / inc_s:.2f}x",
                f"{handler_s:.2f}",
            ]
        )
    results.save()


if __name__ == "__main__":
    main()
