"""What Real-ESRGAN's second-order degradation costs per training batch, beside the training step it feeds,
in the same run: batch 16, HR 256 crops (Real-ESRGAN's gt_size), its default ranges.

- the draw in the data workers (kernels and parameters of 16 samples; it overlaps with training there);
- the degradation on the device (``SecondOrder.__call__``: USM-sharpened target, blur, resizes, noise, JPEG);
- MATLAB bicubic (the paper's LR) on the device, for scale;
- one training iteration of the released generator (SFT-Net, 1.83M parameters) at that size: one G update
  (VGG19 perceptual + GAN + category terms) and one D update (ACD discriminator at 256 px), as
  ``bench_training.py``'s plain loop runs it.

And how close the device JPEG is to libjpeg: PSNR between ``degradations.jpeg`` and PIL's encoder/decoder
at the same quality on skimage's photographs, beside kornia's differentiable codec.

Medians over rounds; the degradation's share is its time over the training iteration's.

    .venv/bin/python benchmarks/bench_degradations.py [--rounds 5] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch
from bench_training import make_batch, plain_iterations
from results import Results

from sftgan_lit.data.datamodule import collate
from sftgan_lit.degradations import SecondOrder, bicubic_lr


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, rounds: int, device: str, warmup: int = 1) -> float:
    times = []
    for i in range(warmup + rounds):
        _sync(device)
        t = time.perf_counter()
        fn(i)
        _sync(device)
        if i >= warmup:
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(255.0**2 / np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


def jpeg_agreement(results: Results) -> None:
    import io

    import kornia
    from PIL import Image
    from skimage import data

    from sftgan_lit.degradations import jpeg

    rows = results.table(
        [
            "photo (301x403 crop)",
            "quality",
            "ours vs libjpeg (dB)",
            "kornia vs libjpeg (dB)",
            "libjpeg vs original (dB)",
        ],
        "JPEG on the device against libjpeg (PIL) at the same quality",
    )
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        photo = np.ascontiguousarray(getattr(data, name)()[:301, :403])
        x = torch.from_numpy(photo).permute(2, 0, 1)[None].float() / 255
        for q in (30, 50, 75, 95):
            buf = io.BytesIO()
            Image.fromarray(photo).save(buf, format="JPEG", quality=q)
            ref = np.asarray(Image.open(buf).convert("RGB"))
            ours = (jpeg(x, float(q))[0] * 255).round().byte().permute(1, 2, 0).numpy()
            theirs = kornia.enhance.jpeg_codec_differentiable(x, torch.tensor([float(q)]))[0]
            theirs = (theirs.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
            rows.append([name, q, f"{_psnr(ours, ref):.2f}", f"{_psnr(theirs, ref):.2f}", f"{_psnr(ref, photo):.2f}"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--step-iters", type=int, default=3)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    n, size, device = args.batch, args.size, args.device
    degradation = SecondOrder(4)
    hr = torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(0)).to(device)
    draws = [
        collate([degradation.draw(np.random.default_rng([r, i])) for i in range(n)]) for r in range(args.rounds + 1)
    ]
    params = [{k: (v.to(device) if torch.is_tensor(v) else v) for k, v in p.items()} for p in draws]

    draw_s = timed(
        lambda r: collate([degradation.draw(np.random.default_rng([r, 9, i])) for i in range(n)]), args.rounds, "cpu"
    )
    device_s = timed(lambda r: degradation(hr, params[r], training=True), args.rounds, device)
    bicubic_s = timed(lambda r: bicubic_lr(hr, 4), args.rounds, device)
    batch = make_batch(n, size)
    step = plain_iterations(batch, args.step_iters + 1, device, "32-true", d_input=size)[1:]
    step_s = statistics.median(step)

    results = Results("degradations")
    jpeg_agreement(results)
    rows = results.table(
        ["what", "seconds per batch", "share of the training iteration"],
        f"batch {n}, HR {size}, Real-ESRGAN's default ranges (train_realesrnet_x4plus.yml), medians",
    )
    rows.append(
        [
            "draw in the workers (3 kernels and the parameters of each sample; CPU)",
            f"{draw_s:.4f}",
            f"{draw_s / step_s:.2%}",
        ]
    )
    rows.append(["second-order degradation on the device", f"{device_s:.4f}", f"{device_s / step_s:.2%}"])
    rows.append(["MATLAB bicubic x1/4 on the device (the paper's LR)", f"{bicubic_s:.4f}", f"{bicubic_s / step_s:.2%}"])
    rows.append(["training iteration, released SFT-Net (G + D + VGG19)", f"{step_s:.3f}", "100%"])
    results.note(
        f"the degradation on the device costs {device_s / step_s:.1%} of a training iteration "
        f"({'target <= 10%: met' if device_s <= 0.1 * step_s else 'target <= 10%: missed'})"
    )
    results.save(device, suffix="-cuda" if device.startswith("cuda") else "")


if __name__ == "__main__":
    main()
