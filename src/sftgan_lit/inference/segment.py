"""Running the prior's segmenter on a whole photo, or in blended tiles when the photo is too large.

The segmenter sees the MATLAB-bicubic x4 upsampled LR, so a 1000x750 LR photo is a 4000x3000 input to
a ResNet-101: about 12 GB of activations in float32. Above ``max_pixels`` (upsampled pixels) it runs on
overlapping LR tiles and their stride-8 logits are blended with linear ramps in the overlaps. Unlike
the generator's tiles this is an approximation (the segmenter's receptive field is hundreds of pixels);
the log says which way was used.
"""

from __future__ import annotations

import logging

import torch
from torch import nn

from .priors import CoarseLogitsPrior
from .tiling import autocast

log = logging.getLogger(__name__)


def _ramp(n: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """Blend weights along one axis of a tile: rising over ``overlap`` cells unless at the image border."""
    wt = torch.ones(n)
    if overlap > 0:
        ramp = (torch.arange(overlap, dtype=torch.float32) + 1) / (overlap + 1)
        k = min(overlap, n)
        if not at_start:
            wt[:k] = torch.minimum(wt[:k], ramp[:k])
        if not at_end:
            wt[n - k :] = torch.minimum(wt[n - k :], ramp[:k].flip(0))
    return wt


@torch.no_grad()
def segment(
    segmenter: nn.Module,
    lr: torch.Tensor,
    max_pixels: int | None = 4_000_000,
    tile: int = 256,
    overlap: int = 64,
    precision: str = "fp32",
) -> tuple[CoarseLogitsPrior, str]:
    """The prior of one LR image ``(1, 3, h, w)`` in [0, 1] as a ``CoarseLogitsPrior`` and how it was computed.

    ``max_pixels``: largest upsampled image (``16 * h * w``) segmented in one pass; None = always whole.
    ``tile``/``overlap``: LR pixels of the blended tiles (rounded to even, so tiles sit on the stride-8 grid).
    """
    lr = lr[None] if lr.dim() == 3 else lr
    _, _, h, w = lr.shape
    scale = segmenter.scale
    k = segmenter.coarse_stride
    device = next(segmenter.parameters()).device
    # LR pixels per logit cell (2 for x4 and stride 8); tile starts on that grid keep every tile's logits aligned.
    cell = k // scale
    if max_pixels is None or h * w * scale * scale <= max_pixels:
        with autocast(device, precision):
            logits = segmenter.coarse_logits(lr.to(device)).float().cpu()
        how = f"segmenter on the whole image ({scale * w}x{scale * h} upsampled)"
        return CoarseLogitsPrior(logits, segmenter, (h, w), scale), how
    tile = max(cell, tile - tile % cell)
    overlap = overlap - overlap % cell
    rows, cols = -(-h * scale // k), -(-w * scale // k)
    acc = torch.zeros(1, segmenter.num_classes, rows, cols)
    norm = torch.zeros(1, 1, rows, cols)
    n = 0
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            a, b = max(0, y0 - overlap), min(h, y0 + tile + overlap)
            c, d = max(0, x0 - overlap), min(w, x0 + tile + overlap)
            with autocast(device, precision):
                logits = segmenter.coarse_logits(lr[:, :, a:b, c:d].to(device)).float().cpu()
            ra, ca = a // cell, c // cell
            nr, nc = min(logits.shape[-2], rows - ra), min(logits.shape[-1], cols - ca)
            logits = logits[..., :nr, :nc]
            ov = overlap // cell
            wt = _ramp(nr, ov, a == 0, b == h)[:, None] * _ramp(nc, ov, c == 0, d == w)[None, :]
            acc[..., ra : ra + nr, ca : ca + nc] += logits * wt
            norm[..., ra : ra + nr, ca : ca + nc] += wt
            n += 1
    how = (
        f"segmenter in {n} blended tiles of {tile} LR px (+{overlap} overlap): the whole "
        f"{scale * w}x{scale * h} upsampled image is over segment_max_pixels={max_pixels}"
    )
    return CoarseLogitsPrior(acc / norm, segmenter, (h, w), scale), how
