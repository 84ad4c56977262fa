"""What one user of the prior painter holds, without any web framework: the models, a scene, its prior
with the user's edits, and the last result kept for incremental recompute.

``AppModels`` is loaded once per server (the GAN generator, the optional fidelity generator for the texture
strength, the prior sources). A ``PaintSession`` is one browser session: its image, the computed prior of
the chosen source, the edits on top (painted classes, a remap, an override), the texture strength (per
image: interpolated weights; per region: painted strength, blending the two ends' outputs), for a generator
that reads a noise channel (``prior=[labels,degradation]``) the noise level to remove (per image: a slider;
per region: painted levels; the other continuous channels at their defaults), and an
``IncrementalSR`` per generator in use, so that a stroke recomputes only what it reaches.
``SessionStore`` bounds how many sessions the server keeps.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..categories import OUTDOOR_CLASSES, OUTDOOR_COLORS
from ..data.picture import PictureFormat, read_picture
from ..imresize import imresize
from ..inference.incremental import Box, IncrementalSR
from ..inference.inputs import picture_lr
from ..inference.predict import mix, upscale_alpha
from ..inference.tiling import to_uint8_hwc
from ..models import ConditionedGenerator, interpolate_generators
from ..priors import DenseProbs, EditedPrior, LabelPrior, Prior, SegmenterPrior, SegmentOptions, UniformPrior
from ..priors.channels import Channel, from_record
from ..priors.edits import fit_mask
from ..priors.validation import PriorError

KEEP = 255  # a class mask's "keep the computed prior" value (as in predict.py's prior_mask)
SOURCES = ("label map", "segmenter", "uniform")
# The strength brush's grey levels: strength = grey / 255 (0 = the fidelity model, 1 = the GAN model).
STRENGTH_LEVELS = (0.0, 0.25, 0.5, 0.75, 1.0)
# The noise brush's levels, as fractions of the noise channel's range (grey = fraction * 255).
NOISE_FRACTIONS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.6, 0.8, 1.0)
NOISE_CHANNEL = "noise_sigma"


class InputRefused(ValueError):
    """An image or an option the app refuses; the message is shown in the page."""


@dataclass
class Scene:
    """An image to paint: LR ``(1, 3, h, w)`` in [0, 1], for the demo scenes its label map (uint8
    ``(s*h, s*w)`` at the output size, 255 = void), and an upload's alpha at the LR size ``(1, 1, h, w)`` and
    file format (the download keeps its alpha channel and its greyness; the page shows 8-bit RGB)."""

    name: str
    lr: torch.Tensor
    labels: np.ndarray | None = None
    alpha: torch.Tensor | None = None
    format: PictureFormat = PictureFormat()


def class_names_of(generator: ConditionedGenerator) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """The classes the generator was trained with, as its file records them (else the paper's outdoor set)."""
    n = generator.config.num_classes
    names, colors = generator.record.get("class_names"), generator.record.get("colors")
    if names and colors and len(names) == n:
        return tuple(names), tuple(tuple(int(v) for v in c) for c in colors)
    if n == len(OUTDOOR_CLASSES):
        return OUTDOOR_CLASSES, OUTDOOR_COLORS
    raise PriorError(f"the checkpoint records no class names for its {n} classes; export it with its prior's classes")


@dataclass
class AppModels:
    """What the server loads once. ``fidelity``: the recipe's fidelity-stage generator (texture strength 0),
    None when there is none (the strength controls are then off). ``segmenter``: a prior source, or None."""

    generator: ConditionedGenerator
    fidelity: ConditionedGenerator | None = None
    segmenter: SegmenterPrior | None = None
    max_lr_pixels: int = 256 * 256
    max_pixels: int = 64_000_000
    segment: SegmentOptions = field(default_factory=SegmentOptions)  # how the segmenter runs (engine, precision)
    estimator: str | None = None  # a degradation estimator file: the continuous channels read from each image
    _mixed: OrderedDict = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.class_names, self.colors = class_names_of(self.generator)
        #: the continuous channels the generator reads after the classes (its record), and the noise one if any
        self.channels: tuple[Channel, ...] = from_record(self.generator.record.get("continuous"))
        if len(self.channels) != self.generator.config.num_continuous:
            raise PriorError("the checkpoint reads continuous channels its record does not name; export it again")
        self.noise: Channel | None = next((c for c in self.channels if c.name == NOISE_CHANNEL), None)
        # the estimator runs as a prior of the generator's channels, which checks that it predicts those
        self.estimating: Prior | None = None
        if self.estimator:
            records = [c.record() for c in self.channels]
            self.estimating = UniformPrior("app", continuous=records or None, estimator=self.estimator)
            self.estimating.check_ready()
        kw = {"num_classes": len(self.class_names), "class_names": self.class_names, "colors": self.colors}
        self.labels = LabelPrior("labels", **kw)
        self.uniform = UniformPrior("uniform", **kw)
        if self.segmenter is not None:
            self.segmenter.check_ready()  # a segmenter of other classes is refused at start, naming both

    @property
    def scale(self) -> int:
        return self.generator.scale

    def sources(self, scene: Scene) -> list[str]:
        """The prior sources this scene can use: its label map, the segmenter, uniform."""
        have = {"label map": scene.labels is not None, "segmenter": self.segmenter is not None, "uniform": True}
        return [s for s in SOURCES if have[s]]

    def generator_at(self, strength: float) -> ConditionedGenerator:
        """The generator at texture ``strength`` (weights interpolated; the last few are kept)."""
        if self.fidelity is None or strength == 1.0:
            return self.generator
        key = round(float(strength), 4)
        with self._lock:
            if key not in self._mixed:
                self._mixed[key] = interpolate_generators(self.fidelity, self.generator, key)
                while len(self._mixed) > 4:
                    self._mixed.popitem(last=False)
            self._mixed.move_to_end(key)
            return self._mixed[key]

    def scene_from_file(self, path: str | Path, mode: str) -> Scene:
        """An uploaded file as a scene: ``mode`` "lr" (super-resolve as is) or "hr" (modcrop + MATLAB bicubic
        x1/scale first), read at its precision with its alpha (``data.picture``). Refused with the reason: not
        an image, over the pixel limit, an LR larger than ``max_lr_pixels`` (the app is interactive;
        predict.py takes any size)."""
        if mode not in ("lr", "hr"):
            raise InputRefused(f"upload mode must be 'lr' or 'hr', got {mode!r}")
        picture = read_picture(path, max_pixels=self.max_pixels, min_size=2 * (self.scale if mode == "hr" else 1))
        lr, alpha, _ = picture_lr(picture, mode, self.scale)
        h, w = lr.shape[-2:]
        if h * w > self.max_lr_pixels:
            raise InputRefused(
                f"{Path(path).name}: LR {w}x{h} is larger than this app's limit of {self.max_lr_pixels} LR pixels; "
                "upload it as HR to downscale, crop it, or use predict.py (any size, tiled)"
            )
        return Scene(Path(path).stem, lr, alpha=alpha, format=PictureFormat(8, picture.grey, alpha is not None))


def layer_classes(layer: np.ndarray, colors, size: tuple[int, int], alpha_min: int = 128) -> np.ndarray:
    """A paint layer from the browser (RGBA uint8 ``(H, W, 4)``) -> class index per output pixel (uint8
    ``size``, 255 = unpainted). A pixel at least half opaque takes the nearest palette colour, so the
    anti-aliased edges of a brush stroke map to the stroke's class and never to an unrelated one."""
    if layer.ndim != 3 or layer.shape[2] not in (3, 4):
        raise InputRefused(f"paint layer must be an RGB(A) image, got shape {layer.shape}")
    painted = layer[..., 3] >= alpha_min if layer.shape[2] == 4 else np.ones(layer.shape[:2], bool)
    mask = np.full(layer.shape[:2], KEEP, np.uint8)
    rgb = layer[painted][:, :3].astype(np.int32)  # only the painted pixels: a stroke is small, the canvas is not
    dist = ((rgb[:, None, :] - np.asarray(colors, np.int32)[None]) ** 2).sum(-1)
    mask[painted] = dist.argmin(-1)
    try:
        return fit_mask(mask, size, "paint layer")
    except PriorError as err:
        raise InputRefused(str(err)) from err


def layer_levels(layer: np.ndarray, size: tuple[int, int], levels=STRENGTH_LEVELS, alpha_min: int = 128) -> np.ndarray:
    """A grey paint layer (RGBA) -> the painted fraction per output pixel: float32 ``size`` in [0, 1], NaN where
    unpainted; greys snap to ``levels`` (fractions; the brush paints grey ``fraction * 255``)."""
    values = np.asarray(levels, np.float32)
    grey = [[round(v * 255)] * 3 for v in levels]
    idx = layer_classes(layer, grey, size, alpha_min)
    return np.where(idx == KEEP, np.nan, values[np.minimum(idx, len(values) - 1)]).astype(np.float32)


def layer_strength(layer: np.ndarray, size: tuple[int, int], alpha_min: int = 128) -> np.ndarray:
    """A strength paint layer -> strength per output pixel in [0, 1] (``layer_levels`` of ``STRENGTH_LEVELS``)."""
    return layer_levels(layer, size, STRENGTH_LEVELS, alpha_min)


class PaintSession:
    """One user's image, prior edits and results. Not thread-safe: the store hands it to one request at a time."""

    def __init__(self, models: AppModels, scene: Scene, source: str | None = None) -> None:
        self.models = models
        self.scene = scene
        s = models.scale
        h, w = scene.lr.shape[-2:]
        self.hr_size = (h * s, w * s)
        self.paint = np.full(self.hr_size, KEEP, np.uint8)
        self.remap: dict[int, int] = {}
        self.override: int | None = None
        self.strength = 1.0
        self.strength_paint = np.full(self.hr_size, np.nan, np.float32)
        noise = models.noise
        # the continuous channels the estimator reads from the LR ({name: (h, w)}), else each channel's default
        self.estimated = models.estimating.estimate(scene.lr) if models.estimating is not None else {}
        self.noise_level = noise.default if noise is not None else 0.0  # the channel's unit (8-bit levels)
        if noise is not None and noise.name in self.estimated:  # the slider starts at the estimated level
            self.noise_level = float(self.estimated[noise.name].mean().round())
        self.noise_paint = np.full(self.hr_size, np.nan, np.float32)  # painted levels, NaN: the slider's
        self._results: dict[float, IncrementalSR] = {}  # strength -> its kept result
        self.bicubic = to_uint8_hwc(imresize(scene.lr, s)[0])
        self.alpha = upscale_alpha(scene.alpha, s) if scene.alpha is not None else None  # (H, W) for the download
        self.last: dict = {}
        self._prior: tuple | None = None
        self.set_source(source or models.sources(scene)[0])

    # ---------------------------------------------------------------- the prior
    def set_source(self, source: str) -> None:
        """Compute the prior of ``source`` ("label map", "segmenter", "uniform") for the image."""
        if source not in self.models.sources(self.scene):
            raise InputRefused(
                f"prior source {source!r} is not available for {self.scene.name} "
                f"(available: {', '.join(self.models.sources(self.scene))})"
            )
        prior: Prior = {"label map": self.models.labels, "segmenter": self.models.segmenter}.get(
            source, self.models.uniform
        )
        pm, _ = prior.image_map(self.scene.lr, self.models.scale, labels=self.scene.labels, segment=self.models.segment)
        self.source = source
        self.base = pm.full().float().contiguous()
        self._prior = None

    def edit_class(self, name: str | None) -> int | None:
        if name in (None, ""):
            return None
        if name not in self.models.class_names:
            raise InputRefused(f"unknown class {name!r}; the classes are {', '.join(self.models.class_names)}")
        return self.models.class_names.index(name)

    def set_paint_layer(self, layer: np.ndarray | None) -> None:
        self.paint = (
            np.full(self.hr_size, KEEP, np.uint8)
            if layer is None
            else layer_classes(layer, self.models.colors, self.hr_size)
        )

    def set_strength_layer(self, layer: np.ndarray | None) -> None:
        self.strength_paint = (
            np.full(self.hr_size, np.nan, np.float32) if layer is None else layer_strength(layer, self.hr_size)
        )

    def set_remap(self, source: str | None, target: str | None) -> None:
        """Move ``source``'s probability to ``target`` (both None: no remap)."""
        a, b = self.edit_class(source), self.edit_class(target)
        if (a is None) != (b is None):
            raise InputRefused("remap needs both classes: from and to")
        self.remap = {} if a is None or a == b else {a: b}

    def set_override(self, name: str | None) -> None:
        self.override = self.edit_class(name)

    def set_noise_layer(self, layer: np.ndarray | None) -> None:
        """The painted noise levels (grey brush: ``NOISE_FRACTIONS`` of the noise channel's range)."""
        noise = self.models.noise
        if layer is None or noise is None:
            if layer is not None:
                raise InputRefused("this model reads no noise level: the noise brush has no effect")
            self.noise_paint = np.full(self.hr_size, np.nan, np.float32)
            return
        fractions = layer_levels(layer, self.hr_size, NOISE_FRACTIONS)
        self.noise_paint = (noise.low + fractions * (noise.high - noise.low)).astype(np.float32)

    def set_noise(self, level: float) -> None:
        """The noise level to remove where none is painted, in the noise channel's unit (8-bit levels)."""
        noise = self.models.noise
        if noise is None:
            raise InputRefused("this model reads no noise level (train it with prior=[labels,degradation])")
        if not (isinstance(level, int | float) and noise.low <= level <= noise.high):
            raise InputRefused(f"noise level {level}: must be in [{noise.low:g}, {noise.high:g}] ({noise.unit})")
        self.noise_level = float(level)

    def continuous(self) -> torch.Tensor:
        """The continuous channels ``(1, K, H, W)``, normalised: the noise level (painted, else the slider's),
        the other channels as the estimator reads them, else at their defaults."""
        s = self.models.scale
        maps = []
        for c in self.models.channels:
            if c is self.models.noise:
                values = torch.from_numpy(np.where(np.isnan(self.noise_paint), self.noise_level, self.noise_paint))
            elif c.name in self.estimated:
                values = self.estimated[c.name].repeat_interleave(s, 0).repeat_interleave(s, 1)
            else:
                values = torch.full(self.hr_size, c.default)
            maps.append(c.normalise(values))
        return torch.stack(maps)[None] if maps else torch.zeros(1, 0, *self.hr_size)

    def set_strength(self, strength: float) -> None:
        if not (isinstance(strength, int | float) and 0.0 <= strength <= 1.0):
            raise InputRefused(f"strength={strength}: must be in [0, 1]")
        if self.models.fidelity is None and strength != 1.0:
            raise InputRefused("texture strength needs the fidelity-stage generator (checkpoint_fidelity=)")
        self.strength = float(strength)

    def prior(self) -> torch.Tensor:
        """The edited prior ``(1, C + K, H, W)``: remap, then override, then the painted classes on top, then the
        continuous channels (``continuous``); kept until the next edit, with its argmax image (the result, the
        overlay and the download share them)."""
        state = (
            self.source,
            self.override,
            tuple(self.remap.items()),
            self.paint.tobytes(),
            self.noise_level,
            self.noise_paint.tobytes(),
        )
        if self._prior is None or self._prior[0] != state:
            mask = self.paint if (self.paint != KEEP).any() else None
            edited = EditedPrior(DenseProbs(self.base, self.models.scale), self.override, mask, self.remap).full()
            if self.models.channels:
                edited = torch.cat([edited, self.continuous()], dim=1)
            self._prior = (state, edited.contiguous(), None)
        return self._prior[1]

    def prior_image(self) -> np.ndarray:
        """The edited prior's most likely class per output pixel in the class colours: uint8 ``(H, W, 3)``
        (what ``predict.py prior_mask=`` reads back)."""
        probs = self.prior()
        state, _, rgb = self._prior
        if rgb is None:  # once per edit: the overlay and the download both use it
            rgb = np.asarray(self.models.colors, np.uint8)[probs[0, : len(self.models.class_names)].argmax(0).numpy()]
            self._prior = (state, probs, rgb)
        return rgb

    def overlay(self, alpha: float = 0.45) -> np.ndarray:
        """The bicubic upscale with the edited prior over it, translucent: uint8 ``(H, W, 3)``."""
        mix_ = self.bicubic.astype(np.float32) * (1 - alpha) + self.prior_image().astype(np.float32) * alpha
        return mix_.round().astype(np.uint8)

    # ---------------------------------------------------------------- the result
    def _update(self, strength: float, prior: torch.Tensor) -> tuple[Box | None, bool]:
        """Bring the kept result at ``strength`` up to ``prior``: (the rewritten LR box, whether it was new)."""
        if strength in self._results:
            return self._results[strength].update(prior), False
        self._results[strength] = IncrementalSR(self.models.generator_at(strength), self.scene.lr, prior)
        h, w = self.scene.lr.shape[-2:]
        return (0, h, 0, w), True

    def run(self) -> np.ndarray:
        """Super-resolve with the current prior, edits and strength; returns SR uint8 ``(H, W, 3)``.
        ``last`` says what was recomputed and how long it took."""
        start = time.perf_counter()
        prior = self.prior()
        regions = ~np.isnan(self.strength_paint)
        wanted = {self.strength} | ({0.0, 1.0} if regions.any() else set())
        for stale in set(self._results) - wanted:  # bounded memory: one result per strength in use
            del self._results[stale]
        boxes, fresh = [], False
        for strength in sorted(wanted):
            box, new = self._update(strength, prior)
            fresh |= new
            boxes.append(box)
        image = self._results[self.strength].image.copy()
        if regions.any():
            blended = mix(self._results[0.0].image, self._results[1.0].image, np.nan_to_num(self.strength_paint))
            image[regions] = blended[regions]
        h, w = self.scene.lr.shape[-2:]
        box = _union([b for b in boxes if b is not None])
        area = 0 if box is None else (box[1] - box[0]) * (box[3] - box[2])
        self.last = {
            "seconds": time.perf_counter() - start,
            "full": fresh,
            "box": box,
            "fraction": area / (h * w),
        }
        return image


def _union(boxes: list[Box]) -> Box | None:
    if not boxes:
        return None
    return min(b[0] for b in boxes), max(b[1] for b in boxes), min(b[2] for b in boxes), max(b[3] for b in boxes)


class SessionStore:
    """At most ``capacity`` sessions, the least recently used dropped first; a lock per session so that one
    browser's requests run one at a time while other sessions go on."""

    def __init__(self, capacity: int = 8, on_evict=None) -> None:
        if not (isinstance(capacity, int) and capacity >= 1):
            raise ValueError(f"max_sessions={capacity}: must be an integer >= 1")
        self.capacity = capacity
        self.on_evict = on_evict  # called with the key of each dropped session (its files go with it)
        self._items: OrderedDict[str, tuple[PaintSession, threading.Lock]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    def add(self, session: PaintSession, key: str | None = None) -> str:
        key = key or uuid.uuid4().hex
        with self._lock:
            self._items[key] = (session, threading.Lock())
            self._items.move_to_end(key)
            dropped = []
            while len(self._items) > self.capacity:
                dropped.append(self._items.popitem(last=False)[0])
        for old in dropped:
            if self.on_evict is not None:
                self.on_evict(old)
        return key

    def get(self, key: str | None) -> tuple[PaintSession, threading.Lock]:
        with self._lock:
            if not key or key not in self._items:
                raise InputRefused(
                    f"no image in this session (the server keeps the last {self.capacity} sessions): pick a scene or upload again"
                )
            self._items.move_to_end(key)
            return self._items[key]
