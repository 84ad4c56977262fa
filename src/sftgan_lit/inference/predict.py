"""``predict.py`` / ``sftgan-predict``: super-resolve photos of any size with a prior, optionally edited.

For each input file: read it (the checks of ``data.io.read_image``), make the LR (``input=hr``: modcrop
and MATLAB-bicubic x1/4, the paper's test protocol; ``input=lr``: the file as is), build its prior
(segmenter, label map, prior file or uniform; then the edits), super-resolve in tiles and write
``<out>/<stem>.png`` atomically. A file that cannot be read or has no usable prior is reported with
the reason and skipped; the others are still processed, and ``predict`` reports which failed.
"""

from __future__ import annotations

import glob
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..categories import colorize
from ..checkpoints import CheckpointError, load_generator
from ..data.io import ImageError, list_images, read_image, read_label_map, write_png
from ..data.readers import load_prior_file
from ..data.transforms import make_lr, modcrop, to_float_chw
from ..priors.base import Prior, PriorError
from ..priors.labels import LabelPrior
from ..priors.segmenter import SegmenterPrior
from .priors import (
    DenseProbs,
    EditedPrior,
    LabelPriorMap,
    PriorMap,
    UniformPriorMap,
    parse_remap,
    read_class_mask,
)
from .segment import segment
from .tiling import receptive_field, super_resolve_many

log = logging.getLogger(__name__)

# Errors that belong to one input file: reported and skipped, never fatal for the batch.
INPUT_ERRORS = (ImageError, PriorError, FileNotFoundError)


@dataclass
class PredictReport:
    written: list[Path] = field(default_factory=list)
    exists: list[Path] = field(default_factory=list)  # outputs already there (overwrite=false)
    failures: dict[str, str] = field(default_factory=dict)  # input -> reason
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures


def find_inputs(spec: str) -> list[Path]:
    """An image file, a folder (its images, sorted) or a glob pattern -> files; an empty match is an error."""
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        files = list_images(path)
    elif path.is_file():
        files = [path]
    elif any(ch in spec for ch in "*?["):
        files = sorted(Path(p) for p in glob.glob(os.path.expanduser(spec), recursive=True) if Path(p).is_file())
    else:
        raise FileNotFoundError(f"images={spec}: no such file or folder")
    if not files:
        raise FileNotFoundError(f"images={spec}: no image files found")
    return files


def resolve_checkpoint(spec: str | None, search_roots=("outputs", "multirun")) -> Path:
    """``checkpoint``: a path, or ``latest``: the newest ``generator.pth`` exported by ``train.py`` under ``outputs/``."""
    if not spec:
        raise FileNotFoundError("checkpoint is not set: give checkpoint=/path/to/generator.pth (or a Lightning .ckpt, or SFTGAN_noBN_OST_bg.pth)")
    if spec == "latest":
        found = [p for root in search_roots for p in Path(root).glob("**/generator.pth")]
        if not found:
            raise FileNotFoundError(
                f"checkpoint=latest: no generator.pth under {', '.join(search_roots)}/ in {Path.cwd()}; run python train.py "
                "first or give checkpoint=/path/to/a/checkpoint"
            )
        return max(found, key=lambda p: p.stat().st_mtime)
    path = Path(spec).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint={spec}: file not found")
    return path


def pick_device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(spec)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={spec}: CUDA is not available on this machine; use device=cpu or device=auto")
    return device


@dataclass
class PriorSources:
    """Where the per-image prior comes from: the prior config plus the label / prior-file folders."""

    prior: Prior
    labels: Path | None = None
    priors: Path | None = None
    segment_max_pixels: int | None = 4_000_000
    segment_tile: int = 256
    segment_overlap: int = 64
    precision: str = "fp32"
    device: torch.device = torch.device("cpu")

    def partner(self, folder: Path, image: Path, suffixes: tuple[str, ...], what: str) -> Path:
        for suffix in suffixes:
            candidate = folder / f"{image.stem}{suffix}"
            if candidate.is_file():
                return candidate
        raise FileNotFoundError(f"{image}: no {what} {folder / image.stem}{{{','.join(suffixes)}}}")

    def build(self, image: Path, lr: torch.Tensor, hr_crop: tuple[int, int] | None, scale: int) -> tuple[PriorMap, str]:
        """The prior map of one image. ``hr_crop``: with ``input=hr``, the HR size before modcrop (label maps
        and prior files at that size are modcropped with the image)."""
        h, w = lr.shape[-2:]
        H, W = h * scale, w * scale
        if self.priors is not None:
            path = self.partner(self.priors, image, (".npy", ".pt", ".pth"), "prior file")
            size = hr_crop or (H, W)
            probs = load_prior_file(path, self.prior.num_classes, size)[:H, :W]
            return DenseProbs(torch.from_numpy(np.ascontiguousarray(probs)).permute(2, 0, 1), scale), f"prior file {path.name}"
        src = self.prior.source
        if src == "labels":
            if self.labels is None:
                raise PriorError("prior=labels needs label maps: set labels=/folder/of/label/pngs (same file stems), or use prior=none")
            path = self.partner(self.labels, image, (".png",), "label map")
            labels = read_label_map(path, self.prior.num_classes)
            if hr_crop is not None and labels.shape == tuple(hr_crop):
                labels = labels[:H, :W]
            elif labels.shape == (h, w):
                labels = np.repeat(np.repeat(labels, scale, 0), scale, 1)
            elif labels.shape != (H, W):
                raise ImageError(
                    f"{path}: label map is {labels.shape[1]}x{labels.shape[0]}; it must be the size of its image "
                    f"({w}x{h} LR) or of the output ({W}x{H})"
                )
            assert isinstance(self.prior, LabelPrior)
            return LabelPriorMap(labels, self.prior, scale), f"label map {path.name}"
        if src == "segmenter":
            assert isinstance(self.prior, SegmenterPrior)
            model = self.prior.model(self.device)
            if hasattr(model, "coarse_logits"):
                pm, how = segment(model, lr, self.segment_max_pixels, self.segment_tile, self.segment_overlap, self.precision)
                return pm, how
            with torch.no_grad():
                return DenseProbs(model(lr.to(self.device)).float().cpu()[0], scale), "segmenter on the whole image"
        return UniformPriorMap(self.prior.num_classes, (h, w), scale), "uniform prior (no information)"


@dataclass
class PriorEdits:
    """The paper's prior editing: a class for the whole image, a painted mask, or a class remap."""

    override: str | None = None
    mask: Path | None = None
    remap: str | list | None = None

    def check(self, prior: Prior) -> tuple[int | None, dict[int, int]]:
        """Fail before any file is read when a class name is not one of the prior's or the mask is
        missing; returns the override's class index and the remap as indices."""
        if self.override is not None and self.override not in prior.class_names:
            raise PriorError(f"prior_override={self.override}: not a class of prior={prior.name} ({', '.join(prior.class_names)})")
        remap = parse_remap(self.remap, prior.class_names)
        if self.mask is not None and not Path(self.mask).is_file():
            raise FileNotFoundError(f"prior_mask={self.mask}: file not found")
        return (None if self.override is None else prior.class_names.index(self.override)), remap

    def apply(self, pm: PriorMap, prior: Prior) -> tuple[PriorMap, str]:
        if self.override is None and self.mask is None and not self.remap:
            return pm, ""
        override, remap = self.check(prior)
        mask = read_class_mask(self.mask, prior.class_names, prior.colors, pm.hr_size) if self.mask is not None else None
        what = [f"override={self.override}"] * (override is not None) + [f"mask={self.mask}"] * (mask is not None)
        what += [f"remap={self.remap}"] * bool(remap)
        return EditedPrior(pm, override, mask, remap), ", edited: " + "; ".join(what)


def _lr_from(image: np.ndarray, mode: str, scale: int) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """The LR tensor ``(1, 3, h, w)`` in [0, 1] and, for ``input=hr``, the HR size before modcrop."""
    if mode == "lr":
        return to_float_chw(image)[None], None
    if mode != "hr":
        raise ValueError(f"input must be 'hr' or 'lr', got {mode!r}")
    hr = modcrop(image, scale)
    if hr.shape[0] < scale or hr.shape[1] < scale:
        raise ImageError(f"input=hr: a {image.shape[1]}x{image.shape[0]} image is smaller than the scale {scale}")
    # The released test sets stored the MATLAB-bicubic LR as 8-bit PNGs: round the same way.
    lr = make_lr(to_float_chw(hr)[None], scale)
    return (lr * 255.0).round() / 255.0, image.shape[:2]


def predict_files(
    generator,
    files: list[Path],
    out: Path,
    sources: PriorSources,
    edits: PriorEdits = PriorEdits(),
    mode: str = "lr",
    tile: int | None = 256,
    overlap: int | None = None,
    batch_size: int = 4,
    precision: str = "fp32",
    overwrite: bool = False,
    save_prior: bool = False,
    max_pixels: int = 64_000_000,
    progress: bool = True,
) -> PredictReport:
    """Super-resolve ``files`` into ``out`` (see the module docstring). Images that fit one tile and share
    a size are run ``batch_size`` at a time."""
    report = PredictReport()
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    scale = generator.scale
    radius = receptive_field(generator)
    overlap = radius if overlap is None else overlap
    log.info("tiles of %s LR px with %d px overlap (receptive field radius %d)", tile, overlap, radius)
    pending: list[tuple[Path, Path, torch.Tensor, PriorMap, str]] = []

    def flush() -> None:
        if not pending:
            return
        labels_out = [np.empty((lr.shape[-2] * scale, lr.shape[-1] * scale), np.uint8) if save_prior else None for _, _, lr, _, _ in pending]
        srs = super_resolve_many(generator, [(lr, pm) for _, _, lr, pm, _ in pending], tile, overlap, batch_size,
                                 precision, labels_out if save_prior else None)  # fmt: skip
        for (src, dst, lr, _, how), sr, lab in zip(pending, srs, labels_out):
            write_png(dst, sr)
            if lab is not None:
                colours = colorize(torch.from_numpy(lab), sources.prior.colors)
                write_png(dst.with_name(dst.stem + "_prior.png"), (colours * 255).round().byte().permute(1, 2, 0).numpy())
            report.written.append(dst)
            log.info("%s -> %s (%dx%d -> %dx%d; %s)", src, dst, lr.shape[-1], lr.shape[-2], sr.shape[1], sr.shape[0], how)
        pending.clear()

    bar = tqdm(files, desc="sftgan-predict", unit="img", disable=not progress)
    for src in bar:
        dst = out / f"{src.stem}.png"
        if dst.exists() and not overwrite:
            report.exists.append(dst)
            log.warning("%s exists; skipped (overwrite=true replaces it)", dst)
            continue
        try:
            image = read_image(src, max_pixels=max_pixels)
            lr, hr_size = _lr_from(image, mode, scale)
            pm, how = sources.build(src, lr, hr_size, scale)
            pm, edited = edits.apply(pm, sources.prior)
        except INPUT_ERRORS as err:
            report.failures[str(src)] = str(err)
            log.error("skipped %s: %s", src, err)
            continue
        h, w = lr.shape[-2:]
        fits_one_tile = tile is None or (h <= tile and w <= tile)
        if pending and (not fits_one_tile or pending[0][2].shape != lr.shape or len(pending) >= batch_size):
            flush()
        pending.append((src, dst, lr, pm, how + edited))
        if not fits_one_tile:
            flush()
    flush()
    report.seconds = time.perf_counter() - start
    return report


def load_for_prior(ckpt: Path, prior: Prior, device: torch.device, channels_last: bool = True, key: str = "checkpoint"):
    """The generator of ``ckpt`` on ``device``, checked to be conditioned on as many classes as ``prior`` has."""
    try:
        generator = load_generator(ckpt, channels_last=channels_last).to(device)
    except CheckpointError as err:
        raise CheckpointError(f"{key}: {err}") from err
    if generator.uses_prior and generator.config.num_classes != prior.num_classes:
        raise PriorError(
            f"checkpoint {ckpt} is conditioned on {generator.config.num_classes} classes but prior={prior.name} has "
            f"{prior.num_classes}; choose the prior the model was trained with"
        )
    return generator


def inputs_from_config(cfg) -> tuple[list[Path], Path | None]:
    """``cfg.images`` as files, and the label folder: ``cfg.labels``, or the demo split's labels for ``images=demo``."""
    labels = Path(cfg.labels) if cfg.labels else None
    if cfg.images != "demo":
        return find_inputs(str(cfg.images)), labels
    from ..data.demo import DemoConfig, default_cache_dir, generate_demo

    cache = Path(cfg.data.cache_dir) if cfg.data.get("cache_dir") else default_cache_dir()
    root = generate_demo(cache / "demo", DemoConfig(**cfg.data.demo)) / cfg.demo_split
    return find_inputs(str(root / "images")), labels or root / "labels"


def predict(cfg) -> tuple[PredictReport, dict]:
    """Run ``conf/predict.yaml``: returns the report and the objects used (generator, prior)."""
    from hydra.utils import instantiate

    device = pick_device(cfg.device)
    prior: Prior = instantiate(cfg.prior)
    prior.check_ready()  # missing segmenter weights: one configuration error, not a failure per file
    ckpt = resolve_checkpoint(cfg.checkpoint)
    generator = load_for_prior(ckpt, prior, device, cfg.channels_last, f"checkpoint={cfg.checkpoint}")
    files, labels = inputs_from_config(cfg)
    sources = PriorSources(
        prior, labels, Path(cfg.priors) if cfg.priors else None, cfg.segment_max_pixels, cfg.segment_tile,
        cfg.segment_overlap, cfg.precision, device,
    )  # fmt: skip
    edits = PriorEdits(cfg.prior_override, Path(cfg.prior_mask) if cfg.prior_mask else None, cfg.prior_remap)
    edits.check(prior)
    log.info("checkpoint %s (%s conditioning) on %s, %s; prior %s; %d files", ckpt, generator.config.conditioning,
             device, cfg.precision, prior.describe(), len(files))  # fmt: skip
    report = predict_files(
        generator, files, Path(cfg.out), sources, edits, cfg.input, cfg.tile, cfg.overlap, cfg.batch_size,
        cfg.precision, cfg.overwrite, cfg.save_prior, cfg.max_pixels, cfg.progress,
    )  # fmt: skip
    return report, {"generator": generator, "prior": prior, "checkpoint": ckpt, "files": files}
