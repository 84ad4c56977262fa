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

from ..categories import VOID_LABEL
from ..config import ConfigError, EvalSchema
from ..config import options as typed_options
from ..files import atomic_write_bytes
from ..imresize import imresize
from ..metrics import MetricSuite, build_suite
from ..priors import Prior, PriorEdits, PriorError, PriorMap, SegmentOptions, UniformPriorMap
from .benchmark_sets import SETS, find_set, set_names
from .inputs import INPUT_ERRORS, InputReader, input_files
from .report import benchmark_table, center_crop, summary_table, write_figure
from .runtime import (
    choose_engine,
    generator_runner,
    load_for_prior,
    pick_device,
    resolve_checkpoint,
    segment_options,
)
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
                raise PriorError(
                    f"compare_priors entry {p}: {cls!r} is not a class of prior={prior.name} ({', '.join(prior.class_names)})"
                )
            name = p if len(checkpoints) == 1 else f"{ck_name}/{p}"
            out.append(Variant(name, str(path), str(p)))
    return out


def variant_prior(base: PriorMap, variant: Variant, prior: Prior) -> PriorMap:
    """The prior map a variant feeds: the image's own, uniform (no information), or one class everywhere."""
    if variant.prior == "prior":
        return base
    if variant.prior == "uniform":
        return base.with_classes(lambda m: UniformPriorMap(m.num_classes, m.lr_size, m.scale))
    cls = variant.prior.split(":", 1)[1]
    return base.with_classes(PriorEdits(override=prior.class_names.index(cls)).apply)


def majority_class(labels: np.ndarray | None, class_names) -> str:
    """An image's category: the most frequent class of its label map (``all`` without one, ``void`` if all void)."""
    if labels is None:
        return "all"
    counts = np.bincount(labels[labels != VOID_LABEL].ravel(), minlength=len(class_names))
    return class_names[int(counts.argmax())] if counts.sum() else "void"


BICUBIC = Variant("bicubic", "-", "-")  # the MATLAB-bicubic x4 baseline, scored alongside every report


def _scores(image: str, category: str, v: Variant, sr: torch.Tensor, hr: torch.Tensor, scale: int, suite) -> dict:
    row = {"image": image, "category": category, "variant": v.name, "checkpoint": v.checkpoint, "prior": v.prior}
    return row | suite.score(sr, hr, scale)


def metric_suite(options: EvalSchema, device: torch.device) -> MetricSuite:
    """The metrics ``options`` ask for (``metrics``: auto or a list), with their files."""
    return build_suite(
        options.metrics,
        options.lpips_net,
        options.lpips_weights,
        options.dists_weights,
        options.niqe_params,
        options.ma_model,
        device,
    )


def load_generators(variants: list[Variant], prior: Prior, device: torch.device) -> dict:
    """Each variant's checkpoint, loaded once, checked against the prior."""
    generators = {}
    for v in variants:
        if v.checkpoint not in generators:
            generators[v.checkpoint] = load_for_prior(
                resolve_checkpoint(v.checkpoint), prior, device, key=f"checkpoints entry {v.checkpoint}"
            )
    return generators


def evaluate_files(
    files: list[Path],
    variants: list[Variant],
    generators: dict,
    prior: Prior,
    reader: InputReader,
    out: Path,
    options: EvalSchema,
    segment: SegmentOptions = SegmentOptions(),
    runners: dict | None = None,
    suite: MetricSuite | None = None,
    title: str = "Evaluation report",
    categories: dict[Path, str] | None = None,
) -> tuple[dict, list[dict]]:
    """Score every variant (its generator in ``generators``, by checkpoint) on every file (HR) with ``suite``
    (default: ``metric_suite(options)``); returns (summary, rows) and writes the report into ``out``. An image's
    category is ``categories[file]`` when given (a set's class folders), else its label map's majority class."""
    scale = reader.scale
    suite = suite or metric_suite(options, torch.device("cpu"))
    for note in suite.notes:
        log.info(note)
    metrics = suite.names
    rows, crops, failures = [], [], {}
    for f in files:
        try:
            item = reader.read(f, with_labels=True)
            base, _ = prior.image_map(item.lr, scale, item.labels, item.probs, segment=segment)
        except INPUT_ERRORS as err:
            failures[str(f)] = str(err)
            log.error("skipped %s: %s", f, err)
            continue
        lr, hr = item.lr, item.hr
        small = suite.too_small(hr.shape[:2], scale)
        if small:
            failures[str(f)] = f"{small} (after cutting to the scale, x{scale})"
            log.error("skipped %s: %s", f, failures[str(f)])
            continue
        category = (categories or {}).get(f) or majority_class(item.labels, prior.class_names)
        hr_t = torch.from_numpy(np.ascontiguousarray(hr.transpose(2, 0, 1)))[None]
        images = {"bicubic": imresize(lr, scale).clamp(0, 1)}
        rows.append(_scores(f.name, category, BICUBIC, images["bicubic"], hr_t, scale, suite))
        for v in variants:
            g = generators[v.checkpoint]
            pm = variant_prior(base, v, prior) if g.uses_prior else None
            runner = (runners or {}).get(v.checkpoint)
            sr = super_resolve(g, lr, pm, options.tile, precision=options.precision, as_float=True, runner=runner)
            sr_t = torch.from_numpy(sr).permute(2, 0, 1)[None].clamp(0, 1)
            images[v.name] = sr_t
            rows.append(_scores(f.name, category, v, sr_t, hr_t, scale, suite))
        if len(crops) < options.num_crops:
            size = options.crop_size
            as_uint8 = {k: (t[0].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8) for k, t in images.items()}
            hr8 = (np.clip(hr, 0, 1) * 255).round().astype(np.uint8)
            crops.append(
                {"name": f.stem, "hr": center_crop(hr8, size), **{k: center_crop(a, size) for k, a in as_uint8.items()}}
            )
    if not rows:
        raise FileNotFoundError(f"no image could be evaluated; failures: {failures}")
    names = [BICUBIC.name, *(v.name for v in variants)]
    table, summary = summary_table(rows, names, metrics)
    out.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(out / "per_image.csv", buf.getvalue().encode())
    lr_how = (
        f"given ({reader.lr_folder})"
        if reader.lr_folder
        else f"imresize x1/{scale} of the modcropped HR, rounded to 8 bits"
    )
    header = [
        f"# {title}\n",
        f"- images: {len(files) - len(failures)} of {len(files)} ({len(failures)} failed)",
        "- variants: " + "; ".join(f"`{v.name}` = {v.checkpoint} with prior {v.prior}" for v in variants),
        f"- prior: {prior.describe()}",
        f"- LR: {lr_how}",
        f"- metrics: PSNR-Y / SSIM-Y on 8-bit Y (BT.601), {scale} px border cropped; " + "; ".join(suite.notes),
    ]
    atomic_write_bytes(out / "summary.md", ("\n".join(header) + "\n" + table + "\n").encode())
    atomic_write_bytes(out / "summary.json", json.dumps({"summary": summary, "failures": failures}, indent=1).encode())
    write_figure(out / "report.png", summary, names, crops)
    return {"summary": summary, "failures": failures}, rows


def evaluate(cfg) -> tuple[dict, dict]:
    """Run ``conf/eval.yaml`` (typed by ``config.EvalSchema``); returns ``({"summary", "failures", "seconds"}, objects)``."""
    from hydra.utils import instantiate

    start = time.perf_counter()
    options: EvalSchema = typed_options(cfg, EvalSchema)
    device = pick_device(options.device)
    choice = choose_engine(options, device)
    prior: Prior = instantiate(cfg.prior)
    prior.check_ready()  # missing segmenter weights: one configuration error, not a failure per file
    variants = parse_variants(list(options.checkpoints), list(options.compare_priors), prior)
    sets = None
    if options.benchmark is not None:  # the sets replace images=; checked before any work
        sets = benchmark_sets(options)
        files, labels, skipped = [], None, {}
    else:
        files, labels, skipped = input_files(options.images, options.labels, options.demo_split, cfg.data)
    for name, reason in skipped.items():
        log.warning("skipped %s: %s", name, reason)
    generators = load_generators(variants, prior, device)
    scale = next(iter(generators.values())).scale
    reader = InputReader(
        scale,
        prior.num_classes,
        "hr",
        labels,
        Path(options.priors) if options.priors else None,
        Path(options.lr_images) if options.lr_images else None,
        options.max_pixels,
    )
    runners = {
        ckpt: generator_runner(choice, g, options.compile, options.compile_mode) for ckpt, g in generators.items()
    }
    suite = metric_suite(options, device)
    segment = segment_options(cfg, device, choice)
    if sets is not None:
        result, rows = evaluate_benchmarks(options, sets, variants, generators, prior, scale, segment, runners, suite)
        files = []
    else:
        result, rows = evaluate_files(
            files, variants, generators, prior, reader, Path(options.out), options, segment, runners, suite
        )
    result["failures"] = {f"metric {m}": why for m, why in suite.missing.items()} | result["failures"]
    result["seconds"] = time.perf_counter() - start
    result["skipped"] = skipped
    return result, {"rows": rows, "variants": variants, "prior": prior, "files": files}


def benchmark_sets(options: EvalSchema) -> tuple[Path, list[str]]:
    """``benchmark_root`` and the set names of ``benchmark``, or a ``ConfigError`` naming the key."""
    root = Path(options.benchmark_root).expanduser()
    names = set_names(options.benchmark)
    if not root.is_dir():
        raise ConfigError(f"benchmark_root={options.benchmark_root}: not a folder; give the folder holding the sets")
    return root, names


def evaluate_benchmarks(
    options: EvalSchema,
    sets: tuple[Path, list[str]],
    variants: list[Variant],
    generators: dict,
    prior: Prior,
    scale: int,
    segment: SegmentOptions,
    runners: dict,
    suite: MetricSuite,
) -> tuple[dict, list[dict]]:
    """Each set of ``sets`` (``benchmark_sets``: the root and the set names) scored as ``evaluate_files``
    into ``out/<set>/``, then ``out/summary.md``: one table per set in the papers' format. A set that is missing
    or whose images all fail is a failure named by the set; the other sets go on."""
    root, names = sets
    out = Path(options.out)
    summaries, failures, all_rows, found = {}, {}, [], {}
    for name in names:
        try:
            bench = find_set(SETS[name], root, scale)
            reader = InputReader(
                scale,
                prior.num_classes,
                "hr",
                bench.labels,
                None,
                bench.lr_folder,
                options.max_pixels,
                lr_names=bench.layout.lr_names,
            )
            title = f"{name}: {len(bench.files)} images, {bench.layout.name} layout"
            result, rows = evaluate_files(
                bench.files,
                variants,
                generators,
                prior,
                reader,
                out / name,
                options,
                segment,
                runners,
                suite,
                title,
                bench.categories,
            )
        except FileNotFoundError as err:
            failures[f"set {name}"] = str(err)
            log.error("set %s: %s", name, err)
            continue
        found[name] = bench
        summaries[name] = result["summary"]
        failures |= {f"{name}/{Path(k).name}": why for k, why in result["failures"].items()}
        all_rows += [{"set": name, **r} for r in rows]
    names_out = [BICUBIC.name, *(v.name for v in variants)]
    lines = ["# Benchmark sets\n", "- metrics: " + "; ".join(["PSNR-Y / SSIM-Y", *suite.notes])]
    lines += [f"- {n}: not evaluated ({failures[f'set {n}']})" for n in names if n not in found]
    for name, bench in found.items():
        lr_how = f"given ({bench.lr_folder})" if bench.lr_folder else f"MATLAB bicubic x1/{scale} of the modcropped HR"
        lines.append(
            f"\n## {name}\n\n{len(bench.files)} images ({bench.layout.name}); LR: {lr_how}; {scale} px border\n"
        )
        lines.append(benchmark_table(summaries[name], names_out, suite.names))
        if bench.spec.by_category:
            lines.append(summary_table([r for r in all_rows if r["set"] == name], names_out, suite.names)[0])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(out / "summary.md", ("\n".join(lines) + "\n").encode())
    summary = {"sets": summaries, "failures": failures}
    atomic_write_bytes(out / "summary.json", json.dumps(summary, indent=1).encode())
    return {"summary": summaries, "failures": failures}, all_rows
