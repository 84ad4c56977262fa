"""``prior=labels``: ground-truth label maps turned into probabilities."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..categories import VOID_LABEL
from .base import Prior, SegmentOptions
from .maps import LabelPriorMap, PriorMap
from .validation import PriorError


class LabelPrior(Prior):
    """One-hot probabilities from label maps, optionally softened to look like a segmenter's output.

    Args:
        smoothing: label smoothing ``eps``: ``(1 - eps) * onehot + eps / C``.
        blur_sigma: standard deviation (HR pixels) of a Gaussian blur of the one-hot maps, which
            softens class boundaries the way a segmenter's upsampled logits do. 0 = off.
        void: what a void pixel (label 255) becomes: ``"uniform"`` (no information) or a class name.
    """

    needs_labels = True

    def __init__(
        self, name: str = "labels", smoothing: float = 0.0, blur_sigma: float = 0.0, void: str = "uniform", **kwargs
    ) -> None:
        super().__init__(name, **kwargs)
        if not 0.0 <= smoothing < 1.0:
            raise PriorError(f"prior.smoothing must be in [0, 1), got {smoothing}")
        if blur_sigma < 0:
            raise PriorError(f"prior.blur_sigma must be >= 0, got {blur_sigma}")
        if void != "uniform" and void not in self.class_names:
            raise PriorError(f"prior.void must be 'uniform' or one of {self.class_names}, got {void!r}")
        self.smoothing = float(smoothing)
        self.blur_sigma = float(blur_sigma)
        self.void = void

    def from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        """Label map ``(H, W)`` or ``(N, H, W)`` of class indices (255 = void) -> probabilities ``(…, C, H, W)``."""
        lab = labels.long()
        c = self.num_classes
        void = lab == VOID_LABEL
        if ((lab < 0) | ((lab >= c) & ~void)).any():
            raise PriorError(
                f"label values outside [0, {c}) and not {VOID_LABEL}: {torch.unique(lab[(lab >= c) & ~void]).tolist()[:8]}"
            )
        fill = 0 if self.void == "uniform" else self.class_names.index(self.void)
        probs = F.one_hot(torch.where(void, fill, lab), c).movedim(-1, -3).float()
        if self.void == "uniform" and void.any():
            probs = torch.where(void.unsqueeze(-3), torch.full_like(probs, 1.0 / c), probs)
        if self.smoothing:
            probs = probs * (1.0 - self.smoothing) + self.smoothing / c
        if self.blur_sigma:
            import kornia

            radius = max(1, int(round(3 * self.blur_sigma)))
            batched = probs if probs.dim() == 4 else probs[None]
            # A normalised kernel with reflected borders keeps every pixel's probabilities summing to 1.
            batched = kornia.filters.gaussian_blur2d(
                batched, (2 * radius + 1, 2 * radius + 1), (self.blur_sigma, self.blur_sigma), border_type="reflect"
            )
            probs = batched if probs.dim() == 4 else batched[0]
        return probs

    @property
    def margin(self) -> int:
        """HR pixels of context a window needs for its blurred prior to equal the whole-image blur there."""
        return int(np.ceil(3 * self.blur_sigma)) + 1 if self.blur_sigma else 0

    def for_sample(self, labels, probs, size, lr_given=False):
        if labels is None:
            raise PriorError(
                "prior=labels needs label maps, but this data source has none; give the data's labels folder "
                "(data.*.labels=...) or choose prior=ade_outdoor / prior=none"
            )
        return self.from_labels(labels)

    def map_of(self, labels: np.ndarray | torch.Tensor, scale: int) -> LabelPriorMap:
        """The ``PriorMap`` of a whole label map ``(H, W)`` at HR size."""
        return LabelPriorMap(labels, self.num_classes, self.from_labels, self.margin, scale)

    def _image_map(self, lr: torch.Tensor, scale: int, labels, segment: SegmentOptions) -> tuple[PriorMap, str]:
        if labels is None:
            raise PriorError(
                f"prior={self.name} needs the image's label map: set labels=/folder/of/label/pngs (same file stems)"
            )
        return self.map_of(labels, scale), "label map"
