"""The whole SFTGAN pipeline with no external weights: train a prior segmenter, prepare priors with it,
train SFTGAN on them, predict (``make pipeline``).

On the context demo scenes (``data/ambiguous.py``: textures identical at LR, bands whose order tells
the class from the whole image):

1. ``experiment=segmenter`` trains LR-ASPP on the LR of whole scenes; its held-out mean IoU, per-class
   IoU and calibration error are measured on the test split;
2. three SFT-Nets are trained identically (``experiment=prior_ablation``, pixel loss, small generator
   whose receptive field is a fraction of a scene) with the prior from the learned segmenter (its
   probabilities cached per whole image by the datamodule's prepare step), from the true labels, and
   with no prior (``sft=none``);
3. each is scored on the held-out scenes (PSNR-Y over the image, and on the ambiguous textured regions);
   the learned prior's share of the labels' gain over ``none`` is the target (>= 70%);
4. ``predict.py`` super-resolves a held-out scene with the learned prior.

Writes ``report.md`` and ``results.json`` to ``--out``.

    python -m sftgan_lit.experiments.learned_prior --out outputs/pipeline     (make pipeline)
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path

import torch

from ..config import compose_config
from ..metrics import psnr_y
from ..train import train
from .prior_ablation import evaluate as region_psnr

log = logging.getLogger(__name__)

SR_VARIANTS: dict[str, list[str]] = {
    "learned": ["sft=every_block", "prior=learned"],
    "labels": ["sft=every_block", "prior=ablation_labels"],
    "none": ["sft=none", "prior=ablation_labels"],
}
# For the test suite: tiny networks and data, a few steps; checks that the stages connect.
FAST_SEGMENTER = [
    "data.demo.num_train=8",
    "data.demo.num_val=2",
    "data.demo.num_test=2",
    "data.demo.size=64",
    "data.crop_size=64",
    "data.batch_size=4",
    "data.epoch_length=8",
    "trainer.max_steps=4",
]
FAST_SR = [
    "data.demo.num_train=8",
    "data.demo.num_val=2",
    "data.demo.num_test=2",
    "data.demo.size=64",
    "data.crop_size=32",
    "data.batch_size=4",
    "data.epoch_length=16",
    "model.generator.num_features=8",
    "model.generator.num_blocks=1",
    "model.generator.cond_channels=4",
    "model.generator.cond_hidden_channels=8",
    "model.generator.sft_hidden_channels=4",
    "trainer.max_steps=4",
    "module.scheduler.milestones=[3]",
]


@torch.no_grad()
def image_psnr(generator: torch.nn.Module, datamodule) -> float:
    """Mean PSNR-Y over the test images (``metrics.psnr_y``: 8-bit Y, 4 px border cropped)."""
    generator.eval()
    values = []
    for batch in datamodule.test_dataloader():
        batch = datamodule.on_after_batch_transfer(batch, 0)
        values.append(psnr_y(generator(batch["lr"], batch["prior"]).float(), batch["hr"]))
    return float(torch.cat([v.reshape(-1) for v in values]).mean())


def run_pipeline(out: str | Path, seg_overrides: Sequence[str] = (), sr_overrides: Sequence[str] = ()) -> dict:
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    quiet = ["trainer.enable_progress_bar=false", "logger=csv"]
    results: dict = {"segmenter": {}, "sr": {}}

    # 1. the segmenter
    t0 = time.perf_counter()
    cfg = compose_config(
        "train", ["experiment=segmenter", *quiet, *seg_overrides, f"paths.output_dir={out / 'segmenter'}"]
    )
    _, objects = train(cfg)
    seg_path = objects["export"]
    test = objects["trainer"].test(objects["module"], datamodule=objects["datamodule"], verbose=False)[0]
    results["segmenter"] = {
        "seconds": round(time.perf_counter() - t0, 1),
        "parameters": int(sum(p.numel() for p in objects["segmenter"].parameters())),
        "steps": int(cfg.trainer.max_steps),
        "test": {k: float(v) for k, v in test.items()},
        "weights": str(seg_path),
    }
    log.info("segmenter: %s", results["segmenter"])

    # 2-3. SFTGAN with the learned prior, the true labels, and no prior; scored on the test scenes
    export = {}
    for name, extra in SR_VARIANTS.items():
        t0 = time.perf_counter()
        weights = [f"prior.weights={seg_path}"] if name == "learned" else []
        cfg = compose_config(
            "train",
            [
                "experiment=prior_ablation",
                "data=context",
                *extra,
                *weights,
                *quiet,
                *sr_overrides,
                f"paths.output_dir={out / name}",
            ],
        )
        _, objects = train(cfg)
        dm = objects["datamodule"]
        dm.setup("test")
        g = objects["module"].eval_generator
        results["sr"][name] = {
            "seconds": round(time.perf_counter() - t0, 1),
            "psnr_y": image_psnr(g, dm),
            "psnr_y_ambiguous": region_psnr(g, dm)["ambiguous"],
        }
        export[name] = objects["export"]
        log.info("%s: %s", name, results["sr"][name])
    sr = results["sr"]
    for key in ("psnr_y", "psnr_y_ambiguous"):
        gain_labels = sr["labels"][key] - sr["none"][key]
        gain_learned = sr["learned"][key] - sr["none"][key]
        results[f"share_of_label_gain_{key}"] = gain_learned / gain_labels if gain_labels > 0 else float("nan")

    # 4. predict a held-out scene with the learned prior, as a user would
    from ..inference.predict import predict

    test_images = Path(dm.demo_root()) / "test" / "images"
    pcfg = compose_config(
        "predict",
        [
            f"images={test_images / '0000.png'}",
            "input=hr",
            "prior=learned",
            f"prior.weights={seg_path}",
            f"checkpoint={export['learned']}",
            f"out={out / 'predict'}",
            "save_prior=true",
            "progress=false",
            "overwrite=true",
        ],
    )
    report, _ = predict(pcfg)
    results["predict"] = [str(p) for p in report.written]
    (out / "results.json").write_text(json.dumps(results, indent=1))
    write_report(out, results)
    return results


def write_report(out: Path, results: dict) -> None:
    seg, sr = results["segmenter"], results["sr"]
    t = seg["test"]
    per_class = ", ".join(f"{k.split('/')[-1]} {v:.3f}" for k, v in t.items() if k.startswith("test/iou/"))
    lines = [
        "# Learned prior: segmenter -> priors -> SFTGAN -> predict",
        "",
        f"Segmenter: LR-ASPP MobileNetV3 ({seg['parameters']:,} parameters), {seg['steps']} steps, {seg['seconds']} s. "
        f"Held-out scenes: **mean IoU {t['test/miou']:.3f}** ({per_class}); pixel accuracy {t['test/acc']:.3f}; ECE {t['test/ece']:.3f}.",
        "",
        "SFT-Net trained identically with each prior; PSNR-Y (dB) on the held-out scenes (whole image, and the ambiguous "
        "textured regions):",
        "",
        "| prior | PSNR-Y | gain over none | PSNR-Y ambiguous | gain over none | train s |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("learned", "labels", "none"):
        r = sr[name]
        g1, g2 = r["psnr_y"] - sr["none"]["psnr_y"], r["psnr_y_ambiguous"] - sr["none"]["psnr_y_ambiguous"]
        lines.append(
            f"| {name} | {r['psnr_y']:.2f} | {g1:+.2f} | {r['psnr_y_ambiguous']:.2f} | {g2:+.2f} | {r['seconds']} |"
        )
    lines += [
        "",
        f"Learned prior's share of the labels' gain: **{results['share_of_label_gain_psnr_y']:.0%}** (whole image), "
        f"{results['share_of_label_gain_psnr_y_ambiguous']:.0%} (ambiguous regions); target >= 70%.",
        "",
        "Predicted with the learned prior: " + ", ".join(Path(p).name for p in results["predict"]),
    ]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Segmenter -> priors -> SFTGAN -> predict on the context demo scenes.")
    parser.add_argument("--out", default="outputs/pipeline")
    parser.add_argument(
        "--fast", action="store_true", help="the test suite's tiny version (checks the plumbing, not the targets)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    run_pipeline(args.out, FAST_SEGMENTER if args.fast else (), FAST_SR if args.fast else ())
    print((Path(args.out) / "report.md").read_text())
    print(f"total {time.perf_counter() - t0:.0f} s; report in {args.out}/report.md")


if __name__ == "__main__":
    main()
