"""``predict.py`` / ``sftgan-predict``: super-resolve photos of any size with a prior, optionally edited.

For each input file: read it and its companions (``inputs.InputReader``: ``input=hr`` makes the LR by
the paper's test protocol, ``input=lr`` takes the file as is), ask the prior for the image's prior map
with the edits on top (``Prior.image_map``), super-resolve in tiles (``tiling``) and write
``<out>/<stem>.png`` atomically. A file that cannot be read or has no usable prior is reported with the
reason and skipped; the others are still processed, and the report says which failed.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from ..categories import colorize
from ..config import ConfigError, PredictSchema
from ..config import options as typed_options
from ..data.io import PngStripWriter, write_png
from ..models import SFTGenerator, interpolate_generators
from ..priors import Prior, PriorEdits, PriorError, PriorMap, SegmentOptions
from .inputs import INPUT_ERRORS, InputReader, input_files, read_mask_image
from .runtime import (
    choose_engine,
    generator_runner,
    load_for_prior,
    pick_device,
    resolve_checkpoint,
    segment_options,
)
from .tiling import receptive_field, super_resolve_bands, super_resolve_many

log = logging.getLogger(__name__)


@dataclass
class PredictReport:
    written: list[Path] = field(default_factory=list)
    exists: list[Path] = field(default_factory=list)  # outputs already there (overwrite=false)
    failures: dict[str, str] = field(default_factory=dict)  # input -> reason
    not_done: list[Path] = field(default_factory=list)  # inputs not processed because the run stopped
    stopped: str | None = None  # why the run stopped early (an output could not be written: disk full...)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.stopped


@dataclass
class StrengthMap:
    """Texture strength per pixel: a grey PNG (0 = the fidelity model, 255 = the GAN model) at the LR or the
    output size of each image it is used with."""

    values: np.ndarray  # uint8 (h, w)
    source: str

    @classmethod
    def read(cls, path: str) -> StrengthMap:
        if not Path(path).is_file():
            raise FileNotFoundError(f"strength_map={path}: file not found")
        values = read_mask_image(path)
        if values.ndim != 2:
            raise ConfigError(f"strength_map={path}: must be a grey (single-channel) PNG, 0..255")
        return cls(values.astype(np.uint8), f"strength_map={path}")

    def check(self, hr_size: tuple[int, int]) -> None:
        """The map fits an image of output size ``hr_size``, or a ``PriorError`` naming both sizes (that image fails)."""
        (H, W), (h, w) = hr_size, self.values.shape
        if (h, w) != (H, W) and (H % h or W % w or H // h != W // w):
            raise PriorError(f"{self.source}: map is {w}x{h}; it must be the LR or the output size ({W}x{H})")

    def rows(self, hr_size: tuple[int, int], top: int, count: int) -> np.ndarray:
        """Strength in [0, 1] for output rows ``top .. top + count``: float32 ``(count, W)``."""
        H, W = hr_size
        k = H // self.values.shape[0]
        rows = self.values[np.arange(top, top + count) // k]
        return (np.repeat(rows, k, axis=1) if k > 1 else rows).astype(np.float32) / 255.0


@dataclass
class Blend:
    generator: SFTGenerator  # the fidelity end (strength 0)
    runner: object
    strength: StrengthMap


def mix(low: np.ndarray, high: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """uint8 ``low + (high - low) * strength`` per pixel, rounded: exactly ``low`` at 0 and ``high`` at 1."""
    a = low.astype(np.float32)
    return np.round(a + (high.astype(np.float32) - a) * strength[..., None]).astype(np.uint8)


def fidelity_checkpoint(spec: str | None, checkpoint: Path) -> Path:
    """``checkpoint_fidelity``, or the recipe's ``generator_fidelity.pth`` (or ``.safetensors``) beside ``checkpoint``."""
    if spec:
        if not Path(spec).expanduser().is_file():
            raise FileNotFoundError(f"checkpoint_fidelity={spec}: file not found")
        return Path(spec).expanduser()
    for name in ("generator_fidelity.pth", "generator_fidelity.safetensors"):
        if (checkpoint.parent / name).is_file():
            return checkpoint.parent / name
    raise ConfigError(
        f"checkpoint_fidelity is not set and there is no generator_fidelity.pth beside {checkpoint}: give "
        "checkpoint_fidelity=<the fidelity-stage export> (python train.py's demo recipe writes both ends)"
    )


def output_paths(files: list[Path], out: Path, save_prior: bool) -> dict[Path, Path]:
    """Each input's output ``<out>/<stem>.png``, checked before any work: no two inputs may map to one file
    (``x.png`` and ``x.jpg``; ``x_prior.png`` and ``x``'s saved prior map) and no output may be an input."""
    dst = {src: out / f"{src.stem}.png" for src in files}
    claims: dict[Path, Path] = {}
    for src, path in dst.items():
        for target in (path, path.with_name(path.stem + "_prior.png")) if save_prior else (path,):
            key = target.resolve()
            if key in claims:
                raise ConfigError(
                    f"out={out}: {claims[key].name} and {src.name} would both write {target.name}; "
                    "rename one of them or predict them into different folders"
                )
            claims[key] = src
    inputs = {f.resolve() for f in files}
    over = sorted(str(claims[k]) for k in claims if k in inputs)
    if over:
        raise ConfigError(
            f"out={out}: outputs would overwrite inputs ({', '.join(over[:3])}); choose another out folder"
        )
    return dst


def predict_files(
    generator: SFTGenerator,
    files: list[Path],
    out: Path,
    prior: Prior,
    reader: InputReader,
    options: PredictSchema,
    edits: PriorEdits | None = None,
    segment: SegmentOptions = SegmentOptions(),
    runner=None,
    blend: Blend | None = None,
) -> PredictReport:
    """Super-resolve ``files`` into ``out`` (see the module docstring). Images that fit one tile and share
    a size are run ``options.batch_size`` at a time."""
    report = PredictReport()
    start = time.perf_counter()
    destinations = output_paths(files, out, options.save_prior)
    out.mkdir(parents=True, exist_ok=True)
    scale, tile = generator.scale, options.tile
    radius = receptive_field(generator)
    overlap = radius if options.overlap is None else options.overlap
    log.info("tiles of %s LR px with %d px overlap (receptive field radius %d)", tile, overlap, radius)
    pending: list[tuple[Path, Path, torch.Tensor, PriorMap, str]] = []

    def fits(lr: torch.Tensor) -> bool:  # one tile: batched with images of its size, else streamed in bands
        return tile is None or (lr.shape[-2] <= tile and lr.shape[-1] <= tile)

    def stop(src: Path, err: OSError) -> None:  # no file is left half-written (atomic writes); the run stops
        report.failures[str(src)] = err.strerror or str(err)
        report.stopped = f"{err.strerror or err} (nothing more is written; free space or another out=, then rerun)"
        log.error("stopped at %s: %s", src, err)

    def prior_rgb(labels: np.ndarray) -> np.ndarray:
        return (colorize(torch.from_numpy(labels), prior.colors) * 255).round().byte().permute(1, 2, 0).numpy()

    def stream(src: Path, dst: Path, lr: torch.Tensor, pm: PriorMap, how: str) -> None:
        """An image of several tiles: its output written band by band as the tiles finish (never held whole)."""
        h, w = lr.shape[-2:]
        size = (w * scale, h * scale)
        prior_path = dst.with_name(dst.stem + "_prior.png")
        try:
            with (
                PngStripWriter(dst, *size, 3) as out,
                PngStripWriter(prior_path, *size, 3) if options.save_prior else contextlib.nullcontext() as out_prior,
            ):
                opts = (options.batch_size, options.precision, options.save_prior)
                bands = super_resolve_bands(generator, lr, pm, tile, overlap, *opts, runner=runner)
                low = (
                    super_resolve_bands(blend.generator, lr, pm, tile, overlap, *opts, runner=blend.runner)
                    if blend
                    else None
                )
                top = 0
                for band, labels in bands:
                    if blend is not None:  # the fidelity model's band, mixed in under the strength map
                        band = mix(next(low)[0], band, blend.strength.rows((size[1], size[0]), top, band.shape[0]))
                    top += band.shape[0]
                    out.write(band)
                    if out_prior is not None:
                        out_prior.write(prior_rgb(labels))
        except OSError as err:
            stop(src, err)
            return
        report.written.append(dst)
        log.info("%s -> %s (%dx%d -> %dx%d in bands of tiles; %s)", src, dst, w, h, *size, how)

    def flush() -> None:
        if report.stopped:  # an output could not be written: nothing more is computed or written
            report.not_done.extend(src for src, *_ in pending)
            pending.clear()
        if not pending:
            return
        if len(pending) == 1 and not fits(pending[0][2]):
            stream(*pending.pop())
            return
        labels_out = [
            np.empty((lr.shape[-2] * scale, lr.shape[-1] * scale), np.uint8) if options.save_prior else None
            for _, _, lr, _, _ in pending
        ]
        srs = super_resolve_many(
            generator,
            [(lr, pm) for _, _, lr, pm, _ in pending],
            tile,
            overlap,
            options.batch_size,
            options.precision,
            labels_out,
            runner=runner,
        )
        if blend is not None:  # the fidelity model's outputs, mixed in under the strength map
            args = ([(lr, pm) for _, _, lr, pm, _ in pending], tile, overlap, options.batch_size, options.precision)
            lows = super_resolve_many(blend.generator, *args, runner=blend.runner)
            srs = [mix(low, sr, blend.strength.rows(sr.shape[:2], 0, sr.shape[0])) for low, sr in zip(lows, srs)]
        for (src, dst, lr, _, how), sr, lab in zip(pending, srs, labels_out):
            if report.stopped:  # an earlier write of this batch failed: the rest of it is not written
                report.not_done.append(src)
                continue
            try:
                write_png(dst, sr)
                if lab is not None:
                    write_png(dst.with_name(dst.stem + "_prior.png"), prior_rgb(lab))
            except OSError as err:
                stop(src, err)
                continue
            report.written.append(dst)
            log.info(
                "%s -> %s (%dx%d -> %dx%d; %s)", src, dst, lr.shape[-1], lr.shape[-2], sr.shape[1], sr.shape[0], how
            )
        pending.clear()

    for src in tqdm(files, desc="sftgan-predict", unit="img", disable=not options.progress):
        if report.stopped:
            report.not_done.append(src)
            continue
        dst = destinations[src]
        if dst.exists() and not options.overwrite:
            report.exists.append(dst)
            log.warning("%s exists; skipped (overwrite=true replaces it)", dst)
            continue
        try:
            item = reader.read(src, with_labels=prior.needs_labels)
            pm, how = prior.image_map(item.lr, scale, item.labels, item.probs, edits, segment)
            if blend is not None:
                blend.strength.check((item.lr.shape[-2] * scale, item.lr.shape[-1] * scale))
        except INPUT_ERRORS as err:
            report.failures[str(src)] = str(err)
            log.error("skipped %s: %s", src, err)
            continue
        lr = item.lr
        if pending and (not fits(lr) or pending[0][2].shape != lr.shape or len(pending) >= options.batch_size):
            flush()
        pending.append((src, dst, lr, pm, how))
        if not fits(lr):
            flush()
    flush()
    order = {src: i for i, src in enumerate(files)}
    report.not_done.sort(key=order.__getitem__)
    report.seconds = time.perf_counter() - start
    return report


def predict(cfg) -> tuple[PredictReport, dict]:
    """Run ``conf/predict.yaml`` (typed by ``config.PredictSchema``): returns the report and the objects used."""
    from hydra.utils import instantiate

    options: PredictSchema = typed_options(cfg, PredictSchema)
    device = pick_device(options.device)
    choice = choose_engine(options, device)
    prior: Prior = instantiate(cfg.prior)
    prior.check_ready()  # missing segmenter weights: one configuration error, not a failure per file
    edits = PriorEdits.by_name(
        prior.class_names,
        prior.colors,
        options.prior_override,
        read_mask_image(options.prior_mask) if options.prior_mask else None,
        options.prior_remap,
        mask_source=str(options.prior_mask),
    )
    ckpt = resolve_checkpoint(options.checkpoint)
    generator = load_for_prior(ckpt, prior, device, options.channels_last, f"checkpoint={options.checkpoint}")
    blend = None
    if options.strength < 1 or options.strength_map:
        if options.strength_map and options.strength != 1:
            raise ConfigError(
                f"strength={options.strength} and strength_map={options.strength_map}: give one (the map holds the strength)"
            )
        fid_path = fidelity_checkpoint(options.checkpoint_fidelity, ckpt)
        fidelity = load_for_prior(fid_path, prior, device, options.channels_last, f"checkpoint_fidelity={fid_path}")
        generator = interpolate_generators(fidelity, generator, 1.0 if options.strength_map else options.strength)
        log.info("texture strength %s: %s (0) .. %s (1)", options.strength_map or options.strength, fid_path, ckpt)
        if options.strength_map:
            blend = Blend(fidelity, generator_runner(choice, fidelity), StrengthMap.read(options.strength_map))
    files, labels = input_files(options.images, options.labels, options.demo_split, cfg.data)
    reader = InputReader(
        generator.scale,
        prior.num_classes,
        options.input,
        labels,
        Path(options.priors) if options.priors else None,
        max_pixels=options.max_pixels,
    )
    log.info(
        "checkpoint %s (%s conditioning) on %s, %s; prior %s; %d files",
        ckpt,
        generator.config.conditioning,
        device,
        options.precision,
        prior.describe(),
        len(files),
    )
    segment = segment_options(cfg, device, choice)
    runner = generator_runner(choice, generator)
    report = predict_files(generator, files, Path(options.out), prior, reader, options, edits, segment, runner, blend)
    return report, {"generator": generator, "prior": prior, "checkpoint": ckpt, "files": files}
