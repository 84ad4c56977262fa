"""Benchmark: sftgan_lit.imresize vs the original implementation's algorithm, one thread.

The reference is written here the way the original SR code (BasicSR / SFTGAN's util.imresize) runs:
symmetric padding by copying, then one Python iteration per output row (then column), each a weighted
sum of whole input rows (columns), with the weight tables recomputed on every call. Both run in the
same process on the same inputs; the printed ratios are what the README quotes.

    python benchmarks/bench_imresize.py [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import time

import torch
from results import Results

from sftgan_lit.imresize import imresize


def _reference_cubic(x: torch.Tensor) -> torch.Tensor:
    ax = x.abs()
    return (1.5 * ax**3 - 2.5 * ax**2 + 1) * (ax <= 1).float() + (-0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2) * (
        (ax > 1) & (ax <= 2)
    ).float()


def _reference_tables(in_len: int, out_len: int, scale: float) -> tuple[torch.Tensor, torch.Tensor, int, int]:
    """The original's weight/index tables (float32), recomputed on every call as the original does."""
    kernel_width = 4.0 / scale if scale < 1 else 4.0
    x = torch.linspace(1, out_len, out_len)
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = torch.floor(u - kernel_width / 2)
    taps = math.ceil(kernel_width) + 2
    indices = left.view(out_len, 1) + torch.linspace(0, taps - 1, taps).view(1, taps)
    distance = u.view(out_len, 1) - indices
    weights = scale * _reference_cubic(distance * scale) if scale < 1 else _reference_cubic(distance)
    weights = weights / weights.sum(1, keepdim=True)
    zeros = (weights == 0).sum(0)
    if zeros[0] != 0:
        indices, weights = indices[:, 1:], weights[:, 1:]
    if zeros[-1] != 0:
        indices, weights = indices[:, :-1], weights[:, :-1]
    sym_start = int(-indices.min() + 1)
    sym_end = int(indices.max() - in_len)
    return weights.contiguous(), (indices + sym_start - 1).long(), sym_start, sym_end


def _reference_resize_dim1(x: torch.Tensor, out_len: int, scale: float) -> torch.Tensor:
    """Resize dim 1 of (C, L, M): pad symmetrically by copying, then one iteration per output row."""
    in_len = x.shape[1]
    weights, indices, sym_start, sym_end = _reference_tables(in_len, out_len, scale)
    parts = [x[:, :sym_start].flip(1), x]
    if sym_end > 0:
        parts.append(x[:, in_len - sym_end :].flip(1))
    x_aug = torch.cat(parts, dim=1)
    taps = weights.shape[1]
    out = torch.empty(x.shape[0], out_len, x.shape[2], dtype=x.dtype)
    for i in range(out_len):
        start = int(indices[i, 0])
        out[:, i, :] = torch.einsum("clm,l->cm", x_aug[:, start : start + taps, :], weights[i])
    return out


def reference_imresize(img: torch.Tensor, scale: float) -> torch.Tensor:
    """(C, H, W) -> (C, ceil(H*scale), ceil(W*scale)) with the original's algorithm and loop structure."""
    _, in_h, in_w = img.shape
    out_h, out_w = math.ceil(in_h * scale), math.ceil(in_w * scale)
    rows = _reference_resize_dim1(img, out_h, scale)
    cols = _reference_resize_dim1(rows.transpose(1, 2), out_w, scale)
    return cols.transpose(1, 2).contiguous()


def time_it(fn, repeats: int) -> float:
    fn()  # warm-up (and fills imresize's per-shape cache)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    gen = torch.Generator().manual_seed(0)
    cases = [("training crop 96x96 -> 24x24", (3, 96, 96), 20), ("DIV2K-size 2040x1356 -> 510x339", (3, 1356, 2040), 1)]
    results = Results("imresize")
    rows = results.table(["case", "reference", "sftgan_lit", "speed-up", "max abs diff"], f"best of {args.repeats}")
    for name, shape, inner in cases:
        img = torch.rand(shape, generator=gen)
        ref_out = reference_imresize(img, 0.25)
        ours_out = imresize(img, 0.25)
        diff = (ref_out - ours_out).abs().max().item()

        def run_ref():
            for _ in range(inner):
                reference_imresize(img, 0.25)

        def run_ours():
            for _ in range(inner):
                imresize(img, 0.25)

        t_ref = time_it(run_ref, args.repeats) / inner
        t_ours = time_it(run_ours, args.repeats) / inner
        rows.append([name, f"{t_ref * 1e3:.3f} ms", f"{t_ours * 1e3:.3f} ms", f"{t_ref / t_ours:.1f}x", f"{diff:.1e}"])
    results.save()


if __name__ == "__main__":
    main()
