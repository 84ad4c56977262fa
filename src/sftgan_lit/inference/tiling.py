"""Tiled super-resolution: bounded memory for any image size, identical to a whole-image pass.

A window of the LR image, grown by ``overlap`` LR pixels on each side, goes through the generator and
only its core is kept. When ``overlap`` is at least the generator's receptive field radius
(``receptive_field``), every kept pixel saw exactly what it sees in a whole-image pass, so the stitched
output equals the whole-image output up to float rounding. Peak memory depends on the tile size only:
the output is written per tile into a uint8 image, the prior is cut per window (``priors.PriorMap``),
and inside a window the upsampling layers, whose activations are 16x larger than the trunk's, run on
strips of rows with their own (2 LR px) context (``run_generator``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..models import ConditionedGenerator
from ..precision import autocast
from ..priors import PriorMap


@torch.no_grad()
def receptive_field(generator: ConditionedGenerator, within: nn.Module | None = None) -> int:
    """Radius of the generator's receptive field in LR pixels (an upper bound, rounded up).

    Each stride-1 conv adds ``dilation * (kernel - 1) / 2`` pixels at the resolution it runs at,
    i.e. that divided by its upsampling factor in LR pixels; summing over all convs bounds the
    radius of any path through the network (residual branches only shorten paths). Convs whose
    stride equals their kernel (the condition net's first layer, on the scale grid) add nothing
    for windows that start on LR pixels. ``within``: count only that submodule's convs (e.g.
    ``generator.HR_branch``, the halo of its strips).
    """
    scale = generator.scale
    h = w = 8
    total = 0.0
    hooks = []

    def hook(module: nn.Conv2d, inputs, _output) -> None:
        nonlocal total
        k, s, d = module.kernel_size[0], module.stride[0], module.dilation[0]
        if s == k:
            return
        if s != 1:
            raise ValueError(f"receptive_field: unsupported strided conv {module}")
        factor = inputs[0].shape[-2] / h
        total += d * (k - 1) / 2 / factor

    for m in (within or generator).modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(hook))
    try:
        param = next(generator.parameters())
        lr = torch.zeros(1, generator.config.in_channels, h, w, device=param.device, dtype=param.dtype)
        c, k = generator.config.num_classes, generator.config.num_continuous
        prior = (
            torch.cat(
                [
                    torch.full((1, c, h * scale, w * scale), 1.0 / c, device=param.device, dtype=param.dtype),
                    torch.zeros((1, k, h * scale, w * scale), device=param.device, dtype=param.dtype),
                ],
                dim=1,
            )
            if generator.uses_prior
            else None
        )
        generator(lr, prior)
    finally:
        for hk in hooks:
            hk.remove()
    return math.ceil(total - 1e-9)


def run_generator(
    generator: ConditionedGenerator,
    lr: torch.Tensor,
    prior: torch.Tensor | None,
    hr_rows: int | None = 64,
    halo: int | None = None,
) -> torch.Tensor:
    """``generator(lr, prior)``, with the upsampling layers (``HR_branch``) run on strips of ``hr_rows``
    rows of the trunk's grid plus ``halo`` LR pixels of context (their receptive field, so the result is
    the same).

    At SR resolution each activation is 64 x 16 floats per LR pixel (440 MB for a 328 x 328 LR
    window): run at once, those layers set the peak memory; in strips they take ``hr_rows / h`` of it.
    """
    if hr_rows is None or lr.shape[-2] <= hr_rows:
        return generator(lr, prior)
    fea = generator.lr_features(lr, prior)
    halo = receptive_field(generator, within=generator.HR_branch) if halo is None else halo
    halo = math.ceil(halo / generator.lr_multiple)  # in cells of the trunk's grid
    s, h = generator.cond_stride, fea.shape[-2]
    out = None
    for y0 in range(0, h, hr_rows):
        y1 = min(h, y0 + hr_rows)
        a, b = max(0, y0 - halo), min(h, y1 + halo)
        part = generator.HR_branch(fea[:, :, a:b])
        if out is None:
            out = part.new_empty(part.shape[0], part.shape[1], s * h, s * fea.shape[-1])
        out[:, :, s * y0 : s * y1] = part[:, :, s * (y0 - a) : s * (y1 - a)]
        del part
    # the trunk ran on the LR padded to its multiple: the padding's output goes
    return out[..., : generator.scale * lr.shape[-2], : generator.scale * lr.shape[-1]]


def tile_starts(length: int, tile: int) -> list[int]:
    """Starts of the tiles covering ``range(length)`` with cores of ``tile`` pixels (the last may be shorter)."""
    return list(range(0, length, tile)) if length > 0 else []


def windows(
    size: tuple[int, int], tile: int | None, overlap: int, align: int = 1
) -> Iterator[tuple[tuple[int, int, int, int], tuple[int, int, int, int]]]:
    """``(core, window)`` boxes ``(y0, y1, x0, x1)`` in LR pixels; the window is the core grown by ``overlap``,
    clipped. ``align``: the generator's ``lr_multiple``; tile and overlap are rounded up to multiples of it,
    so every window starts on the trunk's grid, as the whole image does, and pads only where it does."""
    h, w = size
    if tile is None or (h <= tile and w <= tile):
        yield (0, h, 0, w), (0, h, 0, w)
        return
    tile, overlap = -(-tile // align) * align, -(-overlap // align) * align
    for y0 in tile_starts(h, tile):
        for x0 in tile_starts(w, tile):
            y1, x1 = min(h, y0 + tile), min(w, x0 + tile)
            yield (
                (y0, y1, x0, x1),
                (max(0, y0 - overlap), min(h, y1 + overlap), max(0, x0 - overlap), min(w, x1 + overlap)),
            )


def to_uint8_hwc(sr: torch.Tensor) -> np.ndarray:
    """SR ``(3, H, W)`` float -> uint8 ``(H, W, 3)`` rounded as the original's ``tensor2img`` (clamp, x255, round)."""
    return (sr.float().clamp(0, 1) * 255.0).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()


def _check_images(generator: ConditionedGenerator, images, tile: int | None) -> list[torch.Tensor]:
    """Each image's LR as (1, 3, h, w), its prior checked against it and the generator."""
    cfg = generator.config
    if tile is not None and tile < 1:
        raise ValueError(f"tile must be a positive number of LR pixels or null, got {tile}")
    lrs = []
    for lr, prior in images:
        lr = lr[None] if lr.dim() == 3 else lr
        h, w = lr.shape[-2:]
        if generator.uses_prior and prior is None:
            raise ValueError(
                "this generator is conditioned on a prior; give one (prior=labels|ade_outdoor|uniform ...)"
            )
        if generator.uses_prior and cfg.conditioning == "film" and tile is not None and (h > tile or w > tile):
            raise ValueError(
                "conditioning=film pools its condition over the whole image, so it cannot be tiled; set tile=null"
            )
        if generator.uses_prior and (prior.lr_size != (h, w) or prior.num_classes != cfg.num_classes):
            raise ValueError(
                f"prior map for LR {prior.lr_size} with {prior.num_classes} classes does not fit the image "
                f"(LR {(h, w)}) and generator ({cfg.num_classes} classes)"
            )
        lrs.append(lr)
    return lrs


@dataclass(frozen=True)
class _Run:
    """How the windows of one call run (``super_resolve_many``'s arguments of the same names)."""

    batch_size: int = 1
    precision: str = "fp32"
    as_float: bool = False
    hr_rows: int | None = 64
    runner: object = None
    progress: object = None


def _run_windows(generator, lrs, maps, items, outs, origins, labels_out, run: _Run):
    """Super-resolve the windows ``items`` = ``[(n, core, window)]`` of images ``lrs`` / ``maps`` into ``outs[n]``,
    whose first row is HR row ``origins[n]``; windows of equal shape (across images too) share a batch.
    ``run.progress(done, total)`` is called after each batch (a host's progress bar; it may raise to stop)."""
    batch_size, precision, as_float, hr_rows, runner = (
        run.batch_size,
        run.precision,
        run.as_float,
        run.hr_rows,
        run.runner,
    )
    s = generator.scale
    needs_prior = generator.uses_prior
    halo = receptive_field(generator, within=generator.HR_branch) if hr_rows else None
    device = next(generator.parameters()).device
    # the prior's argmax is only written where an image asked for it (a generator without prior needs none)
    wants_labels = labels_out is not None and any(lab is not None for lab in labels_out)
    groups: dict[tuple[int, int], list] = {}
    for n, core, win in items:
        groups.setdefault((win[1] - win[0], win[3] - win[2]), []).append((n, core, win))
    done = 0
    for group in groups.values():
        for i in range(0, len(group), batch_size):
            chunk = group[i : i + batch_size]
            x = torch.cat([lrs[n][:, :, a:b, c:d] for n, _, (a, b, c, d) in chunk]).to(device, torch.float32)
            priors = None
            if needs_prior or wants_labels:
                # One memory layout whatever the prior map's crop returns, so equal priors give bitwise-equal outputs.
                priors = torch.cat([maps[n].crop(*win) for n, _, win in chunk]).to(device, torch.float32).contiguous()
            if runner is not None:
                sr = runner(x, priors if needs_prior else None)
            else:
                with autocast(device, precision):
                    sr = run_generator(generator, x, priors if needs_prior else None, hr_rows, halo)
            for j, (n, (y0, y1, x0, x1), (a, _, c, _)) in enumerate(chunk):
                rows, cols = slice(s * (y0 - a), s * (y1 - a)), slice(s * (x0 - c), s * (x1 - c))
                core = sr[j, :, rows, cols]
                top = s * y0 - origins[n]
                outs[n][top : top + s * (y1 - y0), s * x0 : s * x1] = (
                    core.float().permute(1, 2, 0).cpu().numpy() if as_float else to_uint8_hwc(core)
                )
                if labels_out is not None and labels_out[n] is not None:
                    labels_out[n][top : top + s * (y1 - y0), s * x0 : s * x1] = (
                        priors[j, : maps[n].num_classes, rows, cols].argmax(0).to(torch.uint8).cpu().numpy()
                    )
            del sr, x, priors
            done += len(chunk)
            if run.progress is not None:
                run.progress(done, len(items))


@torch.no_grad()
def super_resolve_many(
    generator: ConditionedGenerator,
    images: list[tuple[torch.Tensor, PriorMap | None]],
    tile: int | None = 256,
    overlap: int | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    labels_out: list[np.ndarray | None] | None = None,
    as_float: bool = False,
    hr_rows: int | None = 64,
    runner=None,
    progress=None,
) -> list[np.ndarray]:
    """Super-resolve LR images tile by tile; windows of equal shape (across images too) share a batch.

    Args:
        generator: an ``ConditionedGenerator`` (eval mode) on the device that should run it.
        images: ``(lr, prior)`` pairs: LR RGB ``(1, 3, h, w)`` or ``(3, h, w)`` in [0, 1] (any device;
            moved per tile) and its prior map (None for a generator without conditioning).
        tile: core size of a tile in LR pixels; None = each image in one pass.
        overlap: LR pixels of context around each tile; None = ``receptive_field(generator)``, which
            makes the result equal to the whole-image pass.
        batch_size: windows of equal shape per generator call.
        labels_out: per image, an optional uint8 ``(H, W)`` array filled with the prior's argmax.
        as_float: return the raw float32 output instead of the rounded uint8 image (tests, metrics).
        hr_rows: run the upsampling layers on strips of this many LR rows (``run_generator``); None = at once.
        runner: ``runner(lr, prior) -> sr`` in place of the torch generator for each batch of tiles (an
            ``engines.GeneratorRunner``: the same network on another engine); None = torch.
        progress: ``progress(done, total)`` after each batch of windows (a host's progress bar; raising in it stops
            the run between batches: ComfyUI's interrupt).

    Returns:
        Per image, SR uint8 ``(scale*h, scale*w, 3)`` (float32 with ``as_float``).
    """
    s = generator.scale
    lrs = _check_images(generator, images, tile)
    overlap = receptive_field(generator) if overlap is None else overlap
    outs, items = [], []
    for n, lr in enumerate(lrs):
        h, w = lr.shape[-2:]
        outs.append(np.empty((h * s, w * s, 3), np.float32 if as_float else np.uint8))
        items += [(n, core, win) for core, win in windows((h, w), tile, overlap, generator.lr_multiple)]
    maps = [prior for _, prior in images]
    run = _Run(batch_size, precision, as_float, hr_rows, runner, progress)
    _run_windows(generator, lrs, maps, items, outs, [0] * len(lrs), labels_out, run)
    return outs


@torch.no_grad()
def super_resolve_bands(
    generator: ConditionedGenerator,
    lr: torch.Tensor,
    prior: PriorMap | None,
    tile: int,
    overlap: int | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    with_labels: bool = False,
    hr_rows: int | None = 64,
    runner=None,
    as_float: bool = False,
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """``super_resolve_many`` for one image, yielding its output one band of tiles at a time, top to bottom:
    ``(SR uint8 (scale * band rows, scale * w, 3), prior argmax uint8 (scale * band rows, scale * w) or None)``
    (float32 in [0, 1] unrounded with ``as_float``).
    The same windows as ``super_resolve_many``, so the bands stacked are its output exactly; only one band
    is held (a writer streams them to disk: peak memory does not grow with the image)."""
    s = generator.scale
    lrs = _check_images(generator, [(lr, prior)], tile)
    overlap = receptive_field(generator) if overlap is None else overlap
    h, w = lrs[0].shape[-2:]
    rows: dict[int, list] = {}
    for core, win in windows((h, w), tile, overlap, generator.lr_multiple):
        rows.setdefault(core[0], []).append((0, core, win))
    run = _Run(batch_size, precision, as_float, hr_rows, runner)
    for y0, items in rows.items():
        band_rows = s * (items[0][1][1] - y0)
        band = np.empty((band_rows, w * s, 3), np.float32 if as_float else np.uint8)
        labels = [np.empty((band_rows, w * s), np.uint8)] if with_labels else None
        _run_windows(generator, lrs, [prior], items, [band], [s * y0], labels, run)
        yield band, labels[0] if labels else None


def super_resolve(
    generator: ConditionedGenerator,
    lr: torch.Tensor,
    prior: PriorMap | None,
    tile: int | None = 256,
    overlap: int | None = None,
    batch_size: int = 1,
    precision: str = "fp32",
    labels_out: np.ndarray | None = None,
    as_float: bool = False,
    hr_rows: int | None = 64,
    runner=None,
) -> np.ndarray:
    """Super-resolve one image in tiles whose overlap covers the receptive field, so the stitched result equals
    a whole-image pass (``super_resolve_many`` runs several).

    Args:
        generator: a conditioned generator (any backbone).
        lr: the LR image, ``(1, 3, h, w)`` RGB in [0, 1].
        prior: the image's ``PriorMap`` (any window of its prior on demand); None for a generator without prior.
        tile: tile side in LR pixels (None: the whole image at once).
        overlap: LR pixels of context around each tile (None: the receptive field radius).
        batch_size: tiles per generator call.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast).
        labels_out: an ``(scale*h, scale*w)`` uint8 array to receive the prior's argmax, or None.
        as_float: return float32 in [0, 1] unrounded instead of uint8.
        hr_rows: the upsampling layers run in strips of this many LR rows (bounded memory).
        runner: an engine's generator runner (None: torch).

    Returns:
        The SR image, uint8 ``(scale*h, scale*w, 3)`` (float32 with ``as_float``).
    """
    outs = super_resolve_many(
        generator, [(lr, prior)], tile, overlap, batch_size, precision, [labels_out], as_float, hr_rows, runner
    )
    return outs[0]
