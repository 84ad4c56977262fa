"""Condition network: categorical prior at HR resolution -> shared conditions at LR resolution."""

from __future__ import annotations

from torch import nn


class ConditionNet(nn.Sequential):
    """``Conv(k=scale, stride=scale)`` then 1x1 convs with LeakyReLU, as in the original ``CondNet``.

    Input: prior probabilities (N, num_classes, scale*h, scale*w). Output: conditions
    (N, out_channels, h, w), shared by every SFT layer of the generator. Indices of the layers match
    the original checkpoints (``CondNet.0`` ... ``CondNet.8``).

    Args:
        num_classes: channels of the prior (its class count).
        out_channels: channels of the condition the SFT layers read.
        hidden_channels: width of the hidden layers.
        num_hidden_layers: 1x1 convs after the strided one.
        scale: the SR factor: the strided conv brings the HR-size prior to the LR grid.
    """

    def __init__(
        self,
        num_classes: int = 8,
        out_channels: int = 32,
        hidden_channels: int = 128,
        num_hidden_layers: int = 3,
        scale: int = 4,
        negative_slope: float = 0.1,
    ) -> None:
        layers: list[nn.Module] = [nn.Conv2d(num_classes, hidden_channels, scale, scale)]
        for _ in range(num_hidden_layers):
            layers += [nn.LeakyReLU(negative_slope), nn.Conv2d(hidden_channels, hidden_channels, 1)]
        layers += [nn.LeakyReLU(negative_slope), nn.Conv2d(hidden_channels, out_channels, 1)]
        super().__init__(*layers)
        self.num_classes = num_classes
        self.scale = scale
