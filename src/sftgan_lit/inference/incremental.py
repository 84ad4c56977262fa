"""Incremental super-resolution: after an edit of the prior, recompute only what the edit reaches.

A conditioned generator sees the prior through its condition network, whose first conv has stride =
kernel = one cell of the trunk's grid, so the conditions of a cell depend on that cell's own patch of
the prior only. Each later stage (``generator.stages()``, then its ``tail`` and ``HR_branch``) widens
what an edit can reach by its own radius: 2 cells per SFT-Net residual block (two 3x3 convs), 15 per
RRDB (three dense blocks of five), 1 per compact-net conv, 0 for a conditioning layer alone (1x1
convs), 1 for the trunk's last conv, and the upsampler's ``receptive_field(within=HR_branch)``.
``IncrementalSR`` keeps every trunk stage's output of the last pass. After an edit inside a box it
recomputes each stage only on that box grown by the reach so far, reading a border of the stage's
radius from the kept input, and writes back only that region.

The result equals a whole-image pass to float rounding (the tests bound it by 1e-5), and pixels farther
than the receptive field from the edit are never written. ``conditioning=film`` pools its condition over
the whole image, so every edit reaches every pixel: those generators recompute everything.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from ..models import ConditionedGenerator
from .tiling import receptive_field, to_uint8_hwc

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) in LR pixels, half-open


def grow(box: Box, radius: int, size: tuple[int, int]) -> Box:
    """``box`` grown by ``radius`` pixels on each side, clipped to an image of ``size`` ``(h, w)``."""
    y0, y1, x0, x1 = box
    return max(0, y0 - radius), min(size[0], y1 + radius), max(0, x0 - radius), min(size[1], x1 + radius)


def changed_box(before: torch.Tensor, after: torch.Tensor, scale: int) -> Box | None:
    """The LR box covering every HR pixel where two priors ``(1, C, H, W)`` differ, or None if they are equal."""
    diff = (before != after).any(dim=1)[0]
    if not bool(diff.any()):
        return None
    rows = torch.nonzero(diff.any(dim=1)).flatten()
    cols = torch.nonzero(diff.any(dim=0)).flatten()
    y0, y1 = int(rows[0]) // scale, math.ceil((int(rows[-1]) + 1) / scale)
    x0, x1 = int(cols[0]) // scale, math.ceil((int(cols[-1]) + 1) / scale)
    return y0, y1, x0, x1


def _window(t: torch.Tensor | None, box: Box, scale: int = 1) -> torch.Tensor | None:
    if t is None:
        return None
    if t.shape[-1] == 1 and t.shape[-2] == 1:  # a per-image condition (film) broadcasts
        return t
    y0, y1, x0, x1 = box
    return t[:, :, scale * y0 : scale * y1, scale * x0 : scale * x1]


def _inner(box: Box, window: Box, scale: int = 1) -> tuple[slice, slice]:
    """Where ``box`` lies inside the output of a pass over ``window`` (times ``scale``)."""
    return (
        slice(scale * (box[0] - window[0]), scale * (box[1] - window[0])),
        slice(scale * (box[2] - window[2]), scale * (box[3] - window[2])),
    )


class IncrementalSR:
    """One image's super-resolution with every trunk activation kept, updated in place after prior edits.

    Args:
        generator: a ``ConditionedGenerator`` in eval mode (fp32; on any device), of any backbone: its
            ``head``, ``stages``, ``tail`` and ``HR_branch`` are walked through.
        lr: LR RGB ``(1, 3, h, w)`` in [0, 1].
        prior: class probabilities ``(1, C, s*h, s*w)`` (None for a generator without conditioning).

    ``sr`` holds the float output on the trunk's (padded) grid; ``image`` the uint8 ``(s*h, s*w, 3)``,
    rounded as everywhere else (``tiling.to_uint8_hwc``). Memory: one feature map per trunk stage
    (16 MB each for 64 features on a 256 x 256 LR grid).
    """

    def __init__(self, generator: ConditionedGenerator, lr: torch.Tensor, prior: torch.Tensor | None) -> None:
        generator.check_inputs(lr, prior)
        self.generator = generator
        self.scale = generator.scale
        self.multiple = generator.lr_multiple
        self.lr_size = tuple(lr.shape[-2:])
        self.channels_last = next(generator.parameters()).is_contiguous(memory_format=torch.channels_last)
        self.lr = generator.pad(self._layout(lr), None)[0]
        # boxes below are on the trunk's grid: ``multiple`` LR pixels per cell
        self.size = (self.lr.shape[-2] // self.multiple, self.lr.shape[-1] // self.multiple)
        self.stages = generator.stages()
        self.radii = [stage.radius for stage in self.stages] + [generator.tail_radius]
        self.hr_radius = math.ceil(receptive_field(generator, within=generator.HR_branch) / self.multiple)
        # an edit of the prior reaches this far in LR pixels: never more than the tiling's receptive field
        self.reach = (sum(self.radii) + self.hr_radius) * self.multiple
        self.local = generator.uses_prior and generator.config.conditioning != "film"
        self.full_pass(prior)

    def _layout(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None or not self.channels_last:
            return t
        return t.contiguous(memory_format=torch.channels_last)

    def _padded_prior(self, prior: torch.Tensor | None) -> torch.Tensor | None:
        if prior is None:
            return None
        lr = self.lr[..., : self.lr_size[0], : self.lr_size[1]]
        return self.generator.pad(lr, self._layout(prior))[1]

    def _image(self) -> np.ndarray:
        s = self.scale
        return to_uint8_hwc(self.sr[0, :, : s * self.lr_size[0], : s * self.lr_size[1]])

    @torch.no_grad()
    def full_pass(self, prior: torch.Tensor | None) -> None:
        """Run the whole image, keeping each stage's output (the same operations as ``generator.forward``)."""
        g = self.generator
        self.prior = self._padded_prior(prior)
        self.cond = g.condition(self.prior) if g.uses_prior else None
        fea = g.head(self.lr)
        self.states = [fea]
        x = fea
        for stage in self.stages:
            x = stage.run(x, self.cond)
            self.states.append(x)
        self.states.append(g.tail(x, fea, self.lr))
        self.sr = g.HR_branch(self.states[-1])
        self.image = self._image()

    def _stage(self, i: int, x: torch.Tensor, cond: torch.Tensor | None, window: Box) -> torch.Tensor:
        if i < len(self.stages):
            return self.stages[i].run(x, cond)
        m = self.multiple
        return self.generator.tail(x, _window(self.states[0], window), _window(self.lr, window, m))

    @torch.no_grad()
    def update(self, prior: torch.Tensor) -> Box | None:
        """Take a new prior ``(1, C, s*h, s*w)``; recompute only what changed. Returns the LR box of the
        output that was rewritten (None when the prior did not change; the whole image for ``film``)."""
        lr = self.lr[..., : self.lr_size[0], : self.lr_size[1]]
        self.generator.check_inputs(lr, prior)
        padded = self._padded_prior(prior)
        cell = self.scale * self.multiple  # HR pixels per trunk cell
        box = changed_box(self.prior, padded, cell)
        if box is None:
            return None
        if not self.local:
            self.full_pass(prior)
            return (0, self.lr_size[0], 0, self.lr_size[1])
        g = self.generator
        self.prior = padded
        # the conditions of a trunk cell depend only on the prior's pixels above it
        r0, r1 = _inner(box, (0, 0, 0, 0))
        self.cond[:, :, r0, r1] = g.condition(_window(self.prior, box, cell))
        changed = box
        for i, radius in enumerate(self.radii):
            out = grow(changed, radius, self.size)
            window = grow(out, radius, self.size)
            y = self._stage(i, _window(self.states[i], window), _window(self.cond, window), window)
            rows, cols = _inner(out, window)
            o0, o1 = _inner(out, (0, 0, 0, 0))
            self.states[i + 1][:, :, o0, o1] = y[:, :, rows, cols]
            changed = out
        out = grow(changed, self.hr_radius, self.size)
        window = grow(out, self.hr_radius, self.size)
        y = g.HR_branch(_window(self.states[-1], window))
        rows, cols = _inner(out, window, cell)
        o0, o1 = _inner(out, (0, 0, 0, 0), cell)
        self.sr[:, :, o0, o1] = y[:, :, rows, cols]
        m, (h, w) = self.multiple, self.lr_size
        lr_box = (out[0] * m, min(h, out[1] * m), out[2] * m, min(w, out[3] * m))
        s = self.scale
        rows, cols = slice(s * lr_box[0], s * lr_box[1]), slice(s * lr_box[2], s * lr_box[3])
        self.image[rows, cols] = to_uint8_hwc(self.sr[0, :, rows, cols])
        return lr_box

    def output(self, box: Box | None = None) -> np.ndarray:
        """The uint8 output ``(s*h, s*w, 3)``, or its part under the LR ``box``."""
        if box is None:
            return self.image
        s = self.scale
        return self.image[s * box[0] : s * box[1], s * box[2] : s * box[3]]
