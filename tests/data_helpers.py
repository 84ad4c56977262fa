"""Small image sets written to disk for the data tests (independent of the demo generator)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

# One colour per class: a block's class can be read back from its HR colour.
PALETTE = np.array([[20, 20, 20], [40, 200, 240], [30, 90, 160], [90, 200, 60],
                    [150, 60, 240], [200, 80, 40], [60, 140, 30], [240, 200, 120]], np.uint8)  # fmt: skip


def block_scene(h: int, w: int, block: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels constant on ``block``-sized squares, image = the class colour: alignment is checkable per pixel."""
    rng = np.random.default_rng(seed)
    grid = rng.integers(0, len(PALETTE), (-(-h // block), -(-w // block)))
    labels = np.kron(grid, np.ones((block, block), np.int64))[:h, :w].astype(np.uint8)
    return PALETTE[labels], labels


def write_folder(root: Path, n: int, h: int = 64, w: int = 80, block: int = 16, prefix: str = "") -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    images.mkdir(parents=True, exist_ok=True)
    labels.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img, lab = block_scene(h, w, block, seed=i + 100 * len(prefix))
        Image.fromarray(img).save(images / f"{prefix}{i:03d}.png")
        Image.fromarray(lab).save(labels / f"{prefix}{i:03d}.png")
    return images, labels
