"""Texture strength table: the demo recipe's two ends (fidelity stage, GAN stage) interpolated at 0, 0.25,
0.5, 0.75, 1 on the held-out demo scenes: high-frequency energy of the Y channel (texture) and PSNR-Y
against HR (fidelity). Writes ``strength.json`` and ``report.md`` to ``--out``.

    python -m sftgan_lit.experiments.texture_strength [--checkpoint latest] [--out outputs/strength]

``--checkpoint``: a GAN-stage ``generator.pth`` with ``generator_fidelity.pth`` beside it (what
``python train.py``'s demo recipe writes); ``latest`` is the newest such train.py run.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ..data.demo import DemoConfig, test_scenes
from ..inference.predict import fidelity_checkpoint
from ..inference.runtime import resolve_checkpoint
from ..metrics import psnr_y, y_8bit
from ..models import interpolate_generators, load_generator

STRENGTHS = (0.0, 0.25, 0.5, 0.75, 1.0)


def high_frequency_energy(rgb: torch.Tensor) -> float:
    """Mean squared response of the 3x3 Laplacian on the 8-bit Y in [0, 1] (x 1e3): how much fine texture
    an RGB (3, H, W) image holds."""
    y = (y_8bit(rgb[None]) / 255).float()
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]])[None, None]
    return float(torch.nn.functional.conv2d(y, kernel).pow(2).mean()) * 1e3


def strength_table(checkpoint: Path, fidelity: Path, scenes: int | None = None) -> list[dict]:
    """Per strength: mean HF energy of the SR and PSNR-Y against HR over the demo test scenes (and HR's energy)."""
    gan, fid = load_generator(checkpoint), load_generator(fidelity)
    data = test_scenes(DemoConfig(), gan.config.num_classes, limit=scenes)
    rows = []
    for s in STRENGTHS:
        g = interpolate_generators(fid, gan, s)
        energy, psnr = [], []
        with torch.inference_mode():
            for hr, lr, prior in data:
                sr = g(lr, prior)[0].clamp(0, 1)
                energy.append(high_frequency_energy(sr))
                psnr.append(psnr_y(sr[None], hr[None, :, : sr.shape[1], : sr.shape[2]]).item())
        rows.append({"strength": s, "hf_energy_y": float(np.mean(energy)), "psnr_y": float(np.mean(psnr))})
    rows.append({"strength": "HR", "hf_energy_y": float(np.mean([high_frequency_energy(hr) for hr, _, _ in data]))})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", default="latest")
    parser.add_argument("--checkpoint-fidelity", default=None)
    parser.add_argument("--out", default="outputs/strength")
    args = parser.parse_args()
    ckpt = resolve_checkpoint(args.checkpoint)
    fid = fidelity_checkpoint(args.checkpoint_fidelity, ckpt)
    rows = strength_table(ckpt, fid)
    lines = [
        "# Texture strength",
        "",
        f"The demo test scenes: {fid.name} (strength 0) .. {ckpt.name} (strength 1), weights interpolated.",
        "",
        "| strength | HF energy of Y (3x3 Laplacian, x1e3) | PSNR-Y (dB) |",
        "| --- | --- | --- |",
    ]
    for r in rows:
        psnr = f"{r['psnr_y']:.2f}" if "psnr_y" in r else "-"
        name = r["strength"] if isinstance(r["strength"], str) else f"{r['strength']:.2f}"
        lines.append(f"| {name} | {r['hf_energy_y']:.3f} | {psnr} |")
    energies = [r["hf_energy_y"] for r in rows[:-1]]
    psnrs = [r["psnr_y"] for r in rows[:-1]]
    rising = all(b > a for a, b in zip(energies, energies[1:]))
    falling = all(b < a for a, b in zip(psnrs, psnrs[1:]))
    lines += ["", f"Texture energy rises monotonically: {rising}; PSNR-Y falls monotonically: {falling}."]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "strength.json").write_text(json.dumps({"rows": rows, "rising": rising, "falling": falling}, indent=1))
    (out / "report.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
