"""The prior ablation: does the categorical prior let the generator draw the right texture where the
LR alone cannot tell, and is SFT a better way to inject it than concatenation or per-image FiLM?

Five models, identical except for how the prior enters (``sft``, ``concat``, ``film``, ``none``, and
``sft`` fed a uniform prior), are trained with ``experiment=prior_ablation`` (pixel loss, same seed and
budget) on scenes whose classes are identical at LR (``data/ambiguous.py``), plus a short run of the
GAN recipe. Each is evaluated on held-out scenes: PSNR-Y on the ambiguous regions (the textured
classes, away from region boundaries), per class and on flat regions; and for ``sft`` a swap test:
the same LR with the prior of class A vs class B, measuring how much of each class's texture the
output contains. Writes ``report.md``, ``report.png`` and ``results.json``.

    python -m sftgan_lit.experiments.prior_ablation --out outputs/ablation      (make ablation)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..config import compose_config
from ..data.ambiguous import AMBIGUOUS_CLASSES, pattern
from ..imresize import imresize
from ..metrics import y_8bit
from ..train import train

log = logging.getLogger(__name__)

VARIANTS: dict[str, list[str]] = {
    "sft": ["sft=every_block"],
    "concat": ["sft=concat"],
    "film": ["sft=film"],
    "none": ["sft=none"],
    "sft_uniform": ["sft=every_block", "prior=ablation_uniform"],
}
# The perceptual setting: the same model with D, GAN and category terms on top of the pixel loss.
GAN_VARIANT = [
    "sft=every_block",
    "loss=sftgan",
    "module.objective.w_pix=1.0",
    "module.objective.perceptual.required=false",
    "module.use_discriminator=true",
    "model.discriminator.input_size=48",
]
# Smaller, for the test suite: about a minute for two models on 2 CPU cores.
FAST = [
    "data.demo.num_train=24",
    "data.demo.num_test=6",
    "data.demo.num_val=2",
    "data.demo.size=64",
    "data.crop_size=32",
    "data.epoch_length=1600",
    "model.generator.num_features=16",
    "model.generator.num_blocks=2",
    "model.generator.cond_channels=8",
    "model.generator.cond_hidden_channels=16",
    "model.generator.sft_hidden_channels=8",
    "trainer.max_steps=700",
    "module.scheduler.milestones=[550]",
    "model.discriminator.input_size=32",
]
BORDER = 4  # the x4 literature's crop, and the reach of bicubic padding effects at the image edge
ERODE = 2  # HR pixels kept away from region boundaries, where a texture's class is mixed


def compose_cfg(overrides: Sequence[str]):
    return compose_config("train", ["experiment=prior_ablation", *overrides])


def region_masks(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(N, C, H, W) bool: pixels of each class at least ERODE pixels from another class and BORDER from the edge."""
    onehot = F.one_hot(labels.long(), num_classes).permute(0, 3, 1, 2).float()
    k = 2 * ERODE + 1
    interior = -F.max_pool2d(-onehot, k, 1, ERODE) > 0.5  # erosion
    interior[..., :BORDER, :] = interior[..., -BORDER:, :] = False
    interior[..., :BORDER] = interior[..., -BORDER:] = False
    return interior


@torch.no_grad()
def evaluate(generator: torch.nn.Module, datamodule) -> dict:
    """Pooled PSNR-Y over the held-out scenes: on ambiguous regions (textured classes), per class, overall."""
    generator.eval()
    sq = torch.zeros(len(AMBIGUOUS_CLASSES), dtype=torch.float64)
    cnt = torch.zeros(len(AMBIGUOUS_CLASSES), dtype=torch.float64)
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer(batch, 0)
        sr = generator(batch["lr"], batch["prior"]).float()
        err = (y_8bit(sr)[:, 0] - y_8bit(batch["hr"])[:, 0]) ** 2
        masks = region_masks(batch["labels"], len(AMBIGUOUS_CLASSES))
        for c in range(len(AMBIGUOUS_CLASSES)):
            sq[c] += err[masks[:, c]].sum()
            cnt[c] += masks[:, c].sum()

    def psnr(s, n):
        return float(10 * torch.log10(255.0**2 / (s / n.clamp_min(1))))

    out = {"ambiguous": psnr(sq[1:].sum(), cnt[1:].sum()), "pixels_ambiguous": int(cnt[1:].sum())}
    out.update({name: psnr(sq[c], cnt[c]) for c, name in enumerate(AMBIGUOUS_CLASSES)})
    return out


@torch.no_grad()
def swap_test(generator: torch.nn.Module, datamodule) -> dict:
    """Same LR, prior of one textured class everywhere: the output's texture content for each class.

    ``score[a][b]`` = mean over test images of ``<Y_sr, pattern_b> / <Y_base, 1>`` on the interior,
    i.e. the fraction of the class-``b`` texture present (1.0 = the full training amplitude would give
    ``amplitude``), when the prior says class ``a``.
    """
    generator.eval()
    classes = range(1, len(AMBIGUOUS_CLASSES))
    scores = {AMBIGUOUS_CLASSES[a]: {AMBIGUOUS_CLASSES[b]: 0.0 for b in classes} for a in classes}
    n = 0
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer(batch, 0)
        lr = batch["lr"]
        h, w = batch["hr"].shape[-2:]
        base = imresize(lr.double(), 4)[:, :, BORDER:-BORDER, BORDER:-BORDER].mean(1)  # smooth brightness
        for a in classes:
            prior = torch.zeros(lr.shape[0], len(AMBIGUOUS_CLASSES), h, w)
            prior[:, a] = 1
            sr = generator(lr, prior).double().clamp(0, 1).mean(1)[:, BORDER:-BORDER, BORDER:-BORDER]
            for b in classes:
                p = torch.from_numpy(pattern(b, h, w)).double()[BORDER:-BORDER, BORDER:-BORDER]
                s = ((sr * p).flatten(1).sum(1) / base.flatten(1).sum(1)).sum().item()
                scores[AMBIGUOUS_CLASSES[a]][AMBIGUOUS_CLASSES[b]] += s
        n += lr.shape[0]
    return {a: {b: v / n for b, v in row.items()} for a, row in scores.items()}


def _bicubic(datamodule) -> dict:
    class Bicubic(torch.nn.Module):
        def forward(self, lr, prior):
            return imresize(lr, 4)

    return evaluate(Bicubic(), datamodule)


def run_ablation(
    out: str | Path, overrides: Sequence[str] = (), variants: dict[str, list[str]] | None = None, gan: bool = True
) -> dict:
    """Train every variant, evaluate, and write ``report.md``, ``report.png``, ``results.json`` to ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    variants = dict(VARIANTS if variants is None else variants)
    if gan:
        variants["sft_gan"] = GAN_VARIANT
    results: dict = {"models": {}, "overrides": list(overrides)}
    generators = {}
    dm = None
    for name, extra in variants.items():
        cfg = compose_cfg([*extra, *overrides, f"paths.output_dir={out / name}", "trainer.enable_progress_bar=false"])
        t0 = time.perf_counter()
        metrics, objects = train(cfg)
        g = objects["module"].eval_generator
        dm_run = objects["datamodule"]
        dm_run.setup("test")
        results["models"][name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "parameters": int(sum(p.numel() for p in g.parameters())),
            "psnr_y": evaluate(g, dm_run),
            "final_train_g_pix": metrics.get("train/g_pix"),
        }
        generators[name] = (g, dm_run)
        if name == "sft":
            results["swap_test"] = swap_test(g, dm_run)
            dm = dm_run
        log.info("%s: %s", name, results["models"][name])
    if dm is None:
        dm = next(iter(generators.values()))[1]
    results["bicubic"] = _bicubic(dm)
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_report(out, results)
    write_figure(out, results, generators, dm)
    return results


def write_report(out: Path, results: dict) -> None:
    names = list(results["models"])
    cls = AMBIGUOUS_CLASSES
    lines = [
        "# Prior ablation",
        "",
        "PSNR-Y (dB) on held-out scenes, pooled over pixels; *ambiguous* = the textured classes, "
        f"{ERODE} px away from region boundaries, {BORDER} px border cropped.",
        "",
        "| model | parameters | train s | ambiguous | " + " | ".join(cls) + " |",
        "| --- | --- | --- | --- | " + " | ".join("---" for _ in cls) + " |",
    ]
    for n in names:
        m = results["models"][n]
        lines.append(
            f"| {n} | {m['parameters']:,} | {m['seconds']} | **{m['psnr_y']['ambiguous']:.2f}** | "
            + " | ".join(f"{m['psnr_y'][c]:.2f}" for c in cls)
            + " |"
        )
    b = results["bicubic"]
    lines.append(f"| bicubic | - | - | {b['ambiguous']:.2f} | " + " | ".join(f"{b[c]:.2f}" for c in cls) + " |")
    if "swap_test" in results:
        sw = results["swap_test"]
        lines += [
            "",
            "Swap test (`sft`): the same LR with the prior of one class everywhere; texture content of each "
            "class in the output (relative to the brightness; the training amplitude is 0.3).",
            "",
            "| prior says | " + " | ".join(sw) + " |",
            "| --- | " + " | ".join("---" for _ in sw) + " |",
        ]
        for a, row in sw.items():
            lines.append(f"| {a} | " + " | ".join(f"{v:+.3f}" for v in row.values()) + " |")
    (out / "report.md").write_text("\n".join(lines) + "\n")


@torch.no_grad()
def write_figure(out: Path, results: dict, generators: dict, dm) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(results["models"])
    fig = plt.figure(figsize=(14, 9))
    ax = fig.add_axes((0.06, 0.58, 0.9, 0.36))
    groups = ["ambiguous", *AMBIGUOUS_CLASSES]
    width = 0.8 / (len(names) + 1)
    for i, n in enumerate([*names, "bicubic"]):
        vals = [results["bicubic"][g] if n == "bicubic" else results["models"][n]["psnr_y"][g] for g in groups]
        ax.bar(np.arange(len(groups)) + i * width, vals, width, label=n)
    ax.set_xticks(np.arange(len(groups)) + width * len(names) / 2, groups)
    ax.set_ylabel("PSNR-Y (dB)")
    ax.legend(ncol=len(names) + 1, fontsize=8, loc="upper right")
    ax.set_title("Prior ablation on held-out ambiguous scenes")
    batch = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    crop = slice(8, 56)
    panels = [("LR (bicubic)", imresize(batch["lr"][:1], 4)), ("HR", batch["hr"][:1])]
    for n in names:
        g, dmn = generators[n]
        b = dmn.on_after_batch_transfer(next(iter(dmn.test_dataloader())), 0)
        panels.append((n, g(b["lr"][:1], b["prior"][:1]).float()))
    for i, (title, img) in enumerate(panels):
        a = fig.add_axes((0.01 + i * 0.98 / len(panels), 0.05, 0.96 / len(panels), 0.42))
        a.imshow(img[0].clamp(0, 1).permute(1, 2, 0)[crop, crop].numpy(), interpolation="nearest")
        a.set_title(title, fontsize=9)
        a.axis("off")
    fig.savefig(out / "report.png", dpi=110)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train and compare the prior ablation's models; write the report.")
    parser.add_argument("--out", default="outputs/ablation")
    parser.add_argument("--fast", action="store_true", help="the test suite's small version")
    parser.add_argument("--no-gan", action="store_true", help="skip the short GAN-recipe run")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help=f"comma-separated models to train, of {', '.join(VARIANTS)} (e.g. sft,none,sft_uniform for another backbone)",
    )
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every model, e.g. seed=1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown or not names:
        parser.error(f"--variants {args.variants}: {', '.join(unknown) or 'empty'}; choose from {', '.join(VARIANTS)}")
    t0 = time.perf_counter()
    overrides = [*(FAST if args.fast else []), *args.overrides]
    results = run_ablation(args.out, overrides, {n: VARIANTS[n] for n in names}, gan=not args.no_gan)
    print((Path(args.out) / "report.md").read_text())
    print(f"total {time.perf_counter() - t0:.0f} s; report in {args.out}/report.md, figure {args.out}/report.png")
    del results


if __name__ == "__main__":
    main()
