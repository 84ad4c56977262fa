"""Concatenation conditioning: the ablation baseline that feeds the condition maps as extra channels."""

from __future__ import annotations

import torch
from torch import nn


class ConcatLayer(nn.Module):
    """``out = F + conv1x1([F, cond])``: condition maps concatenated to the features, then mixed back
    to ``feat_channels`` by a 1x1 conv.

    The residual form makes a freshly initialised (small-weight) layer start near the identity, as the
    SFT layer's ``F * (1 + gamma) + beta`` does, so both baselines start from the same SRResNet.

    Shapes: features (N, feat_channels, h, w); condition (N, cond_channels, h, w) or (N, cond_channels, 1, 1).
    """

    def __init__(self, feat_channels: int = 64, cond_channels: int = 32) -> None:
        super().__init__()
        self.fuse = nn.Conv2d(feat_channels + cond_channels, feat_channels, 1)

    @torch.no_grad()
    def init_identity(self) -> None:
        """The fuse conv zero: the layer returns its features exactly, whatever the condition."""
        nn.init.zeros_(self.fuse.weight)
        nn.init.zeros_(self.fuse.bias)

    def forward(self, features: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if cond.shape[-2:] != features.shape[-2:]:
            cond = cond.expand(-1, -1, *features.shape[-2:])
        return features + self.fuse(torch.cat([features, cond], dim=1))
