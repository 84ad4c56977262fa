"""Priors beyond categories, measured: does a continuous degradation channel stacked after the classes let one
SFT network remove as much noise as the user dials, and does a blind estimator of that channel do as well as
knowing it?

Trained on the embedded demo scenes with ``degradation=mapped`` (blur, bicubic, noise, JPEG; each sample's
strengths known per pixel), pixel loss, same seed and budget (``experiment=prior_ablation``'s recipe):

- ``semantic+degradation``: ``prior=[labels,degradation]``, SFT conditioned on the classes and the three maps;
- ``semantic``: ``prior=labels``, the classes only;
- ``none``: ``sft=none``, no prior;
- the estimator: ``experiment=degradation_estimator``, the maps from the LR alone.

Evaluated on the held-out demo scenes under fixed test degradations (``TESTS``; each a parameter set of the same
degradation model, so its true map is known): PSNR-Y (border 4), the residual noise left in flat regions (the
mean high-frequency energy of the output's Y where the HR is flat: sky, calm water), and the texture statistic
on the LR-ambiguous classes (the same energy on their regions, the HR's for reference). Two tables more:

- **the denoise control**: one noisy LR (``noise 15``), the noise channel dialled over its range, 0 to 50 levels (the other
  channels at their true values): the residual noise must fall as the dial rises (monotonically), and the
  estimated map must give PSNR-Y within 0.3 dB of the true one;
- **the swap test** for the continuous channel: the LR with noise 5 given the map of noise 25 and the reverse;
  the output's residual noise must move with the map it is given.

    python -m sftgan_lit.experiments.degradation_prior --out outputs/degradation_prior   (make degradation_prior)
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..config import compose_config
from ..data.demo import PAIRS
from ..data.io import read_image, read_label_map
from ..data.transforms import lr_from_image, to_float_chw
from ..degradations import Mapped, bivariate_gaussian
from ..degradations.kernels import pulse
from ..files import atomic_write_bytes
from ..imresize import imresize
from ..inference import super_resolve
from ..metrics import psnr_y, y_8bit
from ..models import load_generator
from ..train import train
from .demo_report import erode, high_frequency

log = logging.getLogger(__name__)

SCALE = 4
COMMON = [
    "data=demo",
    "prior=labels",
    "degradation=mapped",
    "data.crop_size=48",
    "data.batch_size=16",
    "data.epoch_length=4800",
    "data.num_workers=0",
    "data.persistent_workers=false",
]
VARIANTS: dict[str, list[str]] = {
    "semantic+degradation": ["prior=[labels,degradation]"],
    "semantic": [],
    "none": ["sft=none"],
}
ESTIMATOR = ["experiment=degradation_estimator"]
# Smaller, for the test suite.
FAST = [
    "data.demo.size=64",
    "data.demo.num_train=12",
    "data.demo.num_val=2",
    "data.demo.num_test=2",
    "data.demo.num_background=2",
    "data.crop_size=32",
    "data.batch_size=4",
    "data.epoch_length=80",
    "trainer.max_steps=20",
]
FAST_MODEL = [
    "model.generator.num_features=8",
    "model.generator.num_blocks=2",
    "model.generator.cond_channels=4",
    "model.generator.cond_hidden_channels=8",
    "model.generator.sft_hidden_channels=4",
]
FAST_ESTIMATOR = ["model.estimator.num_features=8", "model.estimator.num_blocks=1"]

#: the test degradations: (blur_sigma LR px, noise at one side, noise at the other, JPEG quality or None)
TESTS: dict[str, tuple[float, float, float, float | None]] = {
    "clean": (0.0, 0.0, 0.0, None),
    "noise 5": (0.0, 5.0, 5.0, None),
    "noise 15": (0.0, 15.0, 15.0, None),
    "noise 25": (0.0, 25.0, 25.0, None),
    "noise 40": (0.0, 40.0, 40.0, None),
    "noise 0-25 ramp": (0.0, 0.0, 25.0, None),
    "JPEG q40": (0.0, 0.0, 0.0, 40.0),
    "blur 0.6 + noise 10": (0.6, 10.0, 10.0, None),
    "noise 10 + JPEG q60": (0.0, 10.0, 10.0, 60.0),
}
DIAL = (0.0, 5.0, 10.0, 15.0, 20.0, 30.0, 40.0, 50.0)
DIAL_TEST = "noise 15"
SWAP = ("noise 5", "noise 25")
ERODE = 2
SIGMA = 1.0
TEXTURED_MIN = 10.0  # the HR statistic under which a class is flat (as the demo reports)


def test_params(degradation: Mapped, test: str, seed: int) -> dict:
    """``Mapped``'s collated parameters (one sample) of test degradation ``test``, its noise seeded by ``seed``."""
    blur, a, b, quality = TESTS[test]
    k = degradation.kernel_size
    kernel = bivariate_gaussian(k, blur * SCALE, blur * SCALE, 0.0) if blur > 0 else pulse(k)
    f = lambda v: torch.tensor([float(v)])
    return {
        "kernel": torch.from_numpy(kernel.astype(np.float32))[None],
        "blur_sigma": f(blur),
        "noise_a": f(a),
        "noise_b": f(b),
        "theta": f(0.0),  # a ramp from left to right
        "jpeg": torch.tensor([quality is not None]),
        "jpeg_quality": f(quality if quality is not None else 100.0),
        "seed": torch.tensor([seed], dtype=torch.int64),
    }


def score(sr: torch.Tensor, hr: torch.Tensor, flat: np.ndarray, amb: np.ndarray, into: dict) -> None:
    """Add ``sr``'s PSNR-Y against ``hr`` (when ``into`` keeps one), its high-frequency energy on the ``flat`` mask
    (residual noise) and on the ``amb`` mask (the texture statistic, when kept) to ``into``'s sums."""
    y = y_8bit(sr)[0, 0].numpy()
    hf = high_frequency(y, SIGMA)
    if "psnr" in into:
        into["psnr"].append(float(psnr_y(sr, hr, SCALE)))
    into["flat"][0] += float(hf[flat].sum())
    into["flat"][1] += int(flat.sum())
    if "amb" in into:
        into["amb"][0] += float(hf[amb].sum())
        into["amb"][1] += int(amb.sum())


def _sr(generator, lr: torch.Tensor, prior_map) -> torch.Tensor:
    sr = super_resolve(generator, lr, prior_map, tile=None, as_float=True)
    return torch.from_numpy(sr).permute(2, 0, 1)[None].clamp(0, 1)


def run(out: str | Path, overrides: Sequence[str] = (), fast: bool = False, train_models: bool = True) -> dict:
    """Train the three models and the estimator into ``out`` (``train_models=False``: take the exports already
    there), evaluate them and write the report."""
    out = Path(out)
    extra = [*(FAST if fast else [])]
    runs = {name: [*variant, *(FAST_MODEL if fast else [])] for name, variant in VARIANTS.items()}
    exports = {name: out / name.replace("+", "_") / "generator.pth" for name in VARIANTS}
    exports["estimator"] = out / "estimator" / "estimator.pth"
    seconds: dict[str, float] = {}
    common = ["experiment=prior_ablation", *COMMON]
    for name, variant in runs.items() if train_models else ():
        t0 = time.perf_counter()
        cfg = compose_config(
            "train",
            [
                *common,
                *extra,
                *variant,
                *overrides,
                f"paths.output_dir={exports[name].parent}",
                "trainer.enable_progress_bar=false",
            ],
        )
        train(cfg)
        seconds[name] = time.perf_counter() - t0
    est_cfg = compose_config(
        "train",
        [
            *ESTIMATOR,
            "data.num_workers=0",
            "data.persistent_workers=false",
            *extra,
            *(FAST_ESTIMATOR if fast else []),
            *overrides,
            f"paths.output_dir={exports['estimator'].parent}",
            "trainer.enable_progress_bar=false",
        ],
    )
    if train_models:
        t0 = time.perf_counter()
        _, objects = train(est_cfg)
        seconds["estimator"] = time.perf_counter() - t0
        datamodule = objects["datamodule"]
    else:
        from hydra.utils import instantiate

        missing = [str(p) for p in exports.values() if not p.is_file()]
        if missing:
            raise FileNotFoundError(
                f"--report-only: no exports {', '.join(missing)}; train first (without --report-only)"
            )
        datamodule = instantiate(est_cfg.data, prior=instantiate(est_cfg.prior), scale=SCALE)
    report = evaluate(exports, Path(datamodule.demo_root()) / "test")
    if seconds:
        report["train_seconds"] = seconds
    md = markdown(report)
    atomic_write_bytes(out / "report.md", md.encode())
    atomic_write_bytes(out / "report.json", json.dumps(report, indent=1).encode())
    return report


def evaluate(exports: dict[str, Path], root: Path) -> dict:
    """The report's numbers on the demo split in ``root`` (its ``images/`` and ``labels/``; module docstring)."""
    from hydra.utils import instantiate

    stack_prior = instantiate(compose_config("train", ["prior=[labels,degradation]"]).prior)
    stack_prior.estimator = str(exports["estimator"])
    labels_prior = instantiate(compose_config("train", ["prior=labels"]).prior)
    degradation = Mapped(SCALE)
    gens = {v: load_generator(exports[v]) for v in VARIANTS}
    names = list(labels_prior.class_names)
    ambiguous = [names.index(c) for c in PAIRS]
    images = sorted((root / "images").glob("*.png"))
    rows = ["bicubic", "none", "semantic", "semantic+degradation, true map", "semantic+degradation, estimated map"]
    sums = {t: {r: {"sq": 0.0, "n": 0, "psnr": [], "flat": [0.0, 0], "amb": [0.0, 0]} for r in rows} for t in TESTS}
    hr_amb = [0.0, 0]
    dial = {d: {"psnr": [], "flat": [0.0, 0]} for d in DIAL}
    swap: dict[str, list[float]] = {}
    est_err = {c.name: [0.0, 0] for c in stack_prior.continuous}
    for scene, path in enumerate(images):
        hr8 = read_image(path)
        labels = read_label_map(root / "labels" / path.name, len(names))
        clean, _ = lr_from_image(hr8, "hr", SCALE)
        h, w = clean.shape[-2:]
        hr = to_float_chw(hr8[: h * SCALE, : w * SCALE])[None]
        labels = labels[: h * SCALE, : w * SCALE]
        y_hr = y_8bit(hr)[0, 0].numpy()
        hf_hr = high_frequency(y_hr, SIGMA)
        masks = [erode(labels == c, ERODE) for c in range(len(names))]
        flat_classes = [c for c in range(len(names)) if masks[c].any() and hf_hr[masks[c]].mean() < TEXTURED_MIN]
        flat = np.any([masks[c] for c in flat_classes], axis=0) if flat_classes else np.zeros_like(masks[0])
        amb = np.any([masks[c] for c in ambiguous], axis=0)
        hr_amb[0] += float(hf_hr[amb].sum())
        hr_amb[1] += int(amb.sum())
        sem_map, _ = labels_prior.image_map(clean, SCALE, labels=labels)

        lrs, true_maps = {}, {}
        for k, test in enumerate(TESTS):
            params = test_params(degradation, test, 1000 * scene + k)
            lr = degradation(hr, params, training=False)[0]
            maps = {n: v[0] for n, v in degradation.maps(params, (h, w)).items()}
            lrs[test], true_maps[test] = lr, maps
            true_pm, _ = stack_prior.image_map(lr, SCALE, labels=labels, maps=maps)
            estimated = stack_prior.estimate(lr)  # once: scored below and fed as the map
            est_pm, _ = stack_prior.image_map(lr, SCALE, labels=labels, maps=estimated)
            for c in stack_prior.continuous:
                truth = maps[c.name][::SCALE, ::SCALE]
                est_err[c.name][0] += float((estimated[c.name] - truth).abs().sum())
                est_err[c.name][1] += truth.numel()
            outs = {
                "bicubic": imresize(lr, SCALE).clamp(0, 1),
                "none": _sr(gens["none"], lr, sem_map),
                "semantic": _sr(gens["semantic"], lr, sem_map),
                "semantic+degradation, true map": _sr(gens["semantic+degradation"], lr, true_pm),
                "semantic+degradation, estimated map": _sr(gens["semantic+degradation"], lr, est_pm),
            }
            for r, sr in outs.items():
                score(sr, hr, flat, amb, sums[test][r])
        lr, maps = lrs[DIAL_TEST], true_maps[DIAL_TEST]
        for d in DIAL:
            pm, _ = stack_prior.image_map(lr, SCALE, labels=labels, maps={**maps, "noise_sigma": d})
            score(_sr(gens["semantic+degradation"], lr, pm), hr, flat, amb, dial[d])
        a, b = SWAP
        for lr_name, map_name in ((a, a), (a, b), (b, b), (b, a)):
            pm, _ = stack_prior.image_map(lrs[lr_name], SCALE, labels=labels, maps=true_maps[map_name])
            acc = {"flat": [0.0, 0]}
            score(_sr(gens["semantic+degradation"], lrs[lr_name], pm), hr, flat, amb, acc)
            swap.setdefault(f"{lr_name} LR, {map_name} map", []).append(acc["flat"][0] / max(acc["flat"][1], 1))

    def psnr_of(acc: dict) -> float:
        return float(np.mean(acc["psnr"])) if acc["psnr"] else math.nan

    def mean(pair) -> float:
        return float(pair[0] / pair[1]) if pair[1] else math.nan

    table = {
        t: {
            r: {"psnr_y": psnr_of(a), "flat_noise": mean(a["flat"]), "texture_ambiguous": mean(a["amb"])}
            for r, a in v.items()
        }
        for t, v in sums.items()
    }
    dial_rows = {f"{d:g}": {"psnr_y": psnr_of(a), "flat_noise": mean(a["flat"])} for d, a in dial.items()}
    noise = [dial_rows[f"{d:g}"]["flat_noise"] for d in DIAL]
    true_row = table[DIAL_TEST]["semantic+degradation, true map"]
    est_row = table[DIAL_TEST]["semantic+degradation, estimated map"]
    swap_rows = {k: float(np.mean(v)) for k, v in swap.items()}
    a, b = SWAP
    targets = {
        "dial lowers the flat-region noise monotonically": all(x > y for x, y in zip(noise, noise[1:])),
        "estimated map within 0.3 dB PSNR-Y of the true map (noise 15)": abs(true_row["psnr_y"] - est_row["psnr_y"])
        <= 0.3,
        "estimated map within 0.3 dB PSNR-Y of the true map (mean over the tests)": abs(
            np.mean([table[t]["semantic+degradation, true map"]["psnr_y"] for t in TESTS])
            - np.mean([table[t]["semantic+degradation, estimated map"]["psnr_y"] for t in TESTS])
        )
        <= 0.3,
        "swap: a higher map lowers the output noise": swap_rows[f"{a} LR, {b} map"] < swap_rows[f"{a} LR, {a} map"],
        "swap: a lower map raises the output noise": swap_rows[f"{b} LR, {a} map"] > swap_rows[f"{b} LR, {b} map"],
    }
    return {
        "split": root.name,
        "images": len(images),
        "tests": {t: list(v) for t, v in TESTS.items()},
        "evidence": table,
        "texture_ambiguous_hr": mean(hr_amb),
        "denoise_control": {"test": DIAL_TEST, "rows": dial_rows},
        "swap": swap_rows,
        "estimator_mae": {n: mean(v) for n, v in est_err.items()},
        "targets": {k: bool(v) for k, v in targets.items()},
        "exports": {k: str(v) for k, v in exports.items()},
    }


def markdown(report: dict) -> str:
    """The report as markdown tables (what ``docs/priors.md`` shows)."""
    lines = [f"# Priors beyond categories: {report['images']} held-out demo scenes ({report['split']})", ""]
    lines += ["## Evidence the degradation channels are used", ""]
    lines += [
        "PSNR-Y (dB) / residual noise in flat regions / texture statistic on the LR-ambiguous classes "
        f"(HR: {report['texture_ambiguous_hr']:.1f}).",
        "",
    ]
    rows = list(next(iter(report["evidence"].values())))
    lines += ["| test LR | " + " | ".join(rows) + " |", "|---|" + "---|" * len(rows)]
    for t, v in report["evidence"].items():
        cells = [f"{v[r]['psnr_y']:.2f} / {v[r]['flat_noise']:.2f} / {v[r]['texture_ambiguous']:.1f}" for r in rows]
        lines.append(f"| {t} | " + " | ".join(cells) + " |")
    dc = report["denoise_control"]
    lines += ["", f"## The denoise control ({dc['test']} LR; noise_level dialled)", ""]
    lines += ["| noise_level | PSNR-Y (dB) | residual noise, flat regions |", "|---|---|---|"]
    for d, r in dc["rows"].items():
        lines.append(f"| {d} | {r['psnr_y']:.2f} | {r['flat_noise']:.3f} |")
    ev = report["evidence"][dc["test"]]
    lines += [
        f"| true map | {ev['semantic+degradation, true map']['psnr_y']:.2f} | {ev['semantic+degradation, true map']['flat_noise']:.3f} |",
        f"| estimated map | {ev['semantic+degradation, estimated map']['psnr_y']:.2f} | {ev['semantic+degradation, estimated map']['flat_noise']:.3f} |",
    ]
    lines += ["", "## Swap test (residual noise, flat regions)", "", "| LR, map | residual noise |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in report["swap"].items()]
    lines += ["", "## Estimator error (mean absolute, per LR pixel, over every test LR)", ""]
    lines += ["| channel | MAE |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in report["estimator_mae"].items()]
    lines += ["", "## Targets", ""]
    lines += [f"- {'met' if ok else 'MISSED'}: {k}" for k, ok in report["targets"].items()]
    if "train_seconds" in report:
        lines += ["", "Training: " + ", ".join(f"{k} {v:.0f} s" for k, v in report["train_seconds"].items())]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Train and compare the degradation-prior models; write the report.")
    parser.add_argument("--out", default="outputs/degradation_prior")
    parser.add_argument("--fast", action="store_true", help="the test suite's small version")
    parser.add_argument("--report-only", action="store_true", help="evaluate the exports already in --out")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for every model, e.g. seed=1")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    t0 = time.perf_counter()
    run(args.out, args.overrides, fast=args.fast, train_models=not args.report_only)
    print((Path(args.out) / "report.md").read_text())
    print(f"total {time.perf_counter() - t0:.0f} s; report in {args.out}/report.md")


if __name__ == "__main__":
    main()
