"""VGG-style discriminator with batch norm and two heads: real/fake and category (``ACD_VGG_BN_96``)."""

from __future__ import annotations

import torch
from torch import nn

from .init import scaled_kaiming_


class ACDDiscriminator(nn.Module):
    """Auxiliary-classifier discriminator of SFTGAN's training code.

    Features: conv3x3 + LeakyReLU, then pairs ``[conv4x4 stride 2, BN, LeakyReLU]`` /
    ``[conv3x3, BN, LeakyReLU]`` doubling the width up to ``8 * base_channels`` (4 stride-2 convs,
    /16). Heads on the flattened features: ``gan`` (N, 1) real/fake logit and ``cls`` (N, num_classes)
    category logits. Layer indices match the ``ACD_VGG_BN_96`` layout.

    Input: (N, in_channels, input_size, input_size), RGB in [0, 1]. Returns ``(gan_logit, cls_logits)``.

    ``weight_init_scale``: None keeps PyTorch's default initialisation; a float ``s`` is the original
    training code's (Kaiming-normal x ``s``, zero biases, BN 1/0; the original used ``s = 1``).
    """

    def __init__(
        self,
        in_channels: int = 3,
        base_channels: int = 64,
        num_classes: int = 8,
        input_size: int = 96,
        hidden_features: int = 100,
        negative_slope: float = 0.1,
        weight_init_scale: float | None = None,
    ) -> None:
        super().__init__()
        if input_size % 16:
            raise ValueError(f"discriminator input_size must be a multiple of 16, got {input_size}")
        self.input_size = input_size
        self.num_classes = num_classes
        nc = base_channels
        layers: list[nn.Module] = [nn.Conv2d(in_channels, nc, 3, 1, 1), nn.LeakyReLU(negative_slope)]
        # (in, out, kernel, stride): halve the size, then widen, up to 8 * base_channels
        convs = [
            (nc, nc, 4, 2),
            (nc, 2 * nc, 3, 1),
            (2 * nc, 2 * nc, 4, 2),
            (2 * nc, 4 * nc, 3, 1),
            (4 * nc, 4 * nc, 4, 2),
            (4 * nc, 8 * nc, 3, 1),
            (8 * nc, 8 * nc, 4, 2),
        ]
        for c_in, c_out, kernel, stride in convs:
            layers += [nn.Conv2d(c_in, c_out, kernel, stride, 1), nn.BatchNorm2d(c_out), nn.LeakyReLU(negative_slope)]
        prev = 8 * nc
        self.feature = nn.Sequential(*layers)
        flat = prev * (input_size // 16) ** 2
        self.gan = nn.Sequential(
            nn.Linear(flat, hidden_features), nn.LeakyReLU(negative_slope), nn.Linear(hidden_features, 1)
        )
        self.cls = nn.Sequential(
            nn.Linear(flat, hidden_features), nn.LeakyReLU(negative_slope), nn.Linear(hidden_features, num_classes)
        )
        if weight_init_scale is not None:
            scaled_kaiming_([self], weight_init_scale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.shape[-2:] != (self.input_size, self.input_size):
            raise ValueError(
                f"discriminator expects {self.input_size}x{self.input_size} patches, got {tuple(x.shape)}; "
                f"set input_size to the HR crop size"
            )
        fea = self.feature(x).flatten(1)
        return self.gan(fea), self.cls(fea)
