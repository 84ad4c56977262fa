"""The report of ``python train.py experiment=demo_real``: the bicubic-trained and the degradation-trained
models on the held-out demo scenes, under a fixed, seeded set of test degradations.

The test LRs of each scene (``TEST_DEGRADATIONS``), all 8-bit as files would be:

- ``clean``: the paper's protocol (modcrop, MATLAB-bicubic x1/4, 8 bits), as the main job's report;
- ``JPEG q40`` / ``JPEG q75``: the clean LR saved as a JPEG by libjpeg (PIL) and read back;
- ``noise 5`` / ``noise 10``: Gaussian noise of that standard deviation (8-bit levels) on the clean LR;
- ``blur``: the HR blurred by an isotropic Gaussian of sigma 2 HR px before the bicubic x1/4 (camera blur);
- ``draw 1..3``: three draws of the run's own second-order model (``data.degradation`` of the degradation-trained
  stage), seeded by the scene and the draw number.

For each: PSNR-Y / SSIM-Y (whole image) of bicubic x4, both stages of both models, and the degradation-trained
model fed a uniform prior; PSNR-Y on the LR-ambiguous classes' regions; the texture statistic per class
(``demo_report.high_frequency``). The targets: the degradation-trained model beats the bicubic-trained one by
>= 1 dB PSNR-Y averaged over the degraded LRs, loses <= 0.7 dB on the clean LR, and its true prior beats the
uniform one by >= 1 dB PSNR-Y on the LR-ambiguous classes under degradation. Written to ``report.md``,
``report.json`` and ``report.png`` in the run folder; the markdown is printed.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from ..data.demo import PAIRS
from ..data.io import read_image, read_label_map
from ..data.transforms import lr_from_image, to_float_chw
from ..degradations import SecondOrder, bicubic_lr, bivariate_gaussian, filter2d, gaussian_noise
from ..files import atomic_write_bytes
from ..imresize import imresize
from ..inference import super_resolve
from ..metrics import psnr_y, ssim_y, y_8bit
from ..models import load_generator
from ..priors import UniformPriorMap
from .demo_report import erode, high_frequency

log = logging.getLogger(__name__)

SCALE = 4
CLEAN = "clean"


def _quantised(lr: torch.Tensor) -> torch.Tensor:
    return (lr.clamp(0, 1) * 255).round() / 255


def _jpeg_file(quality: int) -> Callable:
    def apply(clean: torch.Tensor, hr: torch.Tensor, seed: int) -> torch.Tensor:
        pixels = (clean[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(pixels).save(buf, format="JPEG", quality=quality)
        return to_float_chw(np.asarray(Image.open(buf).convert("RGB")))[None]

    return apply


def _noise(sigma: float) -> Callable:
    def apply(clean: torch.Tensor, hr: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return _quantised(clean + gaussian_noise(clean, sigma, False, g))

    return apply


def _blur(sigma: float) -> Callable:
    def apply(clean: torch.Tensor, hr: torch.Tensor, seed: int) -> torch.Tensor:
        kernel = torch.from_numpy(bivariate_gaussian(21, sigma, sigma, 0.0)).float()
        return _quantised(bicubic_lr(filter2d(hr, kernel), SCALE))

    return apply


TEST_DEGRADATIONS: dict[str, Callable | None] = {
    CLEAN: None,
    "JPEG q40": _jpeg_file(40),
    "JPEG q75": _jpeg_file(75),
    "noise 5": _noise(5.0),
    "noise 10": _noise(10.0),
    "blur": _blur(2.0),
    "draw 1": None,  # the run's second-order model (filled in by write_report)
    "draw 2": None,
    "draw 3": None,
}


def test_lrs(hr: torch.Tensor, clean: torch.Tensor, degradation, scene: int) -> dict[str, torch.Tensor]:
    """Every test LR ``(1, 3, h, w)`` of one scene: HR ``(1, 3, H, W)`` and its clean LR, ``degradation`` the
    run's second-order model (its draws seeded by the scene and the draw number)."""
    out = {}
    for k, (name, apply) in enumerate(TEST_DEGRADATIONS.items()):
        seed = 1000 * scene + k
        if name == CLEAN:
            out[name] = clean
        elif apply is not None:
            out[name] = apply(clean, hr, seed)
        else:
            from ..data.datamodule import collate

            params = collate([degradation.draw(np.random.default_rng([scene, k]))])
            out[name] = degradation(hr, params, training=False)[0]
    return out


def write_report(
    cfg,
    metrics: dict,
    objects: dict,
    split: str = "test",
    baseline: str = "gan",
    model: str = "real_gan",
    baseline_fidelity: str = "fidelity",
    model_fidelity: str = "real_fidelity",
    swap: tuple[str, str] | None = None,
    erode_px: int = 2,
    sigma: float = 1.0,
    crop: int = 48,
    textured_min: float = 10.0,
) -> dict:
    """Evaluate the run's exports on the demo's ``split`` under ``TEST_DEGRADATIONS`` and write the report.

    Args:
        cfg: the run's config (the report goes to ``cfg.paths.output_dir``).
        metrics: the run's metrics (``train``'s; not read).
        objects: ``train``'s objects: ``exports`` by stage, ``stages`` (the degradation-trained stage's datamodule
            holds the degradation model), ``prior``, ``datamodule`` (the demo set).
        split: the demo split reported on.
        baseline, baseline_fidelity, model, model_fidelity: the stages whose exports are the bicubic-trained and
            the degradation-trained models' GAN and pixel stages.
        swap: the main job's report key (``experiment=demo`` sets it; this report has no swapped prior).
        erode_px, sigma, textured_min: the texture statistic's settings, as the main job's report.
        crop: the figure's crop, HR pixels.

    Returns:
        The report as written to ``report.json``.
    """
    prior = objects["prior"]
    exports = objects["exports"]
    # the test draws are full second-order draws of the run's model (none of them the clean LR it may mix in)
    trained = objects["stages"][model]["datamodule"].degradation
    degradation = SecondOrder(SCALE, **{**asdict(trained.cfg), "clean_prob": 0.0, "kind": trained.name})
    names = list(prior.class_names)
    ambiguous = [names.index(c) for c in PAIRS]
    gens = {
        "bicubic-trained, stage 1": load_generator(exports[baseline_fidelity]),
        "bicubic-trained": load_generator(exports[baseline]),
        "degradation-trained, stage 1": load_generator(exports[model_fidelity]),
        "degradation-trained": load_generator(exports[model]),
    }
    variants = ["bicubic", *gens, "degradation-trained, uniform prior"]
    root = Path(objects["datamodule"].demo_root()) / split
    images = sorted((root / "images").glob("*.png"))
    tests = list(TEST_DEGRADATIONS)
    psnr = {t: {v: [] for v in variants} for t in tests}
    ssim = {t: {v: [] for v in variants} for t in tests}
    amb = {t: {v: [0.0, 0] for v in variants} for t in tests}
    # high-frequency energy per test LR, variant and class: [sum, pixels]
    energy = {t: {v: np.zeros((len(names), 2)) for v in ("HR", *variants)} for t in tests}
    errors = {t: {v: np.zeros((len(names), 2)) for v in variants} for t in tests}  # squared Y error per class
    figure: dict = {}
    for scene, path in enumerate(images):
        hr8 = read_image(path)
        labels = read_label_map(root / "labels" / path.name, len(names))
        clean, _ = lr_from_image(hr8, "hr", SCALE)
        h, w = clean.shape[-2] * SCALE, clean.shape[-1] * SCALE
        hr = to_float_chw(hr8[:h, :w])[None]
        labels = labels[:h, :w]
        pm, _ = prior.image_map(clean, SCALE, labels=labels)
        uniform = UniformPriorMap(len(names), tuple(clean.shape[-2:]), SCALE)
        y_hr = y_8bit(hr)[0, 0].numpy()
        classes = [labels == c for c in range(len(names))]
        masks = [erode(m, erode_px) for m in classes]
        region = np.any([masks[c] for c in ambiguous], axis=0)
        hf_hr = high_frequency(y_hr, sigma)
        for t, lr in test_lrs(hr, clean, degradation, scene).items():
            outs = {"bicubic": imresize(lr, SCALE).clamp(0, 1)}
            for v, g in gens.items():
                outs[v] = _sr(g, lr, pm)
            outs["degradation-trained, uniform prior"] = _sr(gens["degradation-trained"], lr, uniform)
            for v, img in (("HR", hr), *outs.items()):
                y = y_8bit(img)[0, 0].numpy()
                hf = hf_hr if v == "HR" else high_frequency(y, sigma)
                energy[t][v] += [[hf[m].sum(), m.sum()] for m in masks]
                if v == "HR":
                    continue
                sq = (y - y_hr) ** 2
                errors[t][v] += [[sq[m].sum(), m.sum()] for m in classes]
                psnr[t][v].append(float(psnr_y(img, hr, SCALE)))
                ssim[t][v].append(float(ssim_y(img, hr, SCALE)))
                amb[t][v][0] += float(sq[region].sum())
                amb[t][v][1] += int(region.sum())
            if scene == 0:
                figure[t] = (lr, {**outs, "HR": hr})
    rows = {t: {v: float(np.mean(psnr[t][v])) for v in variants} for t in tests}
    ssims = {t: {v: float(np.mean(ssim[t][v])) for v in variants} for t in tests}
    amb_psnr = {
        t: {v: float(10 * np.log10(255.0**2 / max(s / max(n, 1), 1e-10))) for v, (s, n) in amb[t].items()}
        for t in tests
    }
    degraded = [t for t in tests if t != CLEAN]
    hr_energy = energy[CLEAN]["HR"]
    present = [c for c in range(len(names)) if hr_energy[c, 1]]
    # the texture statistic per class over the degraded LRs; the flat classes' (HR statistic under
    # textured_min: sky, calm water), per test LR: the noise and blocks a model leaves where there is nothing to draw
    summed = {v: sum(energy[t][v] for t in degraded) for v in ("HR", *variants)}
    texture = {v: {names[c]: float(e[c, 0] / e[c, 1]) for c in present} for v, e in summed.items()}
    flat = [c for c in present if hr_energy[c, 0] / hr_energy[c, 1] < textured_min]
    # where the error is: each class's PSNR-Y and share of the squared error, over the degraded LRs
    per_class = {}
    for v in ("bicubic-trained", "degradation-trained"):
        e = sum(errors[t][v] for t in degraded)
        per_class[v] = {
            names[c]: {
                "psnr_y": float(10 * np.log10(255.0**2 / max(e[c, 0] / e[c, 1], 1e-10))),
                "error_share": float(e[c, 0] / e[:, 0].sum()),
            }
            for c in present
        }
    flat_noise = {
        t: {v: float(energy[t][v][flat, 0].sum() / max(energy[t][v][flat, 1].sum(), 1)) for v in variants}
        for t in tests
    }
    targets = _targets(rows, amb_psnr, flat_noise, degraded)
    report = {
        "split": split,
        "images": len(images),
        "tests": tests,
        "degradation": trained.describe(),
        "psnr_y": rows,
        "ssim_y": ssims,
        "psnr_y_ambiguous": amb_psnr,
        "texture": texture,
        "per_class": per_class,
        "flat_classes": [names[c] for c in flat],
        "flat_noise": flat_noise,
        "targets": targets,
        "exports": {k: str(v) for k, v in exports.items()},
    }
    out = Path(cfg.paths.output_dir)
    md = _markdown(report, variants, [names[c] for c in present], degraded)
    atomic_write_bytes(out / "report.md", md.encode())
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
    _figure(out / "report.png", figure, crop)
    print(md)
    return report


def _sr(generator, lr: torch.Tensor, prior_map) -> torch.Tensor:
    sr = super_resolve(generator, lr, prior_map, tile=None, as_float=True)
    return torch.from_numpy(sr).permute(2, 0, 1)[None].clamp(0, 1)


def _mean(rows: dict, tests: list[str], v: str) -> float:
    return float(np.mean([rows[t][v] for t in tests]))


def _targets(rows: dict, amb: dict, flat: dict, degraded: list[str]) -> list[dict]:
    gain = _mean(rows, degraded, "degradation-trained") - _mean(rows, degraded, "bicubic-trained")
    loss = rows[CLEAN]["bicubic-trained"] - rows[CLEAN]["degradation-trained"]
    prior_gain = _mean(amb, degraded, "degradation-trained") - _mean(
        amb, degraded, "degradation-trained, uniform prior"
    )
    noise = {v: _mean(flat, degraded, v) for v in ("bicubic-trained", "degradation-trained")}
    return [
        {
            "target": "degradation-trained beats bicubic-trained by >= 1 dB PSNR-Y, mean over the degraded LRs",
            "value": f"{gain:+.2f} dB",
            "met": bool(gain >= 1.0),
        },
        {
            "target": "degradation-trained loses <= 0.7 dB PSNR-Y to bicubic-trained on the clean LR",
            "value": f"{loss:+.2f} dB lost",
            "met": bool(loss <= 0.7),
        },
        {
            "target": "true prior beats uniform prior by >= 1 dB PSNR-Y on the LR-ambiguous classes, degraded LRs",
            "value": f"{prior_gain:+.2f} dB",
            "met": bool(prior_gain >= 1.0),
        },
        {
            "target": "degradation-trained leaves at most half the bicubic-trained model's noise in the flat classes, "
            "degraded LRs",
            "value": f"{noise['degradation-trained']:.2f} vs {noise['bicubic-trained']:.2f}",
            "met": bool(noise["degradation-trained"] <= 0.5 * noise["bicubic-trained"]),
        },
    ]


def _table(title: str, values: dict, variants: list[str], degraded: list[str], fmt: str) -> list[str]:
    lines = [title, "", "| test LR | " + " | ".join(variants) + " |", "| --- |" + " --- |" * len(variants)]
    for t, row in values.items():
        lines.append(f"| {t} | " + " | ".join(format(row[v], fmt) for v in variants) + " |")
    mean = " | ".join(format(_mean(values, degraded, v), fmt) for v in variants)
    return [*lines, f"| **mean, degraded** | {mean} |", ""]


def _markdown(report: dict, variants: list[str], present: list[str], degraded: list[str]) -> str:
    lines = [
        f"# Real-world demo report: {report['images']} held-out scenes ({report['split']} split)",
        "",
        f"Degradation-trained on `{report['degradation']}`; test LRs: {', '.join(report['tests'])}.",
        "",
    ]
    lines += _table("PSNR-Y (dB), whole images:", report["psnr_y"], variants, degraded, ".2f")
    lines += _table("SSIM-Y:", report["ssim_y"], variants, degraded, ".4f")
    lines += _table(
        "PSNR-Y (dB) on the LR-ambiguous classes' regions:", report["psnr_y_ambiguous"], variants, degraded, ".2f"
    )
    lines += _table(
        f"Residual noise in the flat classes ({', '.join(report['flat_classes'])}): their mean high-frequency "
        "energy of 8-bit Y (the HR's is "
        f"{np.mean([report['texture']['HR'][c] for c in report['flat_classes']]):.1f}):",
        report["flat_noise"],
        variants,
        degraded,
        ".1f",
    )
    texture = report["texture"]
    shown = ["HR", "bicubic", "bicubic-trained", "degradation-trained", "degradation-trained, uniform prior"]
    lines += [
        "Texture statistic (high-frequency energy of 8-bit Y, as the main job's report), mean over each class's "
        "pixels and over the degraded LRs:",
        "",
        "| class | " + " | ".join(shown) + " |",
        "| --- |" + " --- |" * len(shown),
    ]
    lines += [f"| {c} | " + " | ".join(f"{texture[v][c]:.1f}" for v in shown) + " |" for c in present]
    pc = report["per_class"]
    lines += [
        "",
        "Where the error is, over the degraded LRs: each class's PSNR-Y (dB) and share of the squared Y error:",
        "",
        "| class | bicubic-trained | share | degradation-trained | share |",
        "| --- | --- | --- | --- | --- |",
    ]
    lines += [
        f"| {c} | {pc['bicubic-trained'][c]['psnr_y']:.2f} | {pc['bicubic-trained'][c]['error_share']:.0%} | "
        f"{pc['degradation-trained'][c]['psnr_y']:.2f} | {pc['degradation-trained'][c]['error_share']:.0%} |"
        for c in present
    ]
    lines += ["", "| target | measured | met |", "| --- | --- | --- |"]
    lines += [f"| {t['target']} | {t['value']} | {'yes' if t['met'] else 'NO'} |" for t in report["targets"]]
    return "\n".join(lines) + "\n"


FIGURE_TESTS = ("JPEG q40", "noise 10", "blur", "draw 1")
FIGURE_ROWS = ("degraded LR", "bicubic", "bicubic-trained", "degradation-trained", "HR")


def _figure(path: Path, figure: dict, crop: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    H, W = figure[CLEAN][1]["HR"].shape[-2:]
    y0, x0 = (H - crop) // 2 // SCALE * SCALE, (W - crop) // 2 // SCALE * SCALE
    fig, axes = plt.subplots(
        len(FIGURE_ROWS), len(FIGURE_TESTS), figsize=(2.0 * len(FIGURE_TESTS), 2.0 * len(FIGURE_ROWS))
    )
    for col, t in enumerate(FIGURE_TESTS):
        lr, outs = figure[t]
        imgs = {"degraded LR": F.interpolate(lr, scale_factor=SCALE, mode="nearest"), **outs}
        for row, name in enumerate(FIGURE_ROWS):
            ax = axes[row, col]
            window = imgs[name][0, :, y0 : y0 + crop, x0 : x0 + crop].permute(1, 2, 0).numpy()
            ax.imshow(window.clip(0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title(t, fontsize=8)
            if col == 0:
                ax.set_ylabel(name, fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
