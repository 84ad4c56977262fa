"""``predict.py`` / ``sftgan-predict``: super-resolve photos of any size with a prior, optionally edited.

For each input file: read it and its companions (``inputs.InputReader``: ``input=hr`` makes the LR by
the paper's test protocol, ``input=lr`` takes the file as is), ask the prior for the image's prior map
with the edits on top (``Prior.image_map``), super-resolve in tiles (``tiling``) and write
``<out>/<stem>.png`` atomically, in the input's own format (``data.picture``): a 16-bit input is read and
written at 16 bits, a grey one is written grey, and an alpha channel is upscaled beside the colour
(``alpha=bicubic``: MATLAB bicubic; ``alpha=model``: the generator on its grey replica) and written as RGBA.
A file that cannot be read or has no usable prior is reported with the reason and skipped; the others are
still processed, and the report says which failed.
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
from ..data.picture import PictureFormat, write_picture
from ..files import remove_stale_temporaries
from ..imresize import imresize
from ..models import ConditionedGenerator, interpolate_generators
from ..priors import Prior, PriorEdits, PriorError, PriorMap, SegmentOptions
from .inputs import INPUT_ERRORS, ChannelOverrides, InputReader, input_files, read_fraction_map, read_mask_image
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
    skipped: dict[str, str] = field(default_factory=dict)  # entries pointed at that are no image read here -> why
    not_done: list[Path] = field(default_factory=list)  # inputs not processed because the run stopped
    stopped: str | None = None  # why the run stopped early (an output could not be written: disk full...)
    interrupted: bool = False  # stopped by Ctrl-C (the command exits 130)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failures and not self.skipped and not self.stopped


@dataclass
class StrengthMap:
    """Texture strength per pixel: a grey image (black = the fidelity model, white = the GAN model; 8- or
    16-bit, read at its precision) at the LR or the output size of each image it is used with."""

    values: np.ndarray  # float32 (h, w) in [0, 1]
    source: str

    @classmethod
    def read(cls, path: str) -> StrengthMap:
        return cls(read_fraction_map(path, "strength_map"), f"strength_map={path}")

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
        return np.repeat(rows, k, axis=1) if k > 1 else rows


@dataclass
class Blend:
    generator: ConditionedGenerator  # the fidelity end (strength 0)
    runner: object
    strength: StrengthMap


def mix(low: np.ndarray, high: np.ndarray, strength: np.ndarray) -> np.ndarray:
    """``low + (high - low) * strength`` per pixel: uint8 images rounded (exactly ``low`` at 0 and ``high`` at 1),
    float images unrounded."""
    if low.dtype != np.uint8:
        return low + (high - low) * strength[..., None]
    a = low.astype(np.float32)
    return np.round(a + (high.astype(np.float32) - a) * strength[..., None]).astype(np.uint8)


def _grey(sr: np.ndarray) -> np.ndarray:
    """The alpha the generator drew on an alpha's grey replica: its output's channels, clamped, averaged."""
    return np.clip(sr, 0, 1).mean(-1)


def upscale_alpha(alpha: torch.Tensor, scale: int, top: int = 0, count: int | None = None) -> np.ndarray:
    """Output rows ``top .. top + count`` (all when None) of an LR alpha ``(1, 1, h, w)`` upscaled by MATLAB
    bicubic and clamped to [0, 1]: float32 ``(count, scale * w)``. Made from the LR rows those rows reach (and 4
    more each side, beyond bicubic's reach), so bands of it stack to the whole image's exactly."""
    h = alpha.shape[-2]
    count = scale * h - top if count is None else count
    a, b = max(0, top // scale - 4), min(h, -(-(top + count) // scale) + 4)
    up = imresize(alpha[..., a:b, :].float(), scale).clamp(0, 1)[0, 0]
    return up[top - scale * a : top - scale * a + count].numpy()


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


@dataclass
class Pending:
    """An image read and waiting to run: its input and output files, LR ``(1, 3, h, w)``, prior map, how the
    prior was made (for the log), its LR alpha ``(1, 1, h, w)`` (or None) and the format its output keeps."""

    src: Path
    dst: Path
    lr: torch.Tensor
    prior: PriorMap
    how: str
    alpha: torch.Tensor | None = None
    format: PictureFormat = PictureFormat()


class Predictor:
    """One predict run: the generator (and, with a strength map, the fidelity end it is blended with), the
    options, the images waiting to run together, and the report of what was written, kept and refused.

    Images that fit one tile and share a size run ``options.batch_size`` at a time (``add``, ``flush``); an
    image of several tiles is streamed to disk band by band, never held whole. Writes are atomic; the first
    one that fails (a full disk) stops the run, and what was not written is listed.
    """

    def __init__(
        self,
        generator: ConditionedGenerator,
        prior: Prior,
        options: PredictSchema,
        runner=None,
        blend: Blend | None = None,
    ) -> None:
        self.generator, self.prior, self.options = generator, prior, options
        self.runner, self.blend = runner, blend
        self.scale, self.tile = generator.scale, options.tile
        radius = receptive_field(generator)
        self.overlap = radius if options.overlap is None else options.overlap
        log.info("tiles of %s LR px with %d px overlap (receptive field radius %d)", self.tile, self.overlap, radius)
        self.report = PredictReport()
        self.pending: list[Pending] = []

    def fits(self, lr: torch.Tensor) -> bool:
        """One tile: batched with images of its size; else streamed in bands."""
        return self.tile is None or (lr.shape[-2] <= self.tile and lr.shape[-1] <= self.tile)

    def add(self, item: Pending) -> None:
        """Queue ``item``, running what is queued first when it cannot join it."""
        queued = self.pending
        if queued and (
            not self.fits(item.lr) or queued[0].lr.shape != item.lr.shape or len(queued) >= self.options.batch_size
        ):
            self.flush()
        self.pending.append(item)
        if not self.fits(item.lr):
            self.flush()

    def flush(self) -> None:
        """Run and write what is queued (nothing more once the run has stopped: those are listed as not done)."""
        items, self.pending = self.pending, []
        if self.report.stopped:
            self.report.not_done.extend(item.src for item in items)
            return
        if not items:
            return
        if len(items) == 1 and not self.fits(items[0].lr):
            self._stream(items[0])
            return
        labels_out = [self._labels_buffer(item.lr) for item in items]
        pairs = [(item.lr, item.prior) for item in items]
        args = (self.tile, self.overlap, self.options.batch_size, self.options.precision)
        deep = any(item.format.bits > 8 for item in items)  # float outputs only where 8 bits would truncate them
        srs = super_resolve_many(self.generator, pairs, *args, labels_out, as_float=deep, runner=self.runner)
        if self.blend is not None:
            lows = super_resolve_many(self.blend.generator, pairs, *args, as_float=deep, runner=self.blend.runner)
            srs = [self._blended(low, sr, sr.shape[:2], 0) for low, sr in zip(lows, srs)]
        alphas = self._alphas(items, args)
        for item, sr, alpha, labels in zip(items, srs, alphas, labels_out):
            if self.report.stopped:  # an earlier write of this batch failed: the rest of it is not written
                self.report.not_done.append(item.src)
                continue
            try:
                write_picture(item.dst, item.format.encode(sr, alpha))
                if labels is not None:
                    write_png(self._prior_path(item.dst), self._prior_rgb(labels))
            except OSError as err:
                self._stop(item.src, err)
                continue
            self.report.written.append(item.dst)
            h, w = item.lr.shape[-2:]
            log.info(
                "%s -> %s (%dx%d -> %dx%d %s; %s)",
                item.src,
                item.dst,
                w,
                h,
                sr.shape[1],
                sr.shape[0],
                item.format.describe(),
                item.how,
            )

    def _alphas(self, items: list[Pending], args: tuple) -> list[np.ndarray | None]:
        """Each whole image's upscaled alpha ``(H, W)`` float32, or None: MATLAB bicubic, or (``alpha=model``) the
        generator on the alpha's grey replica with the image's prior, its channels averaged."""
        out: list[np.ndarray | None] = [None] * len(items)
        wanted = [i for i, item in enumerate(items) if item.alpha is not None]
        if self.options.alpha == "model" and wanted:
            pairs = [(items[i].alpha.expand(-1, 3, -1, -1), items[i].prior) for i in wanted]
            for i, sr in zip(
                wanted, super_resolve_many(self.generator, pairs, *args, as_float=True, runner=self.runner)
            ):
                out[i] = _grey(sr)
        else:
            for i in wanted:
                out[i] = upscale_alpha(items[i].alpha, self.scale)
        return out

    def _stream(self, item: Pending) -> None:
        """An image of several tiles: its output written band by band as the tiles finish (never held whole)."""
        h, w = item.lr.shape[-2:]
        size = (w * self.scale, h * self.scale)
        save_prior = self.options.save_prior
        args = (self.tile, self.overlap, self.options.batch_size, self.options.precision)
        fmt = item.format
        deep = fmt.bits > 8  # float bands only where 8 bits would truncate them
        try:
            with (
                PngStripWriter(item.dst, *size, fmt.channels, fmt.bits) as out,
                PngStripWriter(self._prior_path(item.dst), *size, 3) if save_prior else contextlib.nullcontext() as pr,
            ):
                bands = super_resolve_bands(
                    self.generator, item.lr, item.prior, *args, save_prior, runner=self.runner, as_float=deep
                )
                low = alpha_bands = None
                if self.blend is not None:
                    low = super_resolve_bands(
                        self.blend.generator, item.lr, item.prior, *args, runner=self.blend.runner, as_float=deep
                    )
                if item.alpha is not None and self.options.alpha == "model":
                    replica = item.alpha.expand(-1, 3, -1, -1)
                    alpha_bands = super_resolve_bands(
                        self.generator, replica, item.prior, *args, runner=self.runner, as_float=True
                    )
                top = 0
                for band, labels in bands:
                    if low is not None:
                        band = self._blended(next(low)[0], band, (size[1], size[0]), top)
                    alpha = None
                    if alpha_bands is not None:
                        alpha = _grey(next(alpha_bands)[0])
                    elif item.alpha is not None:
                        alpha = upscale_alpha(item.alpha, self.scale, top, band.shape[0])
                    top += band.shape[0]
                    out.write(fmt.encode(band, alpha))
                    if pr is not None:
                        pr.write(self._prior_rgb(labels))
        except OSError as err:
            self._stop(item.src, err)
            return
        self.report.written.append(item.dst)
        log.info(
            "%s -> %s (%dx%d -> %dx%d %s in bands of tiles; %s)",
            item.src,
            item.dst,
            w,
            h,
            *size,
            fmt.describe(),
            item.how,
        )

    def _blended(self, low: np.ndarray, high: np.ndarray, hr_size: tuple[int, int], top: int) -> np.ndarray:
        """Output rows ``top ..`` of the fidelity end (``low``) and the GAN end (``high``), mixed under the
        strength map: the one blend of both paths (whole images and streamed bands)."""
        return mix(low, high, self.blend.strength.rows(hr_size, top, high.shape[0]))

    def _labels_buffer(self, lr: torch.Tensor) -> np.ndarray | None:
        if not self.options.save_prior:
            return None
        return np.empty((lr.shape[-2] * self.scale, lr.shape[-1] * self.scale), np.uint8)

    @staticmethod
    def _prior_path(dst: Path) -> Path:
        return dst.with_name(dst.stem + "_prior.png")

    def _prior_rgb(self, labels: np.ndarray) -> np.ndarray:
        return (colorize(torch.from_numpy(labels), self.prior.colors) * 255).round().byte().permute(1, 2, 0).numpy()

    def _stop(self, src: Path, err: OSError) -> None:
        """No file is left half-written (atomic writes); the run stops and says why."""
        self.report.failures[str(src)] = err.strerror or str(err)
        self.report.stopped = f"{err.strerror or err} (nothing more is written; free space or another out=, then rerun)"
        log.error("stopped at %s: %s", src, err)


def predict_files(
    generator: ConditionedGenerator,
    files: list[Path],
    out: Path,
    prior: Prior,
    reader: InputReader,
    options: PredictSchema,
    edits: PriorEdits | None = None,
    segment: SegmentOptions = SegmentOptions(),
    runner=None,
    blend: Blend | None = None,
    channels: ChannelOverrides | None = None,
) -> PredictReport:
    """Super-resolve ``files`` into ``out`` (see the module docstring).

    Args:
        generator: the SFT-Net (any scale; ``generator.scale`` sets the output size).
        files: input images, in the order the report lists them.
        out: the output folder (``<out>/<stem>.png``; planned before any work: no two inputs may write one
            file and no output may replace an input).
        prior: where each image's prior comes from (``Prior.image_map``).
        reader: reads an input and its companions (``inputs.InputReader``: ``input=hr`` or ``lr``).
        options: the typed predict options (tile, overlap, batch size, precision, save_prior, overwrite).
        edits: prior edits on top of every image's map (override, mask, remap).
        segment: how a segmenter prior runs (whole image or tiles, engine).
        runner: the generator's engine (None: torch).
        blend: a strength map and the fidelity end it blends in.
        channels: continuous prior channels set for every image (``noise_level=`` / ``noise_map=``).

    Returns:
        The ``PredictReport``: outputs written, outputs kept (they existed), inputs refused with the reason,
        and, when a write failed, why the run stopped and which inputs were not processed.
    """
    start = time.perf_counter()
    channels = channels if channels is not None else ChannelOverrides()
    destinations = output_paths(files, out, options.save_prior)
    out.mkdir(parents=True, exist_ok=True)
    for dst in destinations.values():  # what a killed earlier run left half-written (this package's names only)
        for target in (dst, dst.with_name(dst.stem + "_prior.png")):
            for stale in remove_stale_temporaries(target):
                log.info("removed %s, left by an interrupted run", stale)
    run = Predictor(generator, prior, options, runner, blend)
    report = run.report
    try:
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
                maps = channels.maps(item, run.scale) if prior.continuous else None
                pm, how = prior.image_map(
                    item.lr, run.scale, item.labels, item.probs, edits, segment, maps, f"{src}: continuous prior"
                )
                if blend is not None:
                    blend.strength.check((item.lr.shape[-2] * run.scale, item.lr.shape[-1] * run.scale))
            except INPUT_ERRORS as err:
                report.failures[str(src)] = str(err)
                log.error("skipped %s: %s", src, err)
                continue
            run.add(Pending(src, dst, item.lr, pm, how, item.alpha, item.format))
        run.flush()
    except KeyboardInterrupt:  # Ctrl-C (sftgan-predict turns SIGTERM into it too): what is on disk is whole (atomic writes); say what it is and what is not
        report.interrupted = True
        report.stopped = "interrupted (Ctrl-C or SIGTERM)"
        handled = {destinations[s] for s in files} & {*report.written, *report.exists}
        report.not_done = [s for s in files if destinations[s] not in handled and str(s) not in report.failures]
    order = {src: i for i, src in enumerate(files)}
    report.not_done.sort(key=order.__getitem__)
    report.seconds = time.perf_counter() - start
    return report


def channel_overrides(options: PredictSchema, prior: Prior) -> ChannelOverrides:
    """``noise_level=`` / ``noise_map=`` as the prior's ``noise_sigma`` channel, checked before any image is read:
    a prior without that channel, a level outside its range or an unreadable map is a ``ConfigError``."""
    out = ChannelOverrides()
    given = {k: v for k, v in (("noise_level", options.noise_level), ("noise_map", options.noise_map)) if v is not None}
    if not given:
        return out
    key, value = next(iter(given.items()))
    channel = next((c for c in prior.continuous if c.name == "noise_sigma"), None)
    if channel is None:
        raise ConfigError(
            f"{key}={value}: prior={prior.name} has no noise_sigma channel (continuous: "
            f"{', '.join(c.name for c in prior.continuous) or 'none'}); a model trained with "
            "prior=[labels,degradation] degradation=mapped has one"
        )
    if options.noise_level is not None:
        if channel.problem(torch.tensor([float(options.noise_level)])):
            raise ConfigError(
                f"noise_level={options.noise_level}: must be in [{channel.low:g}, {channel.high:g}] ({channel.unit})"
            )
        out.values["noise_sigma"] = float(options.noise_level)
    else:
        # read once; unreadable, coloured or transparent: a configuration error now, before any image
        fraction = torch.from_numpy(read_fraction_map(options.noise_map, "noise_map"))
        out.files["noise_sigma"] = (channel, Path(options.noise_map), channel.physical(fraction))
    return out


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
            blend = Blend(
                fidelity,
                generator_runner(choice, fidelity, options.compile, options.compile_mode),
                StrengthMap.read(options.strength_map),
            )
    channels = channel_overrides(options, prior)
    files, labels, skipped = input_files(options.images, options.labels, options.demo_split, cfg.data)
    for name, reason in skipped.items():
        log.warning("skipped %s: %s", name, reason)
    reader = InputReader(
        generator.scale,
        prior.num_classes,
        options.input,
        labels,
        Path(options.priors) if options.priors else None,
        max_pixels=options.max_pixels,
        channels=prior.continuous,
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
    runner = generator_runner(choice, generator, options.compile, options.compile_mode)
    report = predict_files(
        generator, files, Path(options.out), prior, reader, options, edits, segment, runner, blend, channels
    )
    report.skipped = skipped
    return report, {"generator": generator, "prior": prior, "checkpoint": ckpt, "files": files}
