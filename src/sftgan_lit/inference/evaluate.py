"""``eval.py`` / ``sftgan-eval``: score checkpoints and priors on an HR set and write a report.

Every (checkpoint, prior variant) pair super-resolves the same LR images (made from the HR with
``imresize`` x1/4 and rounded to 8 bits, or given as a paired LR folder) through the same tiled path
as ``predict.py``. Per image: PSNR-Y and SSIM-Y (``metrics.psnr_y`` / ``ssim_y``: 8-bit, Y of
BT.601, ``scale`` pixels of border cropped), LPIPS when its backbone weights are on disk, and the
image's category (majority class of its label map, or the OST folder). Written to ``out``:

- ``per_image.csv``: one row per image and variant;
- ``summary.md`` / ``summary.json``: mean per category and overall, variants side by side;
- ``report.png``: per-category bars and a few crops (bicubic, each variant, HR).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.io import atomic_write_bytes, read_image, read_label_map
from ..data.transforms import modcrop, to_float_chw
from ..imresize import imresize
from ..metrics import lpips_metric, psnr_y, ssim_y
from ..priors.base import Prior, PriorError
from .predict import INPUT_ERRORS, PriorSources, _lr_from, inputs_from_config, load_for_prior, pick_device, resolve_checkpoint
from .priors import EditedPrior, PriorMap, UniformPriorMap
from .tiling import super_resolve

log = logging.getLogger(__name__)


@dataclass
class Variant:
    """One column of the report: a checkpoint and a way to feed it the prior."""

    name: str
    checkpoint: str
    prior: str  # "prior" (the configured prior), "uniform" (no information) or "override:<class>"


def parse_variants(checkpoints: list[str], priors: list[str], prior: Prior | None = None) -> list[Variant]:
    """Checkpoints x ``["prior", "uniform", "override:building"]`` -> variants named ``<run>/<prior>``.

    A checkpoint is named by its run folder (``outputs/<date>/<time>/generator.pth`` -> ``<time>``), or
    ``#i`` when two names collide; with one checkpoint the variants are named by the prior alone. With
    ``prior`` given, an ``override:<class>`` naming none of its classes fails here, before any work."""
    if not checkpoints:
        raise ValueError("checkpoints is empty: give e.g. checkpoints=[/path/to/generator.pth]")
    names = [Path(str(c)).parent.name or Path(str(c)).stem if str(c) != "latest" else "latest" for c in checkpoints]
    if len(set(names)) < len(names):
        names = [f"#{i}" for i in range(len(names))]
    out = []
    for ck_name, path in zip(names, checkpoints):
        for p in priors:
            if p not in ("prior", "uniform") and not str(p).startswith("override:"):
                raise ValueError(f"compare_priors entry {p!r}: use prior, uniform or override:<class>")
            cls = str(p).split(":", 1)[-1]
            if str(p).startswith("override:") and prior is not None and cls not in prior.class_names:
                raise PriorError(f"compare_priors entry {p}: {cls!r} is not a class of prior={prior.name} ({', '.join(prior.class_names)})")
            name = p if len(checkpoints) == 1 else f"{ck_name}/{p}"
            out.append(Variant(name, str(path), str(p)))
    return out


def _variant_prior(base: PriorMap, variant: Variant, prior: Prior) -> PriorMap:
    if variant.prior == "prior":
        return base
    if variant.prior == "uniform":
        return UniformPriorMap(base.num_classes, base.lr_size, base.scale)
    cls = variant.prior.split(":", 1)[1]
    return EditedPrior(base, override=prior.class_names.index(cls))


def _category(labels_path: Path | None, num_classes: int, class_names) -> str:
    if labels_path is None:
        return "all"
    labels = read_label_map(labels_path, num_classes)
    counts = np.bincount(labels[labels != 255].ravel(), minlength=num_classes)
    return class_names[int(counts.argmax())] if counts.sum() else "void"


def _table(rows: list[dict], variants: list[Variant], metrics: list[str]) -> tuple[str, dict]:
    cats = sorted({r["category"] for r in rows})
    summary: dict = {}
    for v in variants:
        mine = [r for r in rows if r["variant"] == v.name]
        summary[v.name] = {}
        for group in [*cats, "overall"]:
            sel = [r for r in mine if group == "overall" or r["category"] == group]
            if sel:
                summary[v.name][group] = {m: float(np.mean([r[m] for r in sel])) for m in metrics} | {"images": len(sel)}
    lines = []
    for m in metrics:
        lines.append(f"\n### {m}\n")
        lines.append("| category | images | " + " | ".join(v.name for v in variants) + " |")
        lines.append("| --- | --- |" + " --- |" * len(variants))
        for group in [*cats, "overall"]:
            vals = [summary[v.name].get(group, {}).get(m) for v in variants]
            n = summary[variants[0].name].get(group, {}).get("images", 0)
            cells = [f"{x:.4f}" if m != "psnr_y" and x is not None else (f"{x:.2f}" if x is not None else "-") for x in vals]
            label = f"**{group}**" if group == "overall" else group
            lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines), summary


def _figure(path: Path, summary: dict, variants: list[Variant], crops: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = [c for c in summary[variants[0].name] if c != "overall"] + ["overall"]
    n_rows = 1 + len(crops)
    cols = 1 + len(variants)
    fig = plt.figure(figsize=(max(8, 2.2 * cols), 3.2 + 2.4 * len(crops)))
    ax = fig.add_subplot(n_rows, 1, 1)
    width = 0.8 / len(variants)
    x = np.arange(len(cats))
    for i, v in enumerate(variants):
        ax.bar(x + i * width, [summary[v.name].get(c, {}).get("psnr_y", np.nan) for c in cats], width, label=v.name)
    ax.set_xticks(x + width * (len(variants) - 1) / 2, cats)
    ax.set_ylabel("PSNR-Y (dB)")
    ax.legend(fontsize=8)
    lo = np.nanmin([summary[v.name][c]["psnr_y"] for v in variants for c in summary[v.name]])
    ax.set_ylim(max(0, lo - 3), None)
    for r, crop in enumerate(crops):
        panels = [(v.name, crop[v.name]) for v in variants] + [("HR", crop["hr"])]
        for c, (title, img) in enumerate(panels):
            a = fig.add_subplot(n_rows, cols, (r + 1) * cols + c + 1)
            a.imshow(img)
            a.set_title(f"{crop['name']}: {title}" if c == 0 else title, fontsize=8)
            a.axis("off")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


BICUBIC = Variant("bicubic", "-", "-")  # the MATLAB-bicubic x4 baseline, scored alongside every report


def _scores(image: str, category: str, v: Variant, sr: torch.Tensor, hr: torch.Tensor, scale: int, lpips) -> dict:
    row = {"image": image, "category": category, "variant": v.name, "checkpoint": v.checkpoint, "prior": v.prior,
           "psnr_y": float(psnr_y(sr, hr, scale)), "ssim_y": float(ssim_y(sr, hr, scale))}  # fmt: skip
    if lpips is not None:
        row["lpips"] = float(lpips(sr, hr))
    return row


def _center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[y : y + size, x : x + size]


def evaluate_files(
    files: list[Path],
    variants: list[Variant],
    sources: PriorSources,
    out: Path,
    lr_folder: Path | None = None,
    tile: int | None = 256,
    precision: str = "fp32",
    lpips_net: str | None = "alex",
    num_crops: int = 3,
    crop_size: int = 192,
    max_pixels: int = 64_000_000,
) -> tuple[dict, list[dict]]:
    """Score every variant on every file (HR); returns (summary, rows) and writes the report into ``out``."""
    device = sources.device
    prior = sources.prior
    generators = {}
    for v in variants:
        if v.checkpoint not in generators:
            generators[v.checkpoint] = load_for_prior(resolve_checkpoint(v.checkpoint), prior, device, key=f"checkpoints entry {v.checkpoint}")
    scale = next(iter(generators.values())).scale
    lpips, lpips_msg = lpips_metric(lpips_net) if lpips_net else (None, "LPIPS off (lpips_net=null)")
    log.info(lpips_msg)
    metrics = ["psnr_y", "ssim_y"] + (["lpips"] if lpips is not None else [])
    rows, crops, failures = [], [], {}
    for f in files:
        try:
            hr_full = read_image(f, max_pixels=max_pixels)
            if lr_folder is not None:
                lr_path = sources.partner(lr_folder, f, (f.suffix, ".png"), "LR image")
                lr = to_float_chw(read_image(lr_path, max_pixels=max_pixels))[None]
                hr = hr_full[: lr.shape[-2] * scale, : lr.shape[-1] * scale]
                if hr.shape[:2] != (lr.shape[-2] * scale, lr.shape[-1] * scale):
                    raise PriorError(f"{lr_path}: LR {lr.shape[-1]}x{lr.shape[-2]} x{scale} is larger than its HR {f}")
                hr_size = hr_full.shape[:2]
            else:
                lr, hr_size = _lr_from(hr_full, "hr", scale)
                hr = modcrop(hr_full, scale)
            base, _ = sources.build(f, lr, hr_size, scale)
            labels_path = sources.partner(sources.labels, f, (".png",), "label map") if sources.labels else None
            category = _category(labels_path, prior.num_classes, prior.class_names)
        except INPUT_ERRORS as err:
            failures[str(f)] = str(err)
            log.error("skipped %s: %s", f, err)
            continue
        hr_t = to_float_chw(hr)[None]
        images = {"bicubic": imresize(lr, scale).clamp(0, 1)}
        rows.append(_scores(f.name, category, BICUBIC, images["bicubic"], hr_t, scale, lpips))
        for v in variants:
            g = generators[v.checkpoint]
            pm = _variant_prior(base, v, prior) if g.uses_prior else None
            sr = super_resolve(g, lr, pm, tile, precision=precision, as_float=True)
            sr_t = torch.from_numpy(sr).permute(2, 0, 1)[None].clamp(0, 1)
            images[v.name] = sr_t
            rows.append(_scores(f.name, category, v, sr_t, hr_t, scale, lpips))
        if len(crops) < num_crops:
            to_img = lambda t: _center_crop((t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8), crop_size)  # noqa: E731
            crops.append({"name": f.stem, "hr": _center_crop(hr, crop_size), **{k: to_img(t) for k, t in images.items()}})
    if not rows:
        raise FileNotFoundError(f"no image could be evaluated; failures: {failures}")
    table, summary = _table(rows, [BICUBIC, *variants], metrics)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "per_image.csv", buf.getvalue().encode())
    header = [
        "# Evaluation report\n",
        f"- images: {len(files) - len(failures)} of {len(files)} ({len(failures)} failed)",
        "- variants: " + "; ".join(f"`{v.name}` = {v.checkpoint} with prior {v.prior}" for v in variants),
        f"- prior: {prior.describe()}",
        f"- LR: {'given (' + str(lr_folder) + ')' if lr_folder else 'imresize x1/' + str(scale) + ' of the modcropped HR, rounded to 8 bits'}",
        f"- metrics: PSNR-Y / SSIM-Y on 8-bit Y (BT.601), {scale} px border cropped; {lpips_msg}",
    ]
    atomic_write_bytes(out / "summary.md", ("\n".join(header) + "\n" + table + "\n").encode())
    atomic_write_bytes(out / "summary.json", json.dumps({"summary": summary, "failures": failures}, indent=1).encode())
    _figure(out / "report.png", summary, [BICUBIC, *variants], crops)
    return {"summary": summary, "failures": failures}, rows


def evaluate(cfg) -> tuple[dict, dict]:
    """Run ``conf/eval.yaml``; returns ``({"summary", "failures", "seconds"}, objects)``."""
    from hydra.utils import instantiate

    start = time.perf_counter()
    device = pick_device(cfg.device)
    prior: Prior = instantiate(cfg.prior)
    prior.check_ready()  # missing segmenter weights: one configuration error, not a failure per file
    variants = parse_variants(list(cfg.checkpoints), list(cfg.compare_priors), prior)
    files, labels = inputs_from_config(cfg)
    sources = PriorSources(prior, labels, Path(cfg.priors) if cfg.priors else None, cfg.segment_max_pixels,
                           cfg.segment_tile, cfg.segment_overlap, cfg.precision, device)  # fmt: skip
    result, rows = evaluate_files(
        files, variants, sources, Path(cfg.out), Path(cfg.lr_images) if cfg.lr_images else None, cfg.tile,
        cfg.precision, cfg.lpips_net, cfg.num_crops, cfg.crop_size, cfg.max_pixels,
    )  # fmt: skip
    result["seconds"] = time.perf_counter() - start
    return result, {"rows": rows, "variants": variants, "prior": prior, "files": files}
