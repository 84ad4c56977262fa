"""End-to-end inference frames per second (segmenter + generator, one image per call): torch eager vs
``torch.compile`` (inductor), fp32 and bf16 autocast, and onnxruntime's CUDA / TensorRT execution providers when
they are installed, side by side in one run.

The one-input pipeline of the released sizes (SFT-Net 64 features / 16 blocks; OutdoorSceneSeg ResNet-101 on the
x4 bicubic-upsampled LR) and of this package's LR-ASPP segmenter, random weights (speed does not depend on values).
The target size is a 480x640 LR on a GPU; on the CPU the default is 60x80 (the released segmenter sees a 4x larger
image: a 480x640 frame takes minutes there). Each compiled row gives its largest difference from eager fp32.

    .venv/bin/python benchmarks/bench_inference.py [--lr 480x640] [--repeats 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import torch
from results import Results

from sftgan_lit.categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
from sftgan_lit.models import LRASPPSegmenter, OutdoorSceneSeg, sftgan_pytorch
from sftgan_lit.pipeline import SFTGANPipeline
from sftgan_lit.precision import autocast


def frames_per_second(fn, repeats: int, device: torch.device) -> float:
    """Best of ``repeats`` timed calls after two untimed ones (compilation, cuDNN's choices)."""
    for _ in range(2):
        fn()
    best = float("inf")
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return 1 / best


def onnx_providers() -> list[str]:
    try:
        import onnxruntime as ort
    except ImportError:
        return []
    return [p for p in ("TensorrtExecutionProvider", "CUDAExecutionProvider") if p in ort.get_available_providers()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--lr", default=None, help="HxW of the LR (default 480x640 on CUDA, 60x80 on the CPU)")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    h, w = (int(v) for v in (args.lr or ("480x640" if device.type == "cuda" else "60x80")).split("x"))
    torch.manual_seed(0)
    lr = torch.rand(1, 3, h, w, device=device)
    results = Results("inference")
    rows = results.table(
        ["segmenter", "mode", "precision", "frames/s", "vs eager fp32", "max abs diff vs eager fp32"],
        f"LR {h}x{w} -> SR {4 * h}x{4 * w}, batch 1, segmenter + SFT-Net end to end",
    )
    precisions = ["fp32", "bf16"] + (["fp16"] if device.type == "cuda" else [])
    for name, segmenter in (("OutdoorSceneSeg", OutdoorSceneSeg()), ("LR-ASPP", LRASPPSegmenter(num_classes=8))):
        pipeline = SFTGANPipeline(sftgan_pytorch(), segmenter.eval(), OUTDOOR_CLASSES, OUTDOOR_COLORS).eval().to(device)
        compiled = torch.compile(pipeline)
        with torch.inference_mode():
            reference = pipeline(lr).float()
        base = None
        for mode, net in (("eager", pipeline), ("compiled", compiled)):
            for precision in precisions:

                def run(net=net, precision=precision):
                    with torch.inference_mode(), autocast(device, precision):
                        return net(lr)

                fps = frames_per_second(run, args.repeats, device)
                base = base or fps
                diff = (run().float() - reference).abs().max().item()
                rows.append([name, mode, precision, f"{fps:.2f}", f"{fps / base:.2f}x", f"{diff:.1e}"])
        providers = onnx_providers() if device.type == "cuda" else []
        if device.type == "cuda" and not providers:
            rows.append([name, "onnxruntime CUDA / TensorRT", "-", "-", "-", "not installed (onnxruntime-gpu)"])
        for provider in providers:
            import tempfile
            from pathlib import Path

            import onnxruntime as ort

            from sftgan_lit.inference.export import export_pipeline_onnx

            with tempfile.TemporaryDirectory() as tmp:
                path = export_pipeline_onnx(pipeline.cpu(), Path(tmp) / "p.onnx", fp16=True)
                pipeline.to(device)
                session = ort.InferenceSession(str(path), providers=[provider])
                x = lr.cpu().numpy().astype("float16")
                fps = frames_per_second(lambda: session.run(None, {"input": x}), args.repeats, torch.device("cpu"))
                out = torch.from_numpy(session.run(None, {"input": x})[0]).float().to(device)
                diff = (out - reference).abs().max().item()
                rows.append(
                    [name, f"onnxruntime {provider}", "fp16", f"{fps:.2f}", f"{fps / base:.2f}x", f"{diff:.1e}"]
                )
    results.save(args.device, suffix="-cuda" if device.type == "cuda" else "")


if __name__ == "__main__":
    main()
