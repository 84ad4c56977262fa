"""Aligned geometric transforms for HR images, label maps and priors (numpy/torch, CPU workers).

The random rescale of the original recipe ("scales 1.0 ... 0.5 of the source before cropping") is
computed only for the crop that is kept: the HR crop equals ``imresize(source, scale)[top:top+size,
left:left+size]`` (MATLAB bicubic with antialiasing, the same tables as ``imresize``) but reads only
the window of the source that those output pixels touch. Label maps and stored priors follow with
nearest-neighbour sampling on the same pixel-centre grid (as the original resized its segmentation
maps with nearest), so probabilities keep summing to 1 and labels stay labels.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch

from ..degradations import bicubic_lr
from ..imresize import contributions


def rescaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Output size of ``imresize(img, scale)``: ``(ceil(H * scale), ceil(W * scale))``."""
    return math.ceil(height * scale), math.ceil(width * scale)


@lru_cache(maxsize=512)
def _axis_tables(in_length: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    out_length = math.ceil(in_length * scale)
    weights, indices = contributions(in_length, out_length, scale, antialiasing=True)
    return weights.float().numpy(), indices.numpy()


def _window_matrix(in_length: int, scale: float, start: int, size: int) -> tuple[np.ndarray, int]:
    """Dense weights ``(size, window)`` for output samples ``[start, start+size)`` and the window's first input index."""
    weights, indices = _axis_tables(in_length, scale)
    w, idx = weights[start : start + size], indices[start : start + size]
    lo, hi = int(idx.min()), int(idx.max()) + 1
    mat = np.zeros((size, hi - lo), dtype=np.float32)
    # mirrored taps at the borders can hit the same input sample twice: accumulate
    np.add.at(mat, (np.arange(size)[:, None].repeat(idx.shape[1], 1), idx - lo), w)
    return mat, lo


def rescale_crop_image(image: np.ndarray, scale: float, top: int, left: int, size: int) -> torch.Tensor:
    """``imresize(image, scale)[:, top:top+size, left:left+size]`` computed from the needed window only.

    Args:
        image: RGB uint8 ``(H, W, 3)`` (e.g. a memory-mapped store entry).
    Returns:
        float32 ``(3, size, size)`` in [0, 1] (bicubic overshoot clamped).
    """
    if scale == 1.0:
        return to_float_chw(image[top : top + size, left : left + size])
    h, w = image.shape[:2]
    mh, r0 = _window_matrix(h, scale, top, size)
    mw, c0 = _window_matrix(w, scale, left, size)
    window = image[r0 : r0 + mh.shape[1], c0 : c0 + mw.shape[1]].astype(np.float32)  # a copy, never the store's bytes
    x = torch.from_numpy(window).permute(2, 0, 1).div_(255.0)  # (3, h', w')
    x = torch.matmul(torch.from_numpy(mh), x)  # rows first, as MATLAB does on equal scales
    x = torch.matmul(x, torch.from_numpy(mw).T)
    return x.clamp_(0.0, 1.0)


def to_float_chw(image: np.ndarray) -> torch.Tensor:
    """RGB uint8 ``(H, W, 3)`` (possibly a read-only memory map) -> float32 ``(3, H, W)`` in [0, 1], a copy."""
    return torch.from_numpy(image.astype(np.float32)).permute(2, 0, 1).div_(255.0).contiguous()


def nearest_indices(in_length: int, scale: float, start: int, size: int) -> np.ndarray:
    """Source indices of output samples ``[start, start+size)`` on imresize's pixel-centre grid."""
    out = np.arange(start, start + size, dtype=np.float64)
    return np.minimum(np.floor((out + 0.5) / scale).astype(np.int64), in_length - 1)


def rescale_crop_nearest(array: np.ndarray, scale: float, top: int, left: int, size: int) -> np.ndarray:
    """Nearest-neighbour version of ``rescale_crop_image`` for ``(H, W)`` or ``(H, W, C)`` arrays (labels, priors)."""
    if scale == 1.0:
        return np.array(array[top : top + size, left : left + size])
    h, w = array.shape[:2]
    rows = nearest_indices(h, scale, top, size)
    cols = nearest_indices(w, scale, left, size)
    return np.ascontiguousarray(array[rows[:, None], cols[None, :]])


def dihedral(x: torch.Tensor, hflip: bool, vflip: bool, transpose: bool) -> torch.Tensor:
    """One of the 8 flips/rotations by 90 degrees on the last two dims (the original's ``augment``)."""
    if hflip:
        x = x.flip(-1)
    if vflip:
        x = x.flip(-2)
    if transpose:
        x = x.transpose(-1, -2)
    return x.contiguous()


def make_lr(hr: torch.Tensor, scale: int) -> torch.Tensor:
    """LR from an HR crop with the package's MATLAB bicubic: ``imresize(hr, 1/scale)`` clamped to [0, 1]."""
    return bicubic_lr(hr, scale)


def modcrop(array: np.ndarray, multiple: int) -> np.ndarray:
    """Crop the bottom/right so that H and W are multiples of ``multiple`` (the literature's ``modcrop``)."""
    h, w = array.shape[:2]
    return array[: h - h % multiple, : w - w % multiple]


def lr_from_image(
    image: np.ndarray, mode: str, scale: int, levels: int = 255
) -> tuple[torch.Tensor, tuple[int, int] | None]:
    """An input image as the LR to super-resolve: ``(1, C, h, w)`` in [0, 1], and, for ``mode="hr"``, the HR size
    before modcrop (companion files of that size are cut with the image).

    Args:
        image: uint8 ``(H, W, C)``, or float32 ``(H, W, C)`` in [0, 1] (a ``picture.Picture``'s samples at full
            precision).
        mode: ``"lr"``: the image is the LR. ``"hr"``: the paper's test protocol: modcrop to ``scale``,
            MATLAB-bicubic x1/``scale``, rounded to the file's sample depth (``levels``: 255 for 8 bits, as the
            released test sets stored their LR as PNGs; 65535 for 16).
        scale: the SR factor.
        levels: the largest sample value of the image's depth.
    """
    from .io import ImageError

    def as_tensor(a: np.ndarray) -> torch.Tensor:
        return to_float_chw(a) if a.dtype == np.uint8 else torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))

    if mode == "lr":
        return as_tensor(image)[None], None
    if mode != "hr":
        raise ValueError(f"input must be 'hr' or 'lr', got {mode!r}")
    hr = modcrop(image, scale)
    if hr.shape[0] < scale or hr.shape[1] < scale:
        raise ImageError(f"input=hr: a {image.shape[1]}x{image.shape[0]} image is smaller than the scale {scale}")
    lr = make_lr(as_tensor(hr)[None], scale)
    return (lr * levels).round() / levels, image.shape[:2]
