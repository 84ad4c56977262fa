"""Perceptual loss (L1 between VGG19 features, the layer the original used) and the pixel loss."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import PixelType, choice
from ..models.vgg import VGGFeatureExtractor

log = logging.getLogger(__name__)


def pixel_loss(sr: torch.Tensor, hr: torch.Tensor, kind: str = "l1") -> torch.Tensor:
    """Mean L1 or squared error (``choices.PixelType``) between two image batches."""
    kind = choice(PixelType, kind, "module.objective.pixel_type")
    return F.l1_loss(sr, hr) if kind == PixelType.l1.value else F.mse_loss(sr, hr)


class PerceptualLoss(nn.Module):
    """``L1(VGG(sr), VGG(hr))`` at ``layer`` (34 = conv5_4 before ReLU, SFTGAN's/ESRGAN's choice).

    ``weights``: path to ``vgg19-dcbb9e9d.pth`` (default: torchvision's cache). With ``required=False``
    a missing file disables the term (``available`` is False) and says so in the log, instead of
    training against random features.
    """

    def __init__(
        self, layer: int = 34, weights: str | None = None, required: bool = True, random_weights: bool = False
    ) -> None:
        super().__init__()
        self.available = True
        if random_weights:
            # exercises the code path in tests; a perceptual loss on random features is not the method
            log.warning(
                "perceptual loss uses RANDOM VGG19 weights (module.objective.perceptual.random_weights=true): tests only"
            )
        try:
            self.vgg = VGGFeatureExtractor(layer=layer, weights_path=weights, pretrained=not random_weights)
        except FileNotFoundError as err:
            if required:
                raise FileNotFoundError(
                    f"{err}\n(set module.objective.perceptual.weights=PATH, or module.objective.w_percep=0 to train without it)"
                ) from err
            log.warning(
                "perceptual loss DISABLED: %s; training runs without it (module.objective.w_percep has no effect)", err
            )
            self.available = False
            self.vgg = None
        if self.vgg is not None:
            self.vgg.requires_grad_(False).eval()

    def train(self, mode: bool = True):  # the feature extractor stays in eval mode
        super().train(mode)
        if self.vgg is not None:
            self.vgg.eval()
        return self

    def forward(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        if self.vgg is None:
            return sr.new_zeros(())
        with torch.no_grad():
            target = self.vgg(hr)
        return F.l1_loss(self.vgg(sr), target)
