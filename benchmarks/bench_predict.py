"""Benchmark: predict-time memory and speed, tiled vs whole image.

Each case runs in its own process, so peak RSS is that case's alone: the full-size SFT-Net
(16 blocks, 64 features) super-resolving a 1000x750 LR photo (4000x3000 output) in one pass and in
tiles of 256 LR px with overlap = the receptive field radius, and a 2000x1500 LR photo (8000x6000) in
tiles. The prior is a label map (uint8, cut per window), as with ``prior=labels``. The whole-image
pass holds its uint8 output and writes it as PNG; the tiled passes write the PNG band by band as
``predict.py`` does (``super_resolve_bands`` + ``PngStripWriter``), never holding the output whole.
Checks printed:
  - tiled peak RSS < 2.5 GiB, and equal within 10% for both sizes (memory bounded by the tile);
  - tiled time <= (T + 2r)^2 / T^2 x whole time + 10% (only the recomputed overlap costs extra);
  - tiled output == whole output (uint8, max difference).

(Where end-to-end time goes, per engine and precision, is ``bench_engines.py``.)

    python benchmarks/bench_predict.py [--small]   (--small: 1/4 of the sizes, a smoke run)

Full run on 2 CPU cores: about 8 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

GIB = 1024**3


def _photo(h: int, w: int, seed: int = 0):
    """An LR 'photo' (1, 3, h, w) in [0, 1]: a real image (skimage astronaut) tiled with mirrored copies, plus
    a matching label map at 4x (four horizontal class bands), so content and prior are not constant."""
    import numpy as np
    import torch
    from skimage import data

    base = data.astronaut()[::2, ::2]  # 256x256
    reps = (-(-h // base.shape[0]), -(-w // base.shape[1]))
    tiled = np.concatenate(
        [np.concatenate([base[:, :: (-1) ** j] for j in range(reps[1])], 1)[:: (-1) ** i] for i in range(reps[0])], 0
    )
    lr = torch.from_numpy(np.ascontiguousarray(tiled[:h, :w])).permute(2, 0, 1)[None].float() / 255
    labels = (np.arange(4 * h)[:, None] * 4 // (4 * h)).astype(np.uint8).repeat(4 * w, 1) + 1
    return lr, labels


def run_case(lr_h: int, lr_w: int, tile: int | None, threads: int) -> dict:
    """One predict pass (child process): seconds, peak RSS and a checksum of the output."""
    import numpy as np
    import torch

    from sftgan_lit.data.io import PngStripWriter, read_image, write_png
    from sftgan_lit.inference import receptive_field, super_resolve
    from sftgan_lit.inference.tiling import super_resolve_bands
    from sftgan_lit.models import sftgan_pytorch
    from sftgan_lit.priors import LabelPrior

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    g = sftgan_pytorch().eval()
    lr, labels = _photo(lr_h, lr_w)
    prior = LabelPrior(class_names=[f"c{i}" for i in range(8)], colors=[[0, 0, 0]] * 8).map_of(labels, 4)
    r = receptive_field(g)
    base_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    path = f"/tmp/bench_predict_{lr_h}x{lr_w}_{tile}.png"
    t0 = time.perf_counter()
    if tile is None:
        write_png(path, super_resolve(g, lr, prior, tile=None, overlap=r, batch_size=1))
    else:
        with PngStripWriter(path, 4 * lr_w, 4 * lr_h, 3) as out:
            for band, _ in super_resolve_bands(g, lr, prior, tile, overlap=r, batch_size=1):
                out.write(band)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    shape = [4 * lr_h, 4 * lr_w, 3]
    if os.environ.get("BENCH_OUT"):  # every 4th pixel, for the tiled == whole comparison (read after the peak)
        np.save(os.environ["BENCH_OUT"], read_image(path, max_pixels=10**9)[::4, ::4])
    os.unlink(path)
    return {"seconds": seconds, "peak_rss": peak, "rss_before": base_rss, "radius": r, "shape": shape}


def _child(args: list[str], out: str | None = None) -> dict:
    env = {**os.environ, **({"BENCH_OUT": out} if out else {})}
    proc = subprocess.run([sys.executable, __file__, "--case", *args], capture_output=True, text=True, env=env)
    if proc.returncode:
        raise RuntimeError(f"case {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def part1(small: bool, threads: int) -> None:
    import numpy as np
    from results import Results

    k = 4 if small else 1
    tile = 256 // k
    (h1, w1), (h2, w2) = (750 // k, 1000 // k), (1500 // k, 2000 // k)
    whole = _child([str(h1), str(w1), "none", str(threads)], "/tmp/bench_whole.npy")
    tiled = _child([str(h1), str(w1), str(tile), str(threads)], "/tmp/bench_tiled.npy")
    big = _child([str(h2), str(w2), str(tile), str(threads)])
    r = whole["radius"]
    same = np.abs(np.load("/tmp/bench_whole.npy").astype(int) - np.load("/tmp/bench_tiled.npy").astype(int)).max()
    results = Results("predict")
    rows = results.table(["LR input -> output", "mode", "time", "peak RSS", "RSS after model + inputs"])
    for name, c, (h, w) in [("whole image", whole, (h1, w1)), ("tiled", tiled, (h1, w1)), ("tiled", big, (h2, w2))]:
        mode = name if name == "whole image" else f"tiles of {tile} LR px, overlap {r} (the receptive field)"
        rows.append(
            [
                f"{w}x{h} -> {4 * w}x{4 * h}",
                mode,
                f"{c['seconds']:.1f} s",
                f"{c['peak_rss'] / GIB:.2f} GiB",
                f"{c['rss_before'] / GIB:.2f} GiB",
            ]
        )
    bound = (tile + 2 * r) ** 2 / tile**2
    ratio = tiled["seconds"] / whole["seconds"]
    mem_ratio = big["peak_rss"] / tiled["peak_rss"]
    results.note(
        f"tiled / whole time = {ratio:.2f}; the recomputed overlap alone would allow (T + 2r)^2 / T^2 = {bound:.2f} "
        f"(target <= {bound * 1.1:.2f}: {'met' if ratio <= bound * 1.1 else 'missed'})"
    )
    results.note(
        f"tiled peak RSS for a 4x larger image: {mem_ratio:.3f} of the smaller one's (target within 10%: "
        f"{'met' if abs(mem_ratio - 1) <= 0.1 else 'missed'}; under 2.5 GiB: "
        f"{'met' if max(tiled['peak_rss'], big['peak_rss']) < 2.5 * GIB else 'missed'})"
    )
    results.note(f"tiled against whole-image output: max abs difference {same} (uint8, every 4th pixel)")
    results.save(suffix="-small" if small else "")


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--case":
        h, w, tile, threads = sys.argv[2:6]
        print(json.dumps(run_case(int(h), int(w), None if tile == "none" else int(tile), int(threads))))
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="1/4 of the sizes (a quick smoke run)")
    parser.add_argument("--threads", type=int, default=os.cpu_count())
    args = parser.parse_args()
    part1(args.small, args.threads)


if __name__ == "__main__":
    main()
