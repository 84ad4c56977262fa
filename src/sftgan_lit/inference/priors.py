"""Priors at inference time: maps that hand out the prior of any window of an image, and prior editing.

Tiled super-resolution asks for the prior of one window at a time, so a large image never holds its
full-resolution probability map (8 classes x 4000 x 3000 float32 is 384 MB). Every map answers
``crop(y0, y1, x0, x1)`` in LR pixels with probabilities ``(1, C, scale*(y1-y0), scale*(x1-x0))``
equal to the same window of the whole-image prior:

- ``LabelPriorMap``: a label map at HR size (uint8), turned into probabilities per window;
- ``DenseProbs``: a full probability map (prior files, small images);
- ``CoarseLogitsPrior``: a segmenter's stride-8 logits (small), decoded per window;
- ``UniformPriorMap`` / ``EditedPrior``: no information / the paper's prior editing (override, mask, remap).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

from ..priors.base import VOID_LABEL, PriorError
from ..priors.labels import LabelPrior


class PriorMap:
    """The prior of one image of LR size ``(h, w)``; ``crop`` returns a window of its probabilities."""

    def __init__(self, num_classes: int, lr_size: tuple[int, int], scale: int = 4) -> None:
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


class UniformPriorMap(PriorMap):
    """Every class equally likely (``prior=none`` / ``uniform``)."""

    def crop(self, y0, y1, x0, x1):
        s = self.scale
        return torch.full((1, self.num_classes, s * (y1 - y0), s * (x1 - x0)), 1.0 / self.num_classes)


class DenseProbs(PriorMap):
    """A whole probability map ``(C, H, W)`` at HR size (a prior file; a segmenter's output on a small image)."""

    def __init__(self, probs: torch.Tensor, scale: int = 4) -> None:
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
    """A label map ``(H, W)`` uint8 at HR size (255 = void) through a ``LabelPrior`` (smoothing, blur)."""

    def __init__(self, labels: np.ndarray | torch.Tensor, prior: LabelPrior, scale: int = 4) -> None:
        labels = torch.as_tensor(np.ascontiguousarray(labels))
        h, w = labels.shape[0] // scale, labels.shape[1] // scale
        if (h * scale, w * scale) != tuple(labels.shape):
            raise PriorError(f"a label map of size {tuple(labels.shape)} is not {scale}x an LR size")
        super().__init__(prior.num_classes, (h, w), scale)
        self.labels = labels
        self.prior = prior
        # A blurred label prior needs context around a window to equal the whole-image blur there.
        self.margin = int(np.ceil(3 * prior.blur_sigma)) + 1 if prior.blur_sigma else 0

    def crop(self, y0, y1, x0, x1):
        s, m = self.scale, self.margin
        H, W = self.labels.shape
        Y0, Y1, X0, X1 = s * y0, s * y1, s * x0, s * x1
        a, b, c, d = max(0, Y0 - m), min(H, Y1 + m), max(0, X0 - m), min(W, X1 + m)
        probs = self.prior.from_labels(self.labels[a:b, c:d])
        return probs[:, Y0 - a : Y1 - a, X0 - c : X1 - c][None]


class CoarseLogitsPrior(PriorMap):
    """A segmenter's logits at stride ``coarse_stride`` of HR, decoded to probabilities per window.

    ``segmenter`` provides ``decode_coarse``, ``coarse_stride`` and ``coarse_margin`` (see
    ``OutdoorSceneSeg``); the logits are ``(1, C, a, b)`` covering at least the HR image.
    """

    def __init__(self, logits: torch.Tensor, segmenter, lr_size: tuple[int, int], scale: int = 4) -> None:
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


def parse_remap(spec, class_names: Sequence[str]) -> dict[int, int]:
    """A class remap -> ``{source index: target index}``.

    ``spec``: a mapping ``{sky: water, grass: plant}`` (Hydra: ``prior_remap={sky:water,grass:plant}``),
    or a string / list of ``source->target`` or ``source:target`` items separated by commas.
    """
    if not spec:
        return {}
    if isinstance(spec, Mapping):
        pairs = [(str(k).strip(), str(v).strip()) for k, v in spec.items()]
    else:
        items = [t for part in ([spec] if isinstance(spec, str) else spec) for t in str(part).split(",") if t.strip()]
        pairs = []
        for item in items:
            sep = "->" if "->" in item else ":" if ":" in item else None
            if sep is None:
                raise PriorError(f"prior_remap entry {item!r}: write it as source:target (or 'source->target'), e.g. sky:water")
            pairs.append(tuple(t.strip() for t in item.split(sep, 1)))
    mapping: dict[int, int] = {}
    for src, dst in pairs:
        for name in (src, dst):
            if name not in class_names:
                raise PriorError(f"prior_remap: unknown class {name!r}; the prior's classes are {', '.join(class_names)}")
        mapping[class_names.index(src)] = class_names.index(dst)
    return mapping


def read_class_mask(path, class_names: Sequence[str], colors: Sequence[Sequence[int]], hr_size: tuple[int, int]) -> np.ndarray:
    """A prior-edit mask -> class index per HR pixel, 255 = keep the prior (uint8 ``(H, W)``).

    Either a single-channel PNG of class indices (255 = keep) or an RGB image painted with the prior's
    class colours (any other colour = keep). A mask at LR size is enlarged (nearest) to the HR size.
    """
    from PIL import Image

    from ..data.io import _open

    img = _open(path, max_pixels=hr_size[0] * hr_size[1] * 4)
    if img.mode in ("L", "P", "I", "I;16"):
        mask = np.asarray(img, dtype=np.int64)
        bad = np.unique(mask[(mask >= len(class_names)) & (mask != VOID_LABEL)])
        if bad.size:
            raise PriorError(f"{path}: mask values {bad[:8].tolist()} are neither a class index < {len(class_names)} nor 255 (keep)")
        mask = mask.astype(np.uint8)
    else:
        rgb = np.asarray(img.convert("RGB"), dtype=np.int64)
        mask = np.full(rgb.shape[:2], VOID_LABEL, np.uint8)
        for i, color in enumerate(colors):
            mask[(rgb == np.asarray(color)).all(-1)] = i
    H, W = hr_size
    if mask.shape != (H, W):
        s = H // mask.shape[0] if mask.shape[0] else 0
        if s < 1 or mask.shape[0] * s != H or mask.shape[1] * s != W:
            raise PriorError(f"{path}: mask is {mask.shape[1]}x{mask.shape[0]}; it must be the LR or the output size ({W}x{H})")
        mask = np.asarray(Image.fromarray(mask).resize((W, H), Image.NEAREST))
    return mask


class EditedPrior(PriorMap):
    """The paper's prior editing on top of another map, applied per window.

    Args:
        base: the prior being edited.
        override: a class index: the whole image becomes that class.
        mask: class index per HR pixel (uint8 ``(H, W)``, 255 = keep ``base``): regions painted to classes.
        remap: ``{source: target}``: each source class's probability moves to its target.
    """

    def __init__(self, base: PriorMap, override: int | None = None, mask: np.ndarray | None = None,
                 remap: dict[int, int] | None = None) -> None:  # fmt: skip
        super().__init__(base.num_classes, base.lr_size, base.scale)
        self.base = base
        self.override = override
        self.mask = torch.as_tensor(mask) if mask is not None else None
        self.remap = dict(remap or {})

    def crop(self, y0, y1, x0, x1):
        # every edit below builds a new tensor: the base's crop (possibly a view of its map) is never written
        probs = self.base.crop(y0, y1, x0, x1)
        c = self.num_classes
        if self.remap:
            moved = probs.clone()
            for src in self.remap:
                moved[:, src] = 0
            for src, dst in self.remap.items():
                moved[:, dst] += probs[:, src]
            probs = moved
        if self.override is not None:
            probs = torch.zeros_like(probs)
            probs[:, self.override] = 1.0
        if self.mask is not None:
            s = self.scale
            m = self.mask[s * y0 : s * y1, s * x0 : s * x1].long()
            painted = m != VOID_LABEL
            onehot = torch.nn.functional.one_hot(torch.where(painted, m, 0), c).permute(2, 0, 1)[None].float()
            probs = torch.where(painted[None, None], onehot, probs)
        return probs
