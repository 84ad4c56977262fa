"""Benchmark: inference engines x precisions for the prior (segmenter) and the SR (generator), with quality.

Speed, per output megapixel on this CPU, segmenter and generator separately and end to end, for each
engine x precision available (torch fp32 channels_last is the reference in the same run): the
released architecture sizes (OutdoorSceneSeg ResNet-101, SFT-Net 64 features / 16 blocks) with random
weights, LR ``--lr-size`` square, batch 1.

Quality, against torch fp32 on the same inputs, with models trained here (the released weights are not
available offline): the demo SFT-Net (``python train.py``: the newest ``outputs/**/generator.pth``) on the
demo test scenes with their label-map prior: PSNR-Y of each path's SR against torch fp32's (budget
>= 45 dB) and the change of PSNR-Y against HR (budget 0.05 dB); the learned-prior segmenter (``make
pipeline``: ``outputs/pipeline/segmenter/segmenter.pth``) on the same scenes: argmax agreement (budget
>= 99%) and mean |delta prob|. A path that misses a budget is marked, and ``engine=auto`` does not choose it.

It also prints what ``engine=auto precision=auto`` chooses here and on a CPU without native bf16.

    python benchmarks/bench_engines.py [--lr-size 64] [--repeats 3] [--generator PATH] [--segmenter PATH]

With a GPU present it also prints CUDA rows: torch fp32 and bf16/fp16 autocast, channels_last.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import tempfile
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from results import Results
from timing import best

from sftgan_lit.data.demo import DemoConfig, test_scenes
from sftgan_lit.inference import engines
from sftgan_lit.inference.engines import GeneratorRunner, SegmenterRunner, choose
from sftgan_lit.inference.runtime import resolve_checkpoint
from sftgan_lit.metrics import psnr_y
from sftgan_lit.models import OutdoorSceneSeg, load_generator, load_segmenter, sftgan_pytorch

PATHS = [("torch", "fp32"), ("torch", "bf16"), ("onnxruntime", "fp32"), ("openvino", "fp32"), ("openvino", "bf16")]


def runners(generator, segmenter, engine: str, precision: str, folder: Path):
    """(segment(lr) -> coarse logits, generate(lr, prior) -> sr) on one path."""
    if engine == "torch":
        g = copy.deepcopy(generator).to(memory_format=torch.channels_last)
        s = copy.deepcopy(segmenter).to(memory_format=torch.channels_last)

        def ctx():
            return torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else contextlib.nullcontext()

        def segment(lr):
            with torch.inference_mode(), ctx():
                return s.coarse_logits(lr).float()

        def generate(lr, prior):
            with torch.inference_mode(), ctx():
                return g(lr, prior).float()

        return segment, generate
    seg_runner = SegmenterRunner(segmenter, engine, folder, precision)
    gen_runner = GeneratorRunner(generator, engine, folder, precision)
    return seg_runner.coarse_logits, gen_runner


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--generator", default="latest", help="a demo-trained generator (default: checkpoint=latest)")
    parser.add_argument("--segmenter", default="outputs/pipeline/segmenter/segmenter.pth")
    args = parser.parse_args()
    available = [
        (e, p) for e, p in PATHS if engines.installed(e) and (p == "fp32" or engines.native_bf16(torch.device("cpu")))
    ]
    s = args.lr_size
    mp = (4 * s) ** 2 / 1e6
    results = Results("engines")
    results.note(f"native bf16 on this CPU: {engines.native_bf16(torch.device('cpu'))}")
    results.note(f"engine=auto precision=auto here: {choose('auto', 'auto', torch.device('cpu'))}")
    with mock.patch.object(engines, "cpu_flags", lambda: {"avx2", "avx512f"}):
        results.note(f"the same on a CPU without native bf16: {choose('auto', 'auto', torch.device('cpu'))}")
    torch.manual_seed(0)
    generator, segmenter = sftgan_pytorch().eval(), OutdoorSceneSeg().eval()
    lr = torch.rand(1, 3, s, s)
    with torch.inference_mode():
        prior = segmenter(lr)
    columns = ["engine", "precision", "segmenter", "generator", "end to end", "vs fp32"]
    rows = results.table(
        columns, f"seconds per output MP: released sizes, random weights, LR {s}x{s} -> {4 * s}x{4 * s}, batch 1"
    )
    reference = None
    with tempfile.TemporaryDirectory() as tmp:
        for engine, precision in available:
            segment, generate = runners(generator, segmenter, engine, precision, Path(tmp))
            t_seg = best(lambda: segment(lr), args.repeats) / mp
            t_gen = best(lambda: generate(lr, prior), args.repeats) / mp
            total = t_seg + t_gen
            reference = reference or total
            rows.append(
                [engine, precision, f"{t_seg:.2f}", f"{t_gen:.2f}", f"{total:.2f}", f"{reference / total:.2f}x"]
            )
        cuda_rows(results, columns, generator, segmenter, lr, mp, args.repeats)
        quality(results, args, available, Path(tmp))
    results.save()


def cuda_rows(results: Results, columns, generator, segmenter, lr, mp: float, repeats: int) -> None:
    """On a GPU (when one is present): torch fp32 / bf16 / fp16 autocast with channels_last, same table."""
    if not torch.cuda.is_available():
        return
    g = copy.deepcopy(generator).cuda().to(memory_format=torch.channels_last)
    s = copy.deepcopy(segmenter).cuda().to(memory_format=torch.channels_last)
    x = lr.cuda()
    rows = results.table(columns, f"seconds per output MP on {torch.cuda.get_device_name()}, channels_last")
    reference = None
    for precision, dtype in (("fp32", None), ("bf16", torch.bfloat16), ("fp16", torch.float16)):
        ctx = torch.autocast("cuda", dtype=dtype) if dtype else contextlib.nullcontext()

        def timed(fn):
            def run():
                with torch.inference_mode(), ctx:
                    fn()
                torch.cuda.synchronize()

            return best(run, repeats) / mp

        with torch.inference_mode():
            prior = s(x).float()
        t_seg, t_gen = timed(lambda: s.coarse_logits(x)), timed(lambda: g(x, prior))
        reference = reference or t_seg + t_gen
        total = t_seg + t_gen
        rows.append(
            ["torch cuda", precision, f"{t_seg:.3f}", f"{t_gen:.3f}", f"{total:.3f}", f"{reference / total:.2f}x"]
        )


def quality(results: Results, args, available, folder: Path) -> None:
    try:
        generator = load_generator(resolve_checkpoint(args.generator), channels_last=False)
        segmenter = load_segmenter(args.segmenter)
    except FileNotFoundError as err:
        results.note(f"quality rows skipped: {err} (python train.py and make pipeline make the trained models)")
        return
    scenes = test_scenes(DemoConfig())  # the SFT-Net's test scenes
    # the segmenter's own test scenes (make pipeline trains it on data=context)
    context = test_scenes(DemoConfig(kind="context", size=128, num_train=64, num_val=8, num_test=16))
    rows = results.table(
        [
            "engine",
            "precision",
            "prior argmax agreement",
            "mean abs delta prob",
            "SR PSNR-Y vs fp32 (min)",
            "delta PSNR-Y vs HR",
            "budgets",
        ],
        f"quality against torch fp32: SR on {len(scenes)} demo test scenes (the demo SFT-Net, label-map prior); "
        f"prior on {len(context)} context test scenes (the LR-ASPP of make pipeline). Budgets: argmax agreement "
        ">= 99%, SR PSNR-Y against fp32 >= 45 dB, PSNR-Y against HR within 0.05 dB of fp32's",
    )
    ref = None
    for engine, precision in available:
        segment, generate = runners(generator, segmenter, engine, precision, folder)
        probs, srs = [], []
        for _, lr, _ in context:
            probs.append(segmenter.decode_coarse(segment(lr).float()))
        for _, lr, prior in scenes:
            srs.append(generate(lr, prior).float()[None, 0])
        if ref is None:
            ref = probs, srs
        agree = np.mean([float((p.argmax(1) == r.argmax(1)).float().mean()) for p, r in zip(probs, ref[0])])
        dprob = np.mean([float((p - r).abs().mean()) for p, r in zip(probs, ref[0])])
        vs_fp32 = min(psnr_y(a, b).item() for a, b in zip(srs, ref[1]))
        vs_hr = np.mean(
            [psnr_y(a, hr[None, :, : a.shape[2], : a.shape[3]]).item() for a, (hr, _, _) in zip(srs, scenes)]
        )
        hr0 = np.mean(
            [psnr_y(a, hr[None, :, : a.shape[2], : a.shape[3]]).item() for a, (hr, _, _) in zip(ref[1], scenes)]
        )
        ok = agree >= 0.99 and vs_fp32 >= 45 and abs(vs_hr - hr0) <= 0.05
        rows.append(
            [
                engine,
                precision,
                f"{100 * agree:.2f}%",
                f"{dprob:.1e}",
                f"{'inf' if math.isinf(vs_fp32) else f'{vs_fp32:.1f}'} dB",
                f"{vs_hr - hr0:+.3f} dB",
                "met" if ok else "MISSED",
            ]
        )


if __name__ == "__main__":
    main()
