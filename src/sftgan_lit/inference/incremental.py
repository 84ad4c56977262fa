"""Incremental super-resolution: after an edit of the prior, recompute only what the edit reaches.

SFT-Net sees the prior through its condition network, whose first conv has stride = kernel = scale, so
the conditions of an LR pixel depend on that pixel's own ``scale x scale`` patch of the prior only. Each
later stage widens what an edit can reach by its own radius: 2 LR pixels per residual block (two 3x3
convs), 0 for the final conditioning layer (1x1 convs), 1 for the trunk's last conv, and the upsampler's
``receptive_field(within=HR_branch)``. ``IncrementalSR`` keeps every trunk stage's output of the last
pass. After an edit inside an LR box it recomputes each stage only on that box grown by the reach so far,
reading a border of the stage's radius from the kept input, and writes back only that region.

The result equals a whole-image pass to float rounding (the tests bound it by 1e-5), and pixels farther
than the receptive field from the edit are never written. ``conditioning=film`` pools its condition over
the whole image, so every edit reaches every pixel: those generators recompute everything.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..models import SFTGenerator
from .tiling import receptive_field, to_uint8_hwc

Box = tuple[int, int, int, int]  # (y0, y1, x0, x1) in LR pixels, half-open


def grow(box: Box, radius: int, size: tuple[int, int]) -> Box:
    """``box`` grown by ``radius`` pixels on each side, clipped to an image of ``size`` ``(h, w)``."""
    y0, y1, x0, x1 = box
    return max(0, y0 - radius), min(size[0], y1 + radius), max(0, x0 - radius), min(size[1], x1 + radius)


def conv_radius(module: nn.Module) -> int:
    """How far (in pixels at its own resolution) a stack of stride-1 convs spreads a change: the sum of
    ``dilation * (kernel - 1) / 2`` over its convs (1x1 convs add nothing)."""
    total = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride != (1, 1):
                raise ValueError(f"conv_radius: unsupported strided conv {m}")
            total += m.dilation[0] * (m.kernel_size[0] - 1) // 2
    return total


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
        generator: an ``SFTGenerator`` in eval mode (fp32; on any device).
        lr: LR RGB ``(1, 3, h, w)`` in [0, 1].
        prior: class probabilities ``(1, C, s*h, s*w)`` (None for a generator without conditioning).

    ``sr`` holds the float output ``(1, 3, s*h, s*w)``; ``image`` its uint8 ``(s*h, s*w, 3)``, rounded as
    everywhere else (``tiling.to_uint8_hwc``). Memory: ``num_blocks + 3`` feature maps of
    ``(num_features, h, w)`` floats (16 MB each for a released-size model on a 256 x 256 LR).
    """

    def __init__(self, generator: SFTGenerator, lr: torch.Tensor, prior: torch.Tensor | None) -> None:
        generator.check_inputs(lr, prior)
        self.generator = generator
        self.scale = generator.scale
        self.size = tuple(lr.shape[-2:])
        self.channels_last = generator.conv0.weight.is_contiguous(memory_format=torch.channels_last)
        self.lr = self._layout(lr)
        g = generator
        self.blocks = list(g.sft_branch[:-2])
        self.radii = [conv_radius(b) for b in self.blocks] + [0, conv_radius(g.sft_branch[-1])]
        self.hr_radius = receptive_field(g, within=g.HR_branch)
        # an edit of the prior reaches this far in LR pixels: never more than the tiling's receptive field
        self.reach = sum(self.radii) + self.hr_radius
        self.local = g.uses_prior and g.config.conditioning != "film"
        self.full_pass(prior)

    def _layout(self, t: torch.Tensor | None) -> torch.Tensor | None:
        if t is None or not self.channels_last:
            return t
        return t.contiguous(memory_format=torch.channels_last)

    @torch.no_grad()
    def full_pass(self, prior: torch.Tensor | None) -> None:
        """Run the whole image, keeping each stage's output (the same operations as ``generator.forward``)."""
        g = self.generator
        self.prior = self._layout(prior)
        self.cond = g.condition(self.prior) if g.uses_prior else None
        fea = g.conv0(self.lr)
        self.states = [fea]
        x = fea
        for block in self.blocks:
            x = block(x, self.cond)
            self.states.append(x)
        x = g.sft_branch[-2](x, self.cond) if g._final_conditioned else g.sft_branch[-2](x)
        self.states.append(x)
        self.states.append(fea + g.sft_branch[-1](x))  # the trunk's output, long skip included
        self.sr = g.HR_branch(self.states[-1])
        self.image = to_uint8_hwc(self.sr[0])

    def _stage(self, i: int, x: torch.Tensor, cond: torch.Tensor | None, window: Box) -> torch.Tensor:
        g = self.generator
        if i < len(self.blocks):
            return self.blocks[i](x, cond)
        if i == len(self.blocks):
            return g.sft_branch[-2](x, cond) if g._final_conditioned else g.sft_branch[-2](x)
        return _window(self.states[0], window) + g.sft_branch[-1](x)

    @torch.no_grad()
    def update(self, prior: torch.Tensor) -> Box | None:
        """Take a new prior ``(1, C, s*h, s*w)``; recompute only what changed. Returns the LR box of the
        output that was rewritten (None when the prior did not change; the whole image for ``film``)."""
        self.generator.check_inputs(self.lr, prior)
        box = changed_box(self.prior, prior, self.scale)
        if box is None:
            return None
        if not self.local:
            self.full_pass(prior)
            return (0, self.size[0], 0, self.size[1])
        g, s = self.generator, self.scale
        self.prior = self._layout(prior)
        # the conditions of the LR pixels in ``box`` depend only on the prior's pixels above them
        r0, r1 = _inner(box, (0, 0, 0, 0))
        self.cond[:, :, r0, r1] = g.condition(_window(self.prior, box, s))
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
        rows, cols = _inner(out, window, s)
        o0, o1 = _inner(out, (0, 0, 0, 0), s)
        self.sr[:, :, o0, o1] = y[:, :, rows, cols]
        self.image[o0, o1] = to_uint8_hwc(self.sr[0, :, o0, o1])
        return out

    def output(self, box: Box | None = None) -> np.ndarray:
        """The uint8 output ``(s*h, s*w, 3)``, or its part under the LR ``box``."""
        if box is None:
            return self.image
        s = self.scale
        return self.image[s * box[0] : s * box[1], s * box[2] : s * box[3]]
