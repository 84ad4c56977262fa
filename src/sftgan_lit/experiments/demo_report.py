"""The main job's report: what the two stages of ``python train.py`` did, on the held-out demo scenes.

For every held-out scene (LR by the paper's protocol: modcrop, MATLAB-bicubic x1/scale, 8 bits):

- PSNR-Y / SSIM-Y (whole image, the literature's conventions) for bicubic, stage 1 (fidelity) and
  stage 2 (GAN), stage 2 also fed a uniform prior (no information) and a prior with two classes
  swapped; PSNR-Y on the LR-ambiguous classes' regions (``data.demo.PAIRS``) alone;
- a texture statistic per class: the high-frequency energy of Y, ``mean((Y - G_sigma * Y)^2)`` over the
  class's pixels (8-bit Y, regions eroded by ``erode`` HR px so boundaries do not count), for HR,
  bicubic and each variant;
- the targets of the demo, each with its measured value and met / missed ("textured classes": those
  whose HR texture statistic is at least ``textured_min``, i.e. not sky or calm water);
- a figure: crops of LR, bicubic, stage 1, stage 2, stage 2 with the swapped prior, HR and the prior.

Written to ``<run>/report.md``, ``report.json`` and ``report.png``; the markdown is also printed.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..categories import colorize
from ..data.demo import PAIRS
from ..data.io import read_image, read_label_map
from ..data.transforms import lr_from_image, to_float_chw
from ..files import atomic_write_bytes
from ..imresize import imresize
from ..inference import super_resolve
from ..metrics import psnr_y, ssim_y, y_8bit
from ..models import load_generator
from ..priors import PriorEdits, UniformPriorMap

log = logging.getLogger(__name__)

VARIANTS = ("bicubic", "stage 1", "stage 2", "stage 2, uniform prior", "stage 2, swapped prior")


def high_frequency(y: np.ndarray, sigma: float) -> np.ndarray:
    """``(Y - G_sigma * Y)^2`` per pixel: the energy Y has above the Gaussian's pass band (reflect padding)."""
    radius = int(np.ceil(3 * sigma))
    x = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-(x**2) / (2 * sigma**2))
    k = k / k.sum()
    t = torch.from_numpy(y)[None, None]
    t_pad = F.pad(t, (radius, radius, radius, radius), mode="reflect")
    blurred = F.conv2d(F.conv2d(t_pad, k.view(1, 1, 1, -1)), k.view(1, 1, -1, 1))
    return ((t - blurred) ** 2)[0, 0].numpy()


def erode(mask: np.ndarray, px: int) -> np.ndarray:
    """``mask`` shrunk by ``px`` pixels (a pixel stays when its (2px+1)^2 neighbourhood is all in the mask)."""
    if px <= 0:
        return mask
    t = torch.from_numpy(mask.astype(np.float32))[None, None]
    return (-F.max_pool2d(-t, 2 * px + 1, stride=1, padding=px))[0, 0].numpy() > 0.5


def write_report(
    cfg,
    metrics: dict,
    objects: dict,
    split: str = "test",
    swap: tuple[str, str] = ("building", "mountain"),
    erode_px: int = 2,
    sigma: float = 1.0,
    crop: int = 64,
    stage1: str = "fidelity",
    stage2: str = "gan",
    textured_min: float = 10.0,
) -> dict:
    """Evaluate the run's two exports on the demo's ``split`` and write the report into the run folder."""
    prior = objects["prior"]
    exports = objects["exports"]
    names = list(prior.class_names)
    a, b = (names.index(c) for c in swap)
    ambiguous = [names.index(c) for c in PAIRS]
    gens = {"stage 1": load_generator(exports[stage1]), "stage 2": load_generator(exports[stage2])}
    scale = gens["stage 2"].scale
    root = Path(objects["datamodule"].demo_root()) / split
    swap_edit = PriorEdits(remap={a: b, b: a})
    sums = {v: {"psnr_y": [], "ssim_y": []} for v in VARIANTS}
    sq_err = {v: [0.0, 0] for v in VARIANTS}  # squared Y error and pixel count on the ambiguous regions
    energy = {v: {c: [0.0, 0] for c in range(len(names))} for v in ("HR", *VARIANTS)}
    best_crops: dict[int, tuple[int, str, tuple[int, int]]] = {}
    images = sorted((root / "images").glob("*.png"))
    cache = {}
    for path in images:
        hr8 = read_image(path)
        labels = read_label_map(root / "labels" / path.name, len(names))
        lr, _ = lr_from_image(hr8, "hr", scale)
        h, w = lr.shape[-2] * scale, lr.shape[-1] * scale
        hr8, labels = hr8[:h, :w], labels[:h, :w]
        hr = to_float_chw(hr8)[None]
        pm, _ = prior.image_map(lr, scale, labels=labels)
        feeds = {
            "stage 1": ("stage 1", pm),
            "stage 2": ("stage 2", pm),
            "stage 2, uniform prior": ("stage 2", UniformPriorMap(len(names), tuple(lr.shape[-2:]), scale)),
            "stage 2, swapped prior": ("stage 2", swap_edit.apply(pm)),
        }
        outs = {"bicubic": imresize(lr, scale).clamp(0, 1)}
        for v, (g, p) in feeds.items():
            sr = super_resolve(gens[g], lr, p, tile=None, as_float=True)
            outs[v] = torch.from_numpy(sr).permute(2, 0, 1)[None].clamp(0, 1)
        y_hr = y_8bit(hr)[0, 0].numpy()
        masks = {c: erode(labels == c, erode_px) for c in range(len(names))}
        amb = np.zeros_like(labels, dtype=bool)
        for c in ambiguous:
            amb |= masks[c]
        hf = {"HR": high_frequency(y_hr, sigma)}
        for v, img in outs.items():
            sums[v]["psnr_y"].append(float(psnr_y(img, hr, scale)))
            sums[v]["ssim_y"].append(float(ssim_y(img, hr, scale)))
            y = y_8bit(img)[0, 0].numpy()
            hf[v] = high_frequency(y, sigma)
            sq_err[v][0] += float(((y - y_hr) ** 2)[amb].sum())
            sq_err[v][1] += int(amb.sum())
        for v, e in hf.items():
            for c, m in masks.items():
                energy[v][c][0] += float(e[m].sum())
                energy[v][c][1] += int(m.sum())
        for c in (a, b):
            if masks[c].sum() > best_crops.get(c, (0,))[0]:
                ys, xs = np.nonzero(masks[c])
                best_crops[c] = (int(masks[c].sum()), path.name, (int(np.median(ys)), int(np.median(xs))))
        cache[path.name] = (lr, hr, outs, pm)
    rows = {v: {k: float(np.mean(x)) for k, x in sums[v].items()} for v in VARIANTS}
    for v in VARIANTS:
        rows[v]["psnr_y_ambiguous"] = float(10 * np.log10(255.0**2 / max(sq_err[v][0] / max(sq_err[v][1], 1), 1e-10)))
    texture = {v: {names[c]: (s / n if n else None) for c, (s, n) in per.items()} for v, per in energy.items()}
    present = [names[c] for c in range(len(names)) if energy["HR"][c][1]]
    # textured: the classes whose HR has high-frequency content to recover (not sky or calm water)
    textured = [c for c in present if texture["HR"][c] >= textured_min]
    targets = _targets(rows, texture, textured, swap)
    report = {
        "split": split,
        "images": len(images),
        "swap": list(swap),
        "sigma": sigma,
        "erode_px": erode_px,
        "textured_min": textured_min,
        "metrics": rows,
        "texture": texture,
        "textured_classes": textured,
        "targets": targets,
        "exports": {k: str(v) for k, v in exports.items()},
    }
    out = Path(cfg.paths.output_dir)
    md = _markdown(report, present)
    atomic_write_bytes(out / "report.md", md.encode())
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
    _figure(out / "report.png", cache, best_crops, (a, b), swap, prior, crop, scale)
    print(md)
    return report


def _targets(rows: dict, texture: dict, textured: list[str], swap: tuple[str, str]) -> list[dict]:
    gain = rows["stage 1"]["psnr_y"] - rows["bicubic"]["psnr_y"]
    prior_gain = rows["stage 2"]["psnr_y_ambiguous"] - rows["stage 2, uniform prior"]["psnr_y_ambiguous"]
    closer = {
        c: abs(texture["stage 2"][c] - texture["HR"][c]) < abs(texture["stage 1"][c] - texture["HR"][c])
        for c in textured
    }
    a, b = swap
    hr_a, hr_b = texture["HR"][a], texture["HR"][b]
    moves = {
        a: abs(texture["stage 2, swapped prior"][a] - hr_b) < abs(texture["stage 2"][a] - hr_b),
        b: abs(texture["stage 2, swapped prior"][b] - hr_a) < abs(texture["stage 2"][b] - hr_a),
    }
    return [
        {"target": "stage 1 beats bicubic by >= 0.5 dB PSNR-Y", "value": f"{gain:+.2f} dB", "met": bool(gain >= 0.5)},
        {
            "target": "stage 2's texture statistic is closer to HR's than stage 1's, textured classes",
            "value": ", ".join(f"{c} {'yes' if ok else 'no'}" for c, ok in closer.items()),
            "met": bool(all(closer.values())),
        },
        {
            "target": "true prior beats uniform prior by >= 1 dB PSNR-Y on the LR-ambiguous classes",
            "value": f"{prior_gain:+.2f} dB",
            "met": bool(prior_gain >= 1.0),
        },
        {
            "target": f"swapping {a} and {b} moves each region's texture statistic toward the other class",
            "value": ", ".join(f"{c} {'yes' if ok else 'no'}" for c, ok in moves.items()),
            "met": bool(all(moves.values())),
        },
    ]


def _markdown(report: dict, present: list[str]) -> str:
    rows, texture = report["metrics"], report["texture"]
    lines = [
        f"# Demo report: {report['images']} held-out scenes ({report['split']} split)",
        "",
        "| variant | PSNR-Y (dB) | SSIM-Y | PSNR-Y, LR-ambiguous classes (dB) |",
        "| --- | --- | --- | --- |",
    ]
    lines += [f"| {v} | {r['psnr_y']:.2f} | {r['ssim_y']:.4f} | {r['psnr_y_ambiguous']:.2f} |" for v, r in rows.items()]
    lines += [
        "",
        f"Texture statistic: high-frequency energy of 8-bit Y (Y minus its Gaussian blur, sigma {report['sigma']} px, "
        f"squared), mean over each class's pixels ({report['erode_px']} px from boundaries):",
        "",
        "| class | " + " | ".join(["HR", *rows]) + " |",
        "| --- |" + " --- |" * (1 + len(rows)),
    ]
    for c in present:
        vals = [texture[v][c] for v in ["HR", *rows]]
        lines.append(f"| {c} | " + " | ".join(f"{x:.1f}" for x in vals) + " |")
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in report["targets"]]
    return "\n".join(lines) + "\n"


def _figure(path: Path, cache: dict, best: dict, classes: tuple[int, int], swap, prior, crop: int, scale: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = ["LR", "bicubic", "stage 1", "stage 2", "stage 2, swapped prior", "HR", "prior"]
    fig, axes = plt.subplots(len(classes), len(panels), figsize=(2.1 * len(panels), 2.3 * len(classes)))
    for row, c in enumerate(classes):
        _, name, (cy, cx) = best[c]
        lr, hr, outs, pm = cache[name]
        H, W = hr.shape[-2:]
        y0 = int(np.clip(cy - crop // 2, 0, H - crop)) // scale * scale
        x0 = int(np.clip(cx - crop // 2, 0, W - crop)) // scale * scale
        near = F.interpolate(lr, scale_factor=scale, mode="nearest")
        colours = colorize(pm.full()[0].argmax(0), prior.colors)[None]
        imgs = {"LR": near, "HR": hr, "prior": colours, **outs}
        for col, p in enumerate(panels):
            ax = axes[row, col]
            window = imgs[p][0, :, y0 : y0 + crop, x0 : x0 + crop].permute(1, 2, 0).numpy()
            ax.imshow(window.clip(0, 1), interpolation="nearest")
            if row == 0:
                ax.set_title(p, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        axes[row, 0].set_ylabel(f"{swap[row]} ({name})", fontsize=8)
    fig.suptitle(f"stage 2 with {swap[0]} and {swap[1]} swapped in the prior", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
