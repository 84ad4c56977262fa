"""Scenes whose classes cannot be told apart at LR: the controlled data of the prior ablation.

Every HR pixel is ``base * (1 + amplitude * pattern_c(y, x))``: ``base`` is a smooth luminance field
(a real photograph from scikit-image, low-passed), shared by all classes, and ``pattern_c`` is the
class's texture at the HR Nyquist frequency: ``flat`` (none), ``hstripes`` ``(-1)^y``, ``vstripes``
``(-1)^x``, ``checker`` ``(-1)^(x+y)``. MATLAB's antialiased bicubic x1/4 removes period-2 patterns
(exactly on a constant base, to ~1e-3 on the smooth one; ``ambiguity`` measures it), so the LR of a
region says nothing about its class while the HR textures differ by ``2 * amplitude * base``. Only a
prior can tell the generator which texture to draw, and the texture's contrast is proportional to
the local brightness, a multiplicative interaction between content and class.

``make_context_scene`` (``data.demo.kind=context``, the learned-prior pipeline) keeps the textures
locally ambiguous but makes the class identifiable from wider context, as the paper's premise needs:
horizontal bands with wavy boundaries in a fixed class order from top to bottom (like sky above
mountains above water), each band with its own brightness so the boundaries show at LR. A segmenter
that sees the whole image can tell which band a pixel is in; a generator that sees a few LR pixels
around it cannot.

The pattern's phase is tied to absolute pixel parity, so crops must start at multiples of the SR
scale and must not be flipped or transposed (``conf/data/ablation.yaml`` sets this).
"""

from __future__ import annotations

import numpy as np
import torch

from ..imresize import imresize

AMBIGUOUS_CLASSES: tuple[str, ...] = ("flat", "hstripes", "vstripes", "checker")
AMBIGUOUS_COLORS: tuple[tuple[int, int, int], ...] = ((153, 153, 153), (230, 90, 60), (60, 160, 230), (120, 200, 90))
BASE_PHOTOS = ("camera", "astronaut", "coffee", "rocket", "chelsea", "immunohistochemistry")
HELD_OUT_BASE_PHOTOS = ("stereo_motorcycle", "clock", "cat")


def pattern(cls: int, h: int, w: int) -> np.ndarray:
    """The class's +-1 texture (0 for ``flat``) on an (h, w) grid with absolute pixel parity."""
    y = np.arange(h)[:, None] % 2
    x = np.arange(w)[None, :] % 2
    sign = lambda v: 1.0 - 2.0 * v  # noqa: E731
    return [np.zeros((h, w)), sign(y) + 0 * x, sign(x) + 0 * y, sign((x + y) % 2)][cls].astype(np.float32)


def smooth_base(
    photo: np.ndarray, rng: np.random.Generator, size: int, lo: float = 0.25, hi: float = 0.75
) -> np.ndarray:
    """A smooth luminance field (size, size) in [lo, hi]: a random crop of ``photo``, low-passed at the LR rate."""
    gray = photo.astype(np.float32).mean(axis=2) / 255.0 if photo.ndim == 3 else photo.astype(np.float32) / 255.0
    y = rng.integers(gray.shape[0] - size + 1)
    x = rng.integers(gray.shape[1] - size + 1)
    crop = torch.from_numpy(np.ascontiguousarray(gray[y : y + size, x : x + size]))[None, None].double()
    smooth = imresize(imresize(crop, 1 / 8), size=(size, size))[0, 0].numpy()  # band-limited well below LR Nyquist
    smooth = (smooth - smooth.min()) / max(smooth.max() - smooth.min(), 1e-6)
    return (lo + (hi - lo) * smooth).astype(np.float32)


def voronoi_labels(
    rng: np.random.Generator, size: int, cells: int, num_classes: int = len(AMBIGUOUS_CLASSES)
) -> np.ndarray:
    """Regions as Voronoi cells of random seeds, each with a random class (uint8 (size, size))."""
    seeds = rng.uniform(0, size, (cells, 2))
    classes = rng.integers(0, num_classes, cells)
    yy, xx = np.mgrid[0:size, 0:size]
    d = (yy[..., None] - seeds[:, 0]) ** 2 + (xx[..., None] - seeds[:, 1]) ** 2
    return classes[d.argmin(axis=-1)].astype(np.uint8)


def make_ambiguous_scene(
    rng: np.random.Generator, size: int, photos: list[np.ndarray], amplitude: float = 0.3, cells: int = 6
) -> tuple[np.ndarray, np.ndarray]:
    """One scene: RGB uint8 (size, size, 3) (grey) and its label map uint8 (size, size)."""
    base = smooth_base(photos[int(rng.integers(len(photos)))], rng, size)
    labels = voronoi_labels(rng, size, cells)
    texture = np.zeros((size, size), np.float32)
    for c in range(1, len(AMBIGUOUS_CLASSES)):
        texture += (labels == c) * pattern(c, size, size)
    hr = np.clip(base * (1.0 + amplitude * texture), 0, 1)
    rgb = np.round(hr * 255).astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=2), labels


# Top to bottom in every context scene.
CONTEXT_ORDER: tuple[int, ...] = (1, 3, 0, 2)  # hstripes, checker, flat, vstripes


def _band_edges(rng: np.random.Generator, size: int, bands: int, min_frac: float = 0.14) -> list[np.ndarray]:
    """``bands - 1`` wavy boundaries (rows per column), ordered and at least ``min_frac * size`` apart."""
    while True:
        levels = np.sort(rng.uniform(0.12, 0.88, bands - 1))
        if np.all(np.diff(np.r_[0.0, levels, 1.0]) >= min_frac):
            break
    x = np.arange(size, dtype=np.float32)
    edges = []
    for level in levels:
        wave = sum(
            rng.uniform(0.01, 0.035) * size * np.sin(rng.uniform(1, 4) * 2 * np.pi * x / size + rng.uniform(0, 6.3))
            for _ in range(2)
        )
        edges.append(level * size + wave)
    return edges


def make_context_scene(
    rng: np.random.Generator, size: int, photos: list[np.ndarray], amplitude: float = 0.3
) -> tuple[np.ndarray, np.ndarray]:
    """One context scene: RGB uint8 (size, size, 3) (grey) and its label map uint8 (size, size)."""
    base = smooth_base(photos[int(rng.integers(len(photos)))], rng, size, 0.35, 0.85)
    yy = np.arange(size, dtype=np.float32)[:, None]
    band = sum((yy >= e[None, :]).astype(np.int64) for e in _band_edges(rng, size, len(CONTEXT_ORDER)))
    labels = np.asarray(CONTEXT_ORDER, np.uint8)[band]
    # Neighbouring bands differ in brightness by at least 0.2, so every boundary is visible at LR;
    # the gains are random, so brightness says nothing about the class.
    gains = [rng.uniform(0.45, 1.0)]
    while len(gains) < len(CONTEXT_ORDER):
        g = rng.uniform(0.45, 1.0)
        if abs(g - gains[-1]) >= 0.2:
            gains.append(g)
    texture = np.zeros((size, size), np.float32)
    for c in range(1, len(AMBIGUOUS_CLASSES)):
        texture += (labels == c) * pattern(c, size, size)
    hr = np.clip(base * np.asarray(gains, np.float32)[band] * (1.0 + amplitude * texture), 0, 1)
    rgb = np.round(hr * 255).astype(np.uint8)
    return np.repeat(rgb[..., None], 3, axis=2), labels


def ambiguity(photo: np.ndarray, size: int = 96, amplitude: float = 0.3, seed: int = 0) -> dict[str, float]:
    """Mean absolute difference between classes at HR and at LR (x1/4 imresize), same base, in 0-255 units.

    Returns ``{"hr": ..., "lr": ..., "ratio": lr / hr}`` averaged over all class pairs.
    """
    rng = np.random.default_rng(seed)
    base = smooth_base(photo, rng, size)
    images = [
        np.round(np.clip(base * (1 + amplitude * pattern(c, size, size)), 0, 1) * 255)
        for c in range(len(AMBIGUOUS_CLASSES))
    ]
    lrs = [imresize(torch.from_numpy(im)[None].double(), 0.25)[0].numpy() for im in images]
    hr_d, lr_d = [], []
    m = 4  # ignore the border, where the kernel's symmetric padding changes the pattern's phase
    for i in range(len(images)):
        for j in range(i + 1, len(images)):
            hr_d.append(np.abs(images[i] - images[j])[4 * m : -4 * m, 4 * m : -4 * m].mean())
            lr_d.append(np.abs(lrs[i] - lrs[j])[m:-m, m:-m].mean())
    hr, lr = float(np.mean(hr_d)), float(np.mean(lr_d))
    return {"hr": hr, "lr": lr, "ratio": lr / hr}
