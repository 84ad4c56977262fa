"""Embedded demo data: outdoor-like scenes composed from scikit-image's bundled photographs and textures.

Every pixel's class is known because the generator placed it: textures stand in for the outdoor
classes (the cat's fur -> animal, generated smooth gradients -> sky, ripples -> water) and photographs
serve as background. Scenes have a sky above a wavy horizon, a ground band, sometimes a mountain
ridge, and a few objects (buildings, bushes, animals), so regions have realistic shapes and boundaries.

Two pairs of classes cannot be told apart at LR, as in the prior ablation (``data/ambiguous.py``):
within a scene both classes of a pair are painted with the same photographic texture (skimage
``brick`` or ``gravel`` for building / mountain, ``grass`` for grass / plant) and differ only in a fine
texture at the HR Nyquist frequency, added in proportion to the local (LR-visible) brightness:
building has horizontal courses ``(-1)^y``, mountain none, grass vertical blades ``(-1)^x``, plant a
checker ``(-1)^(x+y)``. MATLAB's x1/4 bicubic removes those, so only the prior says which fine texture
a region has; the held-out scenes then measure what the prior contributes. The fine textures follow
absolute pixel parity: crops must start on the LR grid and must not be flipped or rescaled
(``conf/data/demo.yaml`` sets this).

Train and held-out splits use disjoint parts of each texture (rows) and disjoint photographs, so
validation measures generalisation, not memory. Generation is seeded and deterministic; it runs once
into a cache folder (a few seconds) and is reused afterwards.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..categories import OUTDOOR_CLASSES
from ..config import DemoConfig
from .ambiguous import (
    AMBIGUOUS_CLASSES,
    BASE_PHOTOS,
    HELD_OUT_BASE_PHOTOS,
    make_ambiguous_scene,
    make_context_scene,
    pattern,
)
from .io import write_png

log = logging.getLogger(__name__)

DEMO_VERSION = 2
# The LR-ambiguous pairs: each class's fine HR texture (an index of ambiguous.pattern: 0 none,
# 1 horizontal, 2 vertical, 3 checker) on a photographic texture shared by the pair.
FINE_TEXTURE = {"building": 1, "mountain": 0, "grass": 2, "plant": 3}
PAIRS = {"building": "structure", "mountain": "structure", "grass": "vegetation", "plant": "vegetation"}
FINE_AMPLITUDE = 0.3  # the fine texture's contrast relative to the local brightness
CLASS = {name: i for i, name in enumerate(OUTDOOR_CLASSES)}
# Photographs used as background, disjoint between splits.
TRAIN_PHOTOS = ("astronaut", "coffee", "camera", "immunohistochemistry", "hubble_deep_field")
HELD_OUT_PHOTOS = ("rocket", "stereo_motorcycle", "clock")
# Rows of each 512-row texture reserved for the held-out splits.
HELD_OUT_ROWS = 128


def default_cache_dir() -> Path:
    """``$SFTGAN_CACHE`` or ``~/.cache/sftgan_lit``: where demo data and prepared stores live."""
    return Path(os.environ.get("SFTGAN_CACHE", Path.home() / ".cache" / "sftgan_lit")).expanduser()


def _photo(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    img = img[0] if isinstance(img, tuple) else img
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3], dtype=np.uint8)


def _gray_texture(name: str, held_out: bool) -> np.ndarray:
    from skimage import data

    tex = getattr(data, name)().astype(np.float32) / 255.0
    tex = tex[-HELD_OUT_ROWS:] if held_out else tex[:-HELD_OUT_ROWS]
    return (tex - tex.mean()) / (tex.std() + 1e-6)


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise: random values on a coarse grid, bilinearly upsampled; zero mean, unit std."""
    import torch
    import torch.nn.functional as F

    coarse = torch.from_numpy(rng.standard_normal((1, 1, cells + 1, cells + 1)).astype(np.float32))
    up = F.interpolate(coarse, size=(size, size), mode="bicubic", align_corners=True)[0, 0].numpy()
    return (up - up.mean()) / (up.std() + 1e-6)


def _local_brightness(rgb: np.ndarray) -> np.ndarray:
    """The luminance of ``rgb`` (S, S, 3) low-passed well below the LR Nyquist rate (x1/8 and back)."""
    import torch

    from ..imresize import imresize

    lum = torch.from_numpy(np.ascontiguousarray(rgb.mean(axis=2), dtype=np.float64))[None, None]
    return imresize(imresize(lum, 1 / 8), size=tuple(rgb.shape[:2]))[0, 0].numpy().astype(np.float32)


class _Painter:
    def __init__(self, rng: np.random.Generator, size: int, held_out: bool) -> None:
        self.rng, self.size, self.held_out = rng, size, held_out
        self._textures = {n: _gray_texture(n, held_out) for n in ("grass", "gravel", "brick")}
        self._fur = [_photo(n) for n in (("chelsea",) if not held_out else ("cat",))]
        self._pair_base: dict[str, np.ndarray] = {}

    def begin_scene(self) -> None:
        """Draw each pair's shared texture for the next scene (both classes of a pair use it)."""
        structure = str(self.rng.choice(["brick", "gravel"]))
        tint = (
            ((0.35, 0.12, 0.08), (0.85, 0.55, 0.45)) if structure == "brick" else ((0.25, 0.22, 0.2), (0.7, 0.62, 0.55))
        )
        self._pair_base = {
            "structure": self._tint(self._crop(self._textures[structure]), *tint, 0.3),
            "vegetation": self._tint(self._crop(self._textures["grass"]), (0.1, 0.25, 0.05), (0.55, 0.8, 0.3), 0.3),
        }

    def _fine(self, cls: str) -> np.ndarray:
        """A paired class: the pair's texture plus the class's fine HR texture (module docstring)."""
        base = np.clip(self._pair_base[PAIRS[cls]], 0, 1)
        fine = FINE_AMPLITUDE * _local_brightness(base) * pattern(FINE_TEXTURE[cls], self.size, self.size)
        return base + fine[..., None]

    def _crop(self, tex: np.ndarray) -> np.ndarray:
        s = self.size
        if min(tex.shape[:2]) < s:
            reps = (-(-s // tex.shape[0]) + 1, -(-s // tex.shape[1]) + 1) + (1,) * (tex.ndim - 2)
            tex = np.tile(np.concatenate([tex, tex[::-1]], 0), reps)[: 4 * s, : 4 * s]
        y = self.rng.integers(tex.shape[0] - s + 1)
        x = self.rng.integers(tex.shape[1] - s + 1)
        out = tex[y : y + s, x : x + s]
        if self.rng.random() < 0.5:
            out = out[:, ::-1]
        return np.ascontiguousarray(out)

    def _tint(self, gray: np.ndarray, dark, light, contrast: float) -> np.ndarray:
        jitter = self.rng.uniform(-0.06, 0.06, 3)
        t = np.clip(0.5 + contrast * gray, 0, 1)[..., None]
        return np.asarray(dark) + jitter + t * (np.asarray(light) - np.asarray(dark))

    def texture(self, cls: str) -> np.ndarray:
        """Float RGB (S, S, 3) in [0, 1] filling a region of class ``cls``."""
        s, rng = self.size, self.rng
        if cls in PAIRS:
            rgb = self._fine(cls)
        elif cls == "sky":
            y = np.linspace(0, 1, s, dtype=np.float32)[:, None, None]
            top, bottom = np.array([0.25, 0.45, 0.85]), np.array([0.65, 0.8, 0.95])
            clouds = np.clip(_smooth_noise(rng, s, 4), 0, None)[..., None] * 0.12
            rgb = top + y * (bottom - top) + clouds
        elif cls == "water":
            yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
            waves = np.zeros((s, s), np.float32)
            for _ in range(4):
                angle = rng.uniform(-0.35, 0.35)
                freq = rng.uniform(0.25, 0.6)
                waves += np.sin(freq * (yy * np.cos(angle) + xx * np.sin(angle)) + rng.uniform(0, 2 * np.pi))
            gray = waves / 4 + 0.3 * _smooth_noise(rng, s, 8)
            rgb = self._tint(gray, (0.05, 0.2, 0.35), (0.35, 0.6, 0.75), 0.35)
        elif cls == "animal":
            fur = self._fur[int(rng.integers(len(self._fur)))].astype(np.float32) / 255.0
            rgb = self._crop(fur)
        else:
            raise ValueError(cls)
        return np.clip(rgb, 0, 1).astype(np.float32)


def _wavy_boundary(rng: np.random.Generator, size: int, level: float, amplitude: float) -> np.ndarray:
    x = np.arange(size, dtype=np.float32)
    y = np.full(size, level * size, np.float32)
    for _ in range(3):
        y += (
            amplitude
            * size
            * rng.uniform(0.2, 1.0)
            * np.sin(rng.uniform(1, 5) * 2 * np.pi * x / size + rng.uniform(0, 6.3))
            / 3
        )
    return y


def make_scene(
    rng: np.random.Generator, size: int, photos: list[np.ndarray], painter: _Painter
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: RGB uint8 (S, S, 3) and its label map uint8 (S, S), true by construction."""
    photo = photos[int(rng.integers(len(photos)))]
    y = rng.integers(photo.shape[0] - size + 1)
    x = rng.integers(photo.shape[1] - size + 1)
    rgb = photo[y : y + size, x : x + size].astype(np.float32) / 255.0
    labels = np.zeros((size, size), np.uint8)
    painter.begin_scene()
    yy, xx = np.mgrid[0:size, 0:size]

    def paint(mask: np.ndarray, cls: str) -> None:
        rgb[mask] = painter.texture(cls)[mask]
        labels[mask] = CLASS[cls]

    if rng.random() < 0.7:
        paint(yy < _wavy_boundary(rng, size, rng.uniform(0.2, 0.45), 0.08)[None, :], "sky")
    if rng.random() < 0.35:
        ridge = _wavy_boundary(rng, size, rng.uniform(0.35, 0.55), 0.25)
        paint((yy > ridge[None, :]) & (yy < 0.75 * size), "mountain")
    if rng.random() < 0.8:
        ground = str(rng.choice(["grass", "water", "mountain", "grass"]))
        paint(yy > _wavy_boundary(rng, size, rng.uniform(0.55, 0.8), 0.06)[None, :], ground)
    for _ in range(int(rng.integers(1, 4))):
        kind = str(rng.choice(["building", "plant", "animal"]))
        cy, cx = rng.uniform(0.3, 0.8) * size, rng.uniform(0.1, 0.9) * size
        if kind == "building":
            h, w = rng.uniform(0.2, 0.45) * size, rng.uniform(0.15, 0.4) * size
            mask = (np.abs(yy - cy) < h / 2) & (np.abs(xx - cx) < w / 2)
        elif kind == "plant":
            mask = np.zeros((size, size), bool)
            for _ in range(int(rng.integers(3, 7))):
                oy, ox = rng.normal(0, 0.07 * size, 2)
                r = rng.uniform(0.05, 0.11) * size
                mask |= (yy - cy - oy) ** 2 + (xx - cx - ox) ** 2 < r * r
        else:
            a, b = rng.uniform(0.08, 0.16) * size, rng.uniform(0.05, 0.1) * size
            mask = ((yy - cy) / b) ** 2 + ((xx - cx) / a) ** 2 < 1
        paint(mask, kind)
    return np.round(np.clip(rgb, 0, 1) * 255).astype(np.uint8), labels


def _resize_photo(photo: np.ndarray, size: int) -> np.ndarray:
    # small photographs are tiled by mirroring so any scene size can crop them
    while min(photo.shape[:2]) < size:
        photo = np.concatenate([photo, photo[::-1]], 0)
        photo = np.concatenate([photo, photo[:, ::-1]], 1)
    return photo


def generate_demo(root: str | os.PathLike | None = None, config: DemoConfig | None = None) -> Path:
    """Write the demo set (once) and return its folder.

    Layout (the ``folder`` layout with labels, so the demo exercises the same path as user data)::

        ROOT/demo-v1-<hash>/{train,val,test}/{images,labels}/NNNN.png
        ROOT/demo-v1-<hash>/background/images/NNNN.png
        ROOT/demo-v1-<hash>/demo.json     written last; its presence means the set is complete
    """
    config = config or DemoConfig()
    if config.size % 8:
        raise ValueError(f"demo scene size must be a multiple of 8, got {config.size}")
    if config.kind not in ("outdoor", "ambiguous", "context"):
        raise ValueError(f"data.demo.kind must be 'outdoor', 'ambiguous' or 'context', got {config.kind!r}")
    root = Path(root) if root is not None else default_cache_dir() / "demo"
    settings = {"version": DEMO_VERSION, **asdict(config)}
    prefix = "demo" if config.kind == "outdoor" else config.kind
    tag = f"{prefix}-v{DEMO_VERSION}-s{config.seed}-{config.size}-{config.num_train}-{config.num_val}-{config.num_test}-{config.num_background}"
    out = root / tag
    if (out / "demo.json").exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root, prefix=f".{tag}."))
    try:
        rng = np.random.default_rng(config.seed)
        splits = {"train": (config.num_train, False), "val": (config.num_val, True), "test": (config.num_test, True)}
        counts = {}
        ambiguous = config.kind in ("ambiguous", "context")
        make_grey = make_context_scene if config.kind == "context" else make_ambiguous_scene
        class_names = AMBIGUOUS_CLASSES if ambiguous else OUTDOOR_CLASSES
        for split, (n, held_out) in splits.items():
            names = (
                (HELD_OUT_BASE_PHOTOS if held_out else BASE_PHOTOS)
                if ambiguous
                else (HELD_OUT_PHOTOS if held_out else TRAIN_PHOTOS)
            )
            photos = [_resize_photo(_photo(p), config.size) for p in names]
            painter = _Painter(np.random.default_rng(rng.integers(2**63)), config.size, held_out)
            scene_rng = np.random.default_rng(rng.integers(2**63))
            hist = np.zeros(len(class_names), np.int64)
            for i in range(n):
                if ambiguous:
                    image, labels = make_grey(scene_rng, config.size, photos)
                else:
                    image, labels = make_scene(scene_rng, config.size, photos, painter)
                write_png(tmp / split / "images" / f"{i:04d}.png", image)
                write_png(tmp / split / "labels" / f"{i:04d}.png", labels)
                hist += np.bincount(labels.ravel(), minlength=len(hist))
            counts[split] = {c: round(float(v / max(hist.sum(), 1)), 4) for c, v in zip(class_names, hist)}
        photos = [_resize_photo(_photo(p), config.size) for p in TRAIN_PHOTOS]
        for i in range(config.num_background):
            photo = photos[i % len(photos)]
            y = rng.integers(photo.shape[0] - config.size + 1)
            x = rng.integers(photo.shape[1] - config.size + 1)
            write_png(tmp / "background" / "images" / f"{i:04d}.png", photo[y : y + config.size, x : x + config.size])
        (tmp / "demo.json").write_text(json.dumps({**settings, "class_fractions": counts}, indent=1))
        if out.exists():  # an unfinished earlier attempt (no demo.json)
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("demo data written to %s", out)
    return out


def test_scenes(config: DemoConfig | None = None, num_classes: int = 8, limit: int | None = None, scale: int = 4):
    """The test split of a demo set (generated on first use) as tensors, what the reports and benchmarks
    evaluate on: per scene ``(HR (3, H, W) in [0, 1], LR (1, 3, H/scale, W/scale) = MATLAB bicubic of the HR
    rounded to 8 bits, one-hot label-map prior (1, num_classes, H, W))``; void labels count as the last class."""
    import torch

    from ..imresize import imresize
    from .io import read_image, read_label_map

    root = generate_demo(default_cache_dir() / "demo", config) / "test"
    scenes = []
    for path in sorted((root / "images").glob("*.png"))[:limit]:
        hr = torch.from_numpy(np.array(read_image(path))).permute(2, 0, 1).float() / 255
        labels = torch.from_numpy(read_label_map(root / "labels" / path.name, num_classes)).long()
        lr = (imresize(hr[None], 1 / scale).clamp(0, 1) * 255).round() / 255
        prior = torch.nn.functional.one_hot(labels.clamp(max=num_classes - 1), num_classes).permute(2, 0, 1)[None]
        scenes.append((hr, lr, prior.float()))
    return scenes
