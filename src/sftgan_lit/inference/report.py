"""The evaluation report: the summary table (markdown + JSON numbers) and the figure (per-category bars, crops)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes
from ..metrics import LOWER_IS_BETTER


def summary_table(rows: list[dict], variants: list[str], metrics: list[str]) -> tuple[str, dict]:
    cats = sorted({r["category"] for r in rows})
    summary: dict = {}
    for v in variants:
        mine = [r for r in rows if r["variant"] == v]
        summary[v] = {}
        for group in [*cats, "overall"]:
            sel = [r for r in mine if group == "overall" or r["category"] == group]
            if sel:
                summary[v][group] = {m: float(np.mean([r[m] for r in sel])) for m in metrics} | {"images": len(sel)}
    lines = []
    for m in metrics:
        lines.append(f"\n### {m}\n")
        lines.append("| category | images | " + " | ".join(v for v in variants) + " |")
        lines.append("| --- | --- |" + " --- |" * len(variants))
        for group in [*cats, "overall"]:
            vals = [summary[v].get(group, {}).get(m) for v in variants]
            n = summary[variants[0]].get(group, {}).get("images", 0)
            cells = [
                f"{x:.4f}" if m != "psnr_y" and x is not None else (f"{x:.2f}" if x is not None else "-") for x in vals
            ]
            label = f"**{group}**" if group == "overall" else group
            lines.append(f"| {label} | {n} | " + " | ".join(cells) + " |")
    return "\n".join(lines), summary


def benchmark_table(summary: dict, variants: list[str], metrics: list[str]) -> str:
    """One set's overall means in the papers' format: a row per method, a column per metric (arrows: better)."""
    labels = {"psnr_y": "PSNR-Y", "ssim_y": "SSIM-Y"}
    head = [f"{labels.get(m, m.upper())} {'↓' if m in LOWER_IS_BETTER else '↑'}" for m in metrics]
    lines = ["| method | " + " | ".join(head) + " |", "| --- |" + " --- |" * len(metrics)]
    for v in variants:
        overall = summary.get(v, {}).get("overall", {})
        cells = [
            "-" if m not in overall else f"{overall[m]:.2f}" if m == "psnr_y" else f"{overall[m]:.4f}" for m in metrics
        ]
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_figure(path: Path, summary: dict, variants: list[str], crops: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cats = [c for c in summary[variants[0]] if c != "overall"] + ["overall"]
    n_rows = 1 + len(crops)
    cols = 1 + len(variants)
    fig = plt.figure(figsize=(max(8, 2.2 * cols), 3.2 + 2.4 * len(crops)))
    ax = fig.add_subplot(n_rows, 1, 1)
    width = 0.8 / len(variants)
    x = np.arange(len(cats))
    for i, v in enumerate(variants):
        ax.bar(x + i * width, [summary[v].get(c, {}).get("psnr_y", np.nan) for c in cats], width, label=v)
    ax.set_xticks(x + width * (len(variants) - 1) / 2, cats)
    ax.set_ylabel("PSNR-Y (dB)")
    ax.legend(fontsize=8)
    lo = np.nanmin([summary[v][c]["psnr_y"] for v in variants for c in summary[v]])
    ax.set_ylim(max(0, lo - 3), None)
    for r, crop in enumerate(crops):
        panels = [(v, crop[v]) for v in variants] + [("HR", crop["hr"])]
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


def center_crop(img: np.ndarray, size: int) -> np.ndarray:
    h, w = img.shape[:2]
    y, x = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return img[y : y + size, x : x + size]
