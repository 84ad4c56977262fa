"""A light prior segmenter: torchvision's LR-ASPP on MobileNetV3-Large behind ``OutdoorSceneSeg``'s interface.

Same contract as ``OutdoorSceneSeg`` (``forward``: LR RGB in [0, 1] -> probabilities at ``scale`` x the
LR size, computed on the MATLAB-bicubic upsampled LR as the SFTGAN prior is; ``logits`` before the
softmax; ``coarse_logits`` / ``decode_coarse`` at stride 8 for tiled inference), so it trains with
``experiment=segmenter`` and serves as a prior in ``sftgan-prepare``, online priors and ``predict.py``.
About 3.2 M parameters vs 57 M for OutdoorSceneSeg; randomly initialised, or the backbone from a local
ImageNet MobileNetV3-Large checkpoint (never downloaded).
"""

from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

from ..categories import IMAGENET_MEAN, IMAGENET_STD
from ..imresize import bicubic_kernel, upsample
from ..state_dict import CheckpointError, load_state_dict_file
from ..tensors import check_image


class LRASPPSegmenter(nn.Module):
    """LR-ASPP MobileNetV3-Large segmenter of the bicubic-upsampled LR.

    Args:
        num_classes: classes of the prior (``prior.num_classes``).
        scale: SR scale; the segmenter sees ``imresize(lr, scale)``.
        backbone_weights: optional path of torchvision's ImageNet ``mobilenet_v3_large`` weights
            (``mobilenet_v3_large-8738ca79.pth`` or ``-5c1a4163.pth``), loaded into the backbone.
    """

    coarse_stride = 8
    # decode_coarse is a bilinear x8 upsampling: one logit cell of context each side is enough.
    coarse_margin = 2
    pad_to = 16  # the backbone's output stride

    def __init__(self, num_classes: int = 8, scale: int = 4, backbone_weights: str | None = None) -> None:
        super().__init__()
        from torchvision.models.segmentation import lraspp_mobilenet_v3_large

        self.num_classes = num_classes
        self.scale = scale
        # backbone_weights is only the starting point: an exported checkpoint holds all weights
        self._config = {"num_classes": num_classes, "scale": scale}
        net = lraspp_mobilenet_v3_large(weights=None, weights_backbone=None, num_classes=num_classes)
        self.backbone, self.head = net.backbone, net.classifier
        # torchvision's MobileNetV3 uses BN momentum 0.01 (ImageNet-length runs); in a run of a few hundred
        # steps the running statistics would lag the weights and evaluation would see stale ones.
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.momentum = 0.1
        self.register_buffer("upsample_kernel", bicubic_kernel(scale).float(), persistent=False)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        if backbone_weights:
            self.load_backbone(backbone_weights)

    def config_dict(self) -> dict:
        """Constructor arguments (what ``export_segmenter`` records)."""
        return dict(self._config)

    def load_backbone(self, path: str | os.PathLike) -> None:
        """Copy an ImageNet MobileNetV3-Large checkpoint's ``features.*`` into the backbone (every backbone key must be there)."""
        sd = load_state_dict_file(path)
        own = self.backbone.state_dict()
        picked = {
            k[len("features.") :]: v
            for k, v in sd.items()
            if k.startswith("features.") and k[len("features.") :] in own
        }
        missing = sorted(set(own) - set(picked))
        if missing:
            raise CheckpointError(
                f"{path}: not a MobileNetV3-Large ImageNet checkpoint; {len(missing)} backbone keys missing, e.g. {missing[:3]}"
            )
        bad = [k for k, v in picked.items() if v.shape != own[k].shape]
        if bad:
            raise CheckpointError(f"{path}: shapes differ from MobileNetV3-Large for {bad[:3]}")
        self.backbone.load_state_dict(picked)

    def preprocess(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB [0, 1] (N, 3, h, w) -> normalised bicubic x``scale``, padded (replicate) to a multiple of 16."""
        if lr.dim() != 4 or lr.shape[1] != 3:
            raise ValueError(f"LRASPPSegmenter expects LR RGB (N, 3, h, w) in [0, 1], got {tuple(lr.shape)}")
        x = (upsample(lr.to(self.mean.dtype), self.scale, self.upsample_kernel) - self.mean) / self.std
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.pad_to, (-w) % self.pad_to
        # padded unconditionally (a zero pad is a no-op): a branch on the size would be frozen into exported graphs
        return F.pad(x, (0, pad_w, 0, pad_h), mode="replicate")

    def coarse_logits(self, lr: torch.Tensor) -> torch.Tensor:
        """LR (N, 3, h, w) -> logits at stride 8 of the (padded) HR grid."""
        features = self.backbone(self.preprocess(lr))
        low, high = features["low"], features["high"]
        # torchvision's LRASPPHead, with the high branch upsampled by its exact factor 2 (the padded input is a
        # multiple of 16, so stride 16 is half of stride 8) instead of to low's size read at run time: the
        # same numbers, and exported graphs keep sizes the runtime can follow.
        head = self.head
        x = head.cbr(high) * head.scale(high)
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        return head.low_classifier(low) + head.high_classifier(x)

    def decode_coarse(self, logits: torch.Tensor) -> torch.Tensor:
        """Stride-8 logits (N, C, a, b) -> probabilities (N, C, 8a, 8b)."""
        return torch.softmax(self.upsample(logits), dim=1)

    def upsample(self, logits: torch.Tensor) -> torch.Tensor:
        return F.interpolate(logits, scale_factor=self.coarse_stride, mode="bilinear", align_corners=False)

    def logits(self, lr: torch.Tensor) -> torch.Tensor:
        """LR (N, 3, h, w) -> logits (N, C, scale*h, scale*w), the training target's grid."""
        check_image(lr, "lr (the segmenter's input)")
        h, w = lr.shape[-2] * self.scale, lr.shape[-1] * self.scale
        return self.upsample(self.coarse_logits(lr))[..., :h, :w]

    def forward(self, lr: torch.Tensor) -> torch.Tensor:
        """LR RGB [0, 1] (N, 3, h, w) -> class probabilities (N, num_classes, scale*h, scale*w)."""
        return torch.softmax(self.logits(lr), dim=1)
