"""Benchmark: SFT-Net forward speed vs the original code's module structure, and vs the machine's peak.

Prints, for a forward at 128x128 LR (512x512 SR), batch 4, on the CPU:
  - time per forward of sftgan_lit's generator and of a module written like the original
    (tests/reference_nets.py: tuple-passing nn.Sequential, one SFT layer at a time), same weights;
  - achieved GFLOP/s (2 x the convolutions' multiply-adds, counted with hooks);
  - that as a fraction of the machine's large-matmul GFLOP/s measured in the same run.
On a GPU (when one is present) it also prints fp32 vs autocast (fp16/bf16) + channels_last throughput.

    python benchmarks/bench_generator.py [--lr-size 128] [--batch 4] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from results import Results
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from sftgan_lit.models import sftgan_pytorch  # noqa: E402

from reference_nets import RefSFTNet  # noqa: E402


def count_conv_macs(model: nn.Module, *inputs) -> int:
    """Multiply-adds of every Conv2d in one forward (hooks; the reference model has only module convs)."""
    total = 0

    def hook(mod: nn.Conv2d, _inp, out):
        nonlocal total
        k = mod.kernel_size[0] * mod.kernel_size[1]
        total += out.numel() * (mod.in_channels // mod.groups) * k

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.inference_mode():
        model(*inputs)
    for h in handles:
        h.remove()
    return total


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def best_time(fn, repeats: int, device: torch.device) -> float:
    with torch.inference_mode():
        fn()  # warm-up
        sync(device)
        best = float("inf")
        for _ in range(repeats):
            t0 = time.perf_counter()
            fn()
            sync(device)
            best = min(best, time.perf_counter() - t0)
    return best


def matmul_gflops(device: torch.device, n: int = 4096, repeats: int = 3) -> float:
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = best_time(lambda: a @ b, repeats, device)
    return 2 * n**3 / t / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lr-size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)

    ours = sftgan_pytorch().eval().to(device)
    ref = RefSFTNet().eval().to(device)
    ref.load_state_dict(ours.state_dict())
    # weights scaled so activations stay in a realistic range (as a trained model's do)
    with torch.no_grad():
        for p in list(ours.parameters()) + list(ref.parameters()):
            p.mul_(0.5)
    n, s = args.batch, args.lr_size
    lr = torch.rand(n, 3, s, s, device=device)
    prior = torch.softmax(torch.randn(n, 8, 4 * s, 4 * s, device=device), dim=1)

    macs = count_conv_macs(ref, (lr, prior))
    flops = 2 * macs
    peak = matmul_gflops(device)

    with torch.inference_mode():
        diff = (ours(lr, prior) - ref((lr, prior))).abs().max().item()
    # what load_generator returns: channels_last weights, NCHW inputs converted inside forward
    ours_cl = sftgan_pytorch().eval().to(device)
    ours_cl.load_state_dict(ours.state_dict())
    ours_cl = ours_cl.to(memory_format=torch.channels_last)
    rows = [
        ("original-style module (reference)", lambda: ref((lr, prior))),
        ("sftgan_lit SFTGenerator, NCHW", lambda: ours(lr, prior)),
        ("sftgan_lit as loaded (channels_last)", lambda: ours_cl(lr, prior)),
    ]
    results = Results("generator")
    for line in (
        f"LR {s}x{s}, batch {n} -> SR {4 * s}x{4 * s}; {flops / 1e9:.1f} GFLOP of convolutions per forward",
        f"large matmul (4096^2 fp32) in the same run: {peak:.1f} GFLOP/s",
    ):
        results.note(line)
    table = results.table(["model", "time / forward", "GFLOP/s", "of matmul peak", "speed-up"], f"{device.type}, fp32")
    times = {}
    for name, fn in rows:
        times[name] = t = best_time(fn, args.repeats, device)
        speed = times[rows[0][0]] / t
        table.append(
            [name, f"{t * 1e3:.1f} ms", f"{flops / t / 1e9:.0f}", f"{flops / t / 1e9 / peak:.0%}", f"{speed:.2f}x"]
        )
    results.note(f"outputs agree with the original-style module to {diff:.1e} (max abs)")

    if device.type == "cuda":
        lr_cl, prior_cl = (t.contiguous(memory_format=torch.channels_last) for t in (lr, prior))
        t32 = best_time(lambda: ours(lr, prior), args.repeats, device)
        speed = results.table(["precision", "images / s", "vs fp32"], "CUDA throughput")
        speed.append(["fp32", f"{n / t32:.0f}", "1.00x"])
        for dtype in (torch.float16, torch.bfloat16):

            def run(dtype=dtype):
                with torch.autocast("cuda", dtype=dtype):
                    return ours_cl(lr_cl, prior_cl)

            t = best_time(run, args.repeats, device)
            speed.append([f"autocast {str(dtype).split('.')[-1]} + channels_last", f"{n / t:.0f}", f"{t32 / t:.2f}x"])
    results.save(device, suffix="-cuda" if device.type == "cuda" else "")


if __name__ == "__main__":
    main()
