"""Benchmark: the one-input SFTGAN pipeline (prior + generator) through torch eager vs onnxruntime, fp32 and fp16.

Per output megapixel on this CPU, side by side in one run, for the released architecture sizes (SFT-Net
64 features / 16 blocks; OutdoorSceneSeg ResNet-101, random weights: speed does not depend on values)
with the uniform prior and with the segmenter prior. Each ONNX row also gives its largest difference
from the eager fp32 output on the same input.

    python benchmarks/bench_pipeline.py [--lr-size 64] [--repeats 3] [--threads N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from results import Results
from timing import best

from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
from sftgan_lit.inference.export import export_pipeline_onnx
from sftgan_lit.models import OutdoorSceneSeg, sftgan_pytorch
from sftgan_lit.pipeline import SFTGANPipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lr-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    s = args.lr_size
    lr = torch.rand(1, 3, s, s)
    mp = (4 * s) ** 2 / 1e6
    results = Results("pipeline")
    rows = results.table(
        ["prior", "engine", "s per output MP", "vs torch eager fp32", "max abs diff vs eager fp32"],
        f"LR {s}x{s} -> SR {4 * s}x{4 * s}, batch 1, onnxruntime {ort.__version__}",
    )
    generator = sftgan_pytorch().eval()
    for prior_name, segmenter in (("uniform", None), ("OutdoorSceneSeg", OutdoorSceneSeg().eval())):
        pipeline = SFTGANPipeline(generator, segmenter, OUTDOOR_CLASSES, OUTDOOR_COLORS).eval()
        with torch.inference_mode():
            reference = pipeline(lr).numpy()
            eager = best(lambda: pipeline(lr), args.repeats)
        rows.append([prior_name, "torch eager fp32", f"{eager / mp:.2f}", "1.00x", "0"])
        with tempfile.TemporaryDirectory() as tmp:
            for fp16 in (False, True):
                path = export_pipeline_onnx(pipeline, Path(tmp) / f"p{int(fp16)}.onnx", fp16=fp16)
                options = ort.SessionOptions()
                options.intra_op_num_threads = args.threads
                session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
                x = lr.numpy().astype(np.float16 if fp16 else np.float32)
                out = session.run(None, {"input": x})[0].astype(np.float32)
                t = best(lambda: session.run(None, {"input": x}), args.repeats)
                diff = float(np.abs(out - reference).max())
                label = "onnxruntime fp16" if fp16 else "onnxruntime fp32"
                rows.append([prior_name, label, f"{t / mp:.2f}", f"{eager / t:.2f}x", f"{diff:.1e}"])
    results.save()


if __name__ == "__main__":
    main()
