"""Priors of whole images: maps that hand out the probabilities of any window of an image.

Tiled super-resolution asks for the prior of one window at a time, so a large image never holds its
full-resolution probability map (8 classes x 4000 x 3000 float32 is 384 MB). Every map answers
``crop(y0, y1, x0, x1)`` in LR pixels with probabilities ``(1, C, scale*(y1-y0), scale*(x1-x0))``
equal to the same window of the whole-image prior:

- ``UniformPriorMap``: no information;
- ``DenseProbs``: a full probability map (prior files, small images);
- ``LabelPriorMap``: a label map at HR size (uint8), turned into probabilities per window;
- ``CoarseLogitsPrior``: a segmenter's stride-8 logits (small), decoded per window.

(``edits.EditedPrior`` is the paper's prior editing on top of any of them.)
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from ..models.protocols import Segmenter
from .validation import PriorError


class PriorMap:
    """The prior of one image of LR size ``(h, w)``; ``crop`` returns a window of its probabilities."""

    def __init__(self, num_classes: int, lr_size: tuple[int, int], scale: int) -> None:
        self.num_classes = num_classes
        self.lr_size = tuple(lr_size)
        self.scale = scale

    @property
    def hr_size(self) -> tuple[int, int]:
        return self.lr_size[0] * self.scale, self.lr_size[1] * self.scale

    def crop(self, y0: int, y1: int, x0: int, x1: int) -> torch.Tensor:
        """Probabilities ``(1, C, s*(y1-y0), s*(x1-x0))`` of LR rows ``y0:y1`` and columns ``x0:x1``."""
        raise NotImplementedError

    def full(self) -> torch.Tensor:
        return self.crop(0, self.lr_size[0], 0, self.lr_size[1])

    def with_classes(self, change: Callable[[PriorMap], PriorMap]) -> PriorMap:
        """This map with ``change`` applied to its class probabilities (continuous channels kept as they are)."""
        return change(self)


class UniformPriorMap(PriorMap):
    """Every class equally likely (``prior=none`` / ``uniform``)."""

    def crop(self, y0, y1, x0, x1):
        s = self.scale
        return torch.full((1, self.num_classes, s * (y1 - y0), s * (x1 - x0)), 1.0 / self.num_classes)


class DenseProbs(PriorMap):
    """A whole probability map ``(C, H, W)`` at HR size (a prior file; a segmenter's output on a small image)."""

    def __init__(self, probs: torch.Tensor, scale: int) -> None:
        probs = probs[0] if probs.dim() == 4 else probs
        h, w = probs.shape[-2] // scale, probs.shape[-1] // scale
        if (h * scale, w * scale) != tuple(probs.shape[-2:]):
            raise PriorError(f"a prior of size {tuple(probs.shape[-2:])} is not {scale}x an LR size")
        super().__init__(probs.shape[0], (h, w), scale)
        self.probs = probs.float()

    def crop(self, y0, y1, x0, x1):
        s = self.scale
        return self.probs[:, s * y0 : s * y1, s * x0 : s * x1][None]


class LabelPriorMap(PriorMap):
    """A label map ``(H, W)`` uint8 at HR size (255 = void) through a label prior's ``from_labels``
    (one-hot, smoothing, blur); ``margin``: HR pixels of context a window needs to equal the whole-image
    result (the blur's radius)."""

    def __init__(
        self, labels: np.ndarray | torch.Tensor, num_classes: int, from_labels: Callable, margin: int, scale: int
    ) -> None:
        labels = torch.as_tensor(np.ascontiguousarray(labels))
        h, w = labels.shape[0] // scale, labels.shape[1] // scale
        if (h * scale, w * scale) != tuple(labels.shape):
            raise PriorError(f"a label map of size {tuple(labels.shape)} is not {scale}x an LR size")
        super().__init__(num_classes, (h, w), scale)
        self.labels = labels
        self.from_labels = from_labels
        self.margin = margin

    def crop(self, y0, y1, x0, x1):
        s, m = self.scale, self.margin
        H, W = self.labels.shape
        Y0, Y1, X0, X1 = s * y0, s * y1, s * x0, s * x1
        a, b, c, d = max(0, Y0 - m), min(H, Y1 + m), max(0, X0 - m), min(W, X1 + m)
        probs = self.from_labels(self.labels[a:b, c:d])
        return probs[:, Y0 - a : Y1 - a, X0 - c : X1 - c][None]


class CoarseLogitsPrior(PriorMap):
    """A segmenter's logits at stride ``coarse_stride`` of HR, decoded to probabilities per window.

    ``segmenter`` is a ``models.Segmenter`` (``decode_coarse``, ``coarse_stride``, ``coarse_margin``); the logits are ``(1, C, a, b)`` covering at least the HR image.
    """

    def __init__(self, logits: torch.Tensor, segmenter: Segmenter, lr_size: tuple[int, int], scale: int) -> None:
        super().__init__(logits.shape[1], lr_size, scale)
        self.logits = logits.float()
        self.segmenter = segmenter
        self.stride = int(segmenter.coarse_stride)
        self.margin = int(segmenter.coarse_margin)

    @torch.no_grad()
    def crop(self, y0, y1, x0, x1):
        s, k, m = self.scale, self.stride, self.margin
        Y0, Y1, X0, X1 = s * y0, s * y1, s * x0, s * x1
        a, c = max(0, Y0 // k - m), max(0, X0 // k - m)
        b, d = min(self.logits.shape[-2], -(-Y1 // k) + m), min(self.logits.shape[-1], -(-X1 // k) + m)
        device = next(self.segmenter.parameters()).device
        probs = self.segmenter.decode_coarse(self.logits[..., a:b, c:d].to(device)).float().cpu()
        return probs[..., Y0 - k * a : Y1 - k * a, X0 - k * c : X1 - k * c]


class ChannelMap:
    """One continuous channel of a whole image of LR size ``(h, w)``: a constant, or values in the channel's unit
    at the LR size (each LR pixel's value covers its ``scale x scale`` outputs) or at the output size
    ``(s*h, s*w)``; ``crop`` gives a window at the output size, normalised to [0, 1] (``Channel.normalise``)."""

    def __init__(
        self, channel, values: float | torch.Tensor, lr_size: tuple[int, int], scale: int, source: str
    ) -> None:
        self.channel = channel
        self.scale = scale
        self.values: float | torch.Tensor
        h, w = lr_size
        if isinstance(values, torch.Tensor):
            if tuple(values.shape) not in ((h, w), (h * scale, w * scale)):
                raise PriorError(
                    f"{source}: a {channel.name} map of shape {tuple(values.shape)} fits neither the LR ({h}, {w}) "
                    f"nor the output ({h * scale}, {w * scale})"
                )
            channel.check(values, source)
            self.values = channel.normalise(values)
            self.on_lr_grid = tuple(values.shape) == (h, w) and scale > 1
        else:
            channel.check(torch.tensor([float(values)]), source)
            self.values = float(channel.normalise(torch.tensor(float(values))))
            self.on_lr_grid = False

    def crop(self, Y0: int, Y1: int, X0: int, X1: int) -> torch.Tensor:
        """``(1, 1, Y1-Y0, X1-X0)`` of output rows ``Y0:Y1`` and columns ``X0:X1``."""
        if isinstance(self.values, float):
            return torch.full((1, 1, Y1 - Y0, X1 - X0), self.values)
        if self.on_lr_grid:
            s = self.scale
            return self.values[torch.arange(Y0, Y1) // s][:, torch.arange(X0, X1) // s][None, None]
        return self.values[Y0:Y1, X0:X1][None, None]


class StackedPriorMap(PriorMap):
    """A categorical ``PriorMap`` with continuous ``ChannelMap``s stacked after its classes (the prior's order)."""

    def __init__(self, categorical: PriorMap, channels: list[ChannelMap]) -> None:
        super().__init__(categorical.num_classes, categorical.lr_size, categorical.scale)
        self.categorical = categorical
        self.channels = channels

    def with_classes(self, change: Callable[[PriorMap], PriorMap]) -> PriorMap:
        return StackedPriorMap(change(self.categorical), self.channels)

    def crop(self, y0, y1, x0, x1):
        s = self.scale
        parts = [self.categorical.crop(y0, y1, x0, x1)]
        parts += [c.crop(s * y0, s * y1, s * x0, s * x1) for c in self.channels]
        return torch.cat(parts, dim=1)
