"""Benchmark: what SFT costs on each backbone (the paper's "few parameters" claim, measured).

For each registered backbone at its released size (SFT-Net = SFTGAN_noBN_OST_bg; SFT-RRDBNet =
RealESRGAN_x4plus; SFT-Compact = realesr-general-x4v3), x4, 8 classes: parameters and forward time at
128x128 LR, batch 1, fp32, of the conditioned network (sft=every_block: the condition net plus an SFT
layer before each block and before the trunk's last conv) and of the same backbone unconditioned
(``conditioning=none``: the released network itself), built in the same run; the ratios SFT / plain; and
the receptive field that tiled inference uses as its overlap.

    python benchmarks/bench_backbones.py [--lr-size 128] [--repeats 3] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import torch
from results import Results
from timing import best

from sftgan_lit.inference.tiling import receptive_field
from sftgan_lit.models import build_generator

BACKBONES = {  # name shown: the variant (its architecture and released sizes)
    "SFT-Net (SFTGAN)": "sftgan_pytorch",
    "SFT-RRDBNet (RealESRGAN_x4plus)": "rrdb_x4plus",
    "SFT-Compact (realesr-general-x4v3)": "compact_general_x4v3",
}


def forward_ms(g: torch.nn.Module, lr: torch.Tensor, prior: torch.Tensor | None, repeats: int, device) -> float:
    def run() -> None:
        with torch.inference_mode():
            g(lr, prior)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return best(run, repeats) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--lr-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    res = Results("backbones")
    rows = res.table(
        [
            "backbone",
            "params plain",
            "params SFT",
            "SFT / plain params",
            "ms plain",
            "ms SFT",
            "SFT / plain time",
            "receptive field (LR px)",
        ],
        f"x4, 8 classes, forward at {args.lr_size}x{args.lr_size} LR, batch 1, fp32 on {args.device}; "
        "channels_last weights (what load_generator returns)",
    )
    n = args.lr_size
    gen = torch.Generator().manual_seed(0)
    lr = torch.rand(1, 3, n, n, generator=gen).to(device)
    prior = torch.softmax(3 * torch.randn(1, 8, 4 * n, 4 * n, generator=gen), 1).to(device)
    for name, variant in BACKBONES.items():
        nets = {}
        for kind, conditioning in (("plain", "none"), ("sft", "sft")):
            torch.manual_seed(0)
            g = build_generator(variant, num_classes=8, conditioning=conditioning).eval()
            nets[kind] = g.to(device, memory_format=torch.channels_last)
        params = {k: sum(p.numel() for p in g.parameters()) for k, g in nets.items()}
        ms = {
            "plain": forward_ms(nets["plain"], lr, None, args.repeats, device),
            "sft": forward_ms(nets["sft"], lr, prior, args.repeats, device),
        }
        rows.append(
            [
                name,
                f"{params['plain']:,}",
                f"{params['sft']:,}",
                f"{params['sft'] / params['plain']:.3f}",
                f"{ms['plain']:.0f}",
                f"{ms['sft']:.0f}",
                f"{ms['sft'] / ms['plain']:.2f}",
                str(receptive_field(nets["sft"])),
            ]
        )
        print(rows[-1])
        del nets
    res.note(
        "plain: the backbone with conditioning=none (the released network); SFT: sft=every_block (the condition "
        "net, one SFT layer before each block and one before the trunk's last conv). The receptive field is the "
        "overlap predict's tiles need to equal a whole-image pass (inference.tiling.receptive_field)."
    )
    res.save(device, "" if device.type == "cpu" else f"-{device.type}")


if __name__ == "__main__":
    main()
