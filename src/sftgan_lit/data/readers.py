"""Where a dataset's images come from: a prepared store (memory-mapped), a streaming store
(``streaming.StreamReader``) or the source files (decoded each time).

Every reader (``Reader``) returns the same thing for entry ``i``: ``(image uint8 (H, W, 3), labels uint8 (H, W) or
None, probs (H, W, C) or None, category, name)``; stored probabilities are uint8 (sum 255), priors read
from files are float32 (sum 1). The dataset crops them without caring which reader it has.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np
import torch

from ..priors import validate_probs
from .io import DEFAULT_MAX_PIXELS, ImageError, read_image, read_label_map
from .sources import SourceItem
from .store import Store
from .transforms import modcrop

Sample = tuple[np.ndarray, "np.ndarray | None", "np.ndarray | None", int, str]


class Reader(Protocol):
    """What a dataset reads entries through."""

    num_classes: int

    def __len__(self) -> int: ...

    @property
    def has_labels(self) -> bool: ...

    def sizes(self) -> list[tuple[int, int]] | None:
        """Each entry's ``(H, W)`` when known without decoding."""

    def load(self, i: int) -> Sample:
        """Entry ``i``: ``(image uint8 (H, W, 3), labels uint8 (H, W) or None, probs (H, W, C) or None, category, name)``."""

    def check(self, i: int, labels: np.ndarray | None, probs: np.ndarray | None) -> None:
        """Raise on a crop of entry ``i`` whose stored bytes are corrupted."""


def load_array_file(path: Path, what: str = "(C, H, W)") -> torch.Tensor:
    """A stored array (``.npy`` without pickles, or a tensor in ``.pt``/``.pth`` read with ``weights_only``) as a
    float32 tensor; ``what`` names the expected shape in errors. Anything else is an ``ImageError`` naming the file."""
    if path.suffix == ".npy":
        try:
            array = np.load(path, allow_pickle=False)
        except (ValueError, OSError, EOFError) as err:
            raise ImageError(f"{path}: not a plain .npy array ({err})") from err
        if array.dtype.kind not in "fiu":
            raise ImageError(f"{path}: expected a numeric array {what}, got dtype {array.dtype}")
        return torch.from_numpy(np.asarray(array, dtype=np.float32))
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # garbage, truncated, or pickled code: this file's failure, never a reason to run code
        raise ImageError(
            f"{path}: not a tensor file that loads without running code ({type(err).__name__}); "
            "save it with torch.save(tensor) or as .npy"
        ) from err
    if not isinstance(obj, torch.Tensor):
        raise ImageError(f"{path}: expected a tensor {what}, got {type(obj).__name__}")
    if obj.is_complex() or obj.dtype == torch.bool:
        raise ImageError(f"{path}: expected a real-valued tensor {what}, got {obj.dtype}")
    return obj.float()


def load_prior_file(path: Path, num_classes: int, size: tuple[int, int]) -> np.ndarray:
    """A stored prior ``(C, H, W)`` float (``.npy`` or a tensor in ``.pt``/``.pth``), validated -> ``(H, W, C)`` float32."""
    probs = load_array_file(path)
    if probs.dim() == 4 and probs.shape[0] == 1:  # the original saved (1, C, H, W)
        probs = probs[0]
    validate_probs(probs, num_classes, size=None, source=str(path))
    h, w = probs.shape[-2:]
    if (h, w) != size:
        raise ImageError(f"{path}: prior size {h}x{w} does not match its image {size[0]}x{size[1]}")
    return probs.permute(1, 2, 0).contiguous().numpy()


def read_source(
    item: SourceItem,
    num_classes: int,
    background: bool = False,
    modcrop_to: int = 1,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """One source image with its label map and prior file, checked and cut to a multiple of ``modcrop_to``.

    Returns ``(image uint8 (H, W, 3), labels uint8 (H, W) or None, probs float32 (H, W, C) or None)``;
    a background-only image gets all-background labels and no prior file.
    """
    if item.missing:
        raise FileNotFoundError(item.missing)
    image = read_image(item.image, max_pixels=max_pixels)
    h, w = image.shape[:2]
    labels = probs = None
    if background:
        labels = np.zeros((h, w), np.uint8)
    elif item.labels is not None:
        labels = read_label_map(item.labels, num_classes, max_pixels)
        if labels.shape != (h, w):
            raise ImageError(
                f"{item.labels}: label map is {labels.shape[1]}x{labels.shape[0]}, its image {item.image} is {w}x{h}"
            )
    if item.prior is not None and not background:
        probs = load_prior_file(item.prior, num_classes, (h, w))
    image = modcrop(image, modcrop_to)
    labels = np.ascontiguousarray(modcrop(labels, modcrop_to)) if labels is not None else None
    probs = modcrop(probs, modcrop_to) if probs is not None else None
    return image, labels, probs


class FileReader:
    """Decode source files on every access (the slow path; also what the loader benchmark compares against)."""

    def __init__(
        self,
        items: Sequence[SourceItem],
        num_classes: int,
        modcrop_to: int = 8,
        background: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> None:
        self.items = list(items)
        self.num_classes = num_classes
        self.modcrop_to = modcrop_to
        self.background = background
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return len(self.items)

    @property
    def has_labels(self) -> bool:
        return self.background or all(i.labels is not None for i in self.items)

    def sizes(self) -> None:
        """Image sizes are only known by decoding (EXIF orientation may swap them)."""
        return None

    def load(self, i: int) -> Sample:
        item = self.items[i]
        image, labels, probs = read_source(item, self.num_classes, self.background, self.modcrop_to, self.max_pixels)
        return image, labels, probs, (0 if self.background else item.category), item.name

    def check(self, i: int, labels: np.ndarray | None, probs: np.ndarray | None) -> None:
        """Nothing to check: the source files were validated when decoded (``StoreReader`` checks its crops)."""


class StoreReader:
    """Read entries of a prepared ``Store`` (memory-mapped; only the crop is copied)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.num_classes = store.num_classes
        self.background = bool(store.header.get("background", False))

    def __len__(self) -> int:
        return len(self.store)

    @property
    def has_labels(self) -> bool:
        return self.store.has_labels

    def sizes(self) -> list[tuple[int, int]]:
        """``(H, W)`` of each entry, from the store's index."""
        return [(e.height, e.width) for e in self.store.entries]

    def load(self, i: int) -> Sample:
        s = self.store
        e = s.entries[i]
        return s.image(i), s.labels(i), s.probs(i), (0 if self.background else e.category), e.file

    def check(self, i: int, labels: np.ndarray | None, probs: np.ndarray | None) -> None:
        if probs is not None:
            self.store.check_probs(i, probs)
        if labels is not None:
            self.store.check_labels(i, labels)
