"""The original training code's weight initialisation (BasicSR ``init_weights(net, 'kaiming', scale)``)."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


@torch.no_grad()
def scaled_kaiming_(modules: Iterable[nn.Module], scale: float = 1.0) -> None:
    """Kaiming-normal (fan-in, gain for ReLU) weights times ``scale`` and zero biases for every conv and
    linear layer inside ``modules``; batch norms get weight 1, bias 0. The original used ``scale=0.1``
    for the generator (and for SFT/condition layers added to a pretrained SRResNet) and ``scale=1`` for
    the discriminator."""
    for root in modules:
        for m in root.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
                m.weight.mul_(scale)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
