"""SFT-RRDBNet: ESRGAN / Real-ESRGAN's RRDBNet with the SFT-Net's condition network and conditioning layers.

The trunk is Real-ESRGAN's ``RRDBNet`` layer for layer and key for key (``conv_first``,
``body.<i>.rdb{1,2,3}.conv{1..5}``, ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``,
``conv_last``), so its released weights (RealESRGAN_x4plus, x2plus, ESRGAN, community models) load
into it. A conditioning layer (``sft.<i>``) sits before each chosen RRDB and one (``sft_body``) before
``conv_body``:

    lr -(pixel-unshuffle at x2 / x1)-> conv_first -> [sft_i -> RRDB_i] x num_blocks -> sft_body -> conv_body,
       + long skip -> (nearest x2 -> conv_up -> LReLU) x 2 (one nearest x3 at x3) -> conv_hr -> LReLU -> conv_last

As in Real-ESRGAN, x2 and x1 unshuffle the LR by 2 and 4 so the trunk always runs at a quarter of the
HR size (the input is padded to that multiple). x3, which Real-ESRGAN does not have, upsamples once by
nearest x3 before ``conv_up1``, as ESRGAN-layout x3 models do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from .conditioned import ConditionedConfig, ConditionedGenerator, Stage, conditioned, conv_radius


@dataclass
class RRDBConfig(ConditionedConfig):
    """Constructor arguments of ``SFTRRDBNet`` (Real-ESRGAN's ``num_feat``, ``num_block``, ``num_grow_ch``
    are ``num_features``, ``num_blocks``, ``num_grow_ch``)."""

    num_features: int = 64
    num_blocks: int = 23
    num_grow_ch: int = 32

    SIZES: ClassVar[tuple[str, ...]] = ("num_features", "num_blocks", "num_grow_ch")


class ResidualDenseBlock(nn.Module):
    """Five densely connected 3x3 convs, LeakyReLU(0.2), ``x + 0.2 * conv5(...)``; (N, C, h, w) -> same."""

    def __init__(self, num_feat: int = 64, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_grow_ch, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat + num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv3 = nn.Conv2d(num_feat + 2 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv4 = nn.Conv2d(num_feat + 3 * num_grow_ch, num_grow_ch, 3, 1, 1)
        self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x1 = F.leaky_relu(self.conv1(x), 0.2)
        x2 = F.leaky_relu(self.conv2(torch.cat((x, x1), 1)), 0.2)
        x3 = F.leaky_relu(self.conv3(torch.cat((x, x1, x2), 1)), 0.2)
        x4 = F.leaky_relu(self.conv4(torch.cat((x, x1, x2, x3), 1)), 0.2)
        x5 = self.conv5(torch.cat((x, x1, x2, x3, x4), 1))
        return x5 * 0.2 + x


class RRDB(nn.Module):
    """Residual in residual dense block: three ``ResidualDenseBlock`` and ``x + 0.2 * (...)``."""

    def __init__(self, num_feat: int, num_grow_ch: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
        self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


class RRDBUpsampler(nn.Module):
    """The HR layers of an ``SFTRRDBNet`` (its own ``conv_up*``, ``conv_hr``, ``conv_last``, not copies):
    trunk features (N, C, h', w') -> (N, out, 4h', 4w') (3h', 3w' at x3)."""

    def __init__(self, net: SFTRRDBNet) -> None:
        super().__init__()
        self.ups = nn.ModuleList([net.conv_up1] + ([net.conv_up2] if net.config.scale != 3 else []))
        self.factors = [3] if net.config.scale == 3 else [2, 2]
        self.conv_hr, self.conv_last = net.conv_hr, net.conv_last

    def forward(self, feat: torch.Tensor) -> torch.Tensor:
        for conv, f in zip(self.ups, self.factors, strict=True):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=f, mode="nearest")), 0.2)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))


class SFTRRDBNet(ConditionedGenerator):
    """RRDBNet conditioned on a prior through SFT layers. ``forward(lr, prior) -> sr``.

    Args: see ``RRDBConfig`` and ``ConditionedConfig`` (the keyword arguments are their fields).

    Shapes: lr (N, in_channels, h, w), RGB in [0, 1]; prior (N, num_classes, scale*h, scale*w)
    (None with ``conditioning="none"``: then it is Real-ESRGAN's RRDBNet exactly). Returns the raw,
    unclamped output (N, out_channels, scale*h, scale*w).
    """

    config_class = RRDBConfig

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = self.config
        nf = cfg.num_features
        self.lr_multiple = {1: 4, 2: 2}.get(cfg.scale, 1)
        self.conv_first = nn.Conv2d(cfg.in_channels * self.lr_multiple**2, nf, 3, 1, 1)
        self.body = nn.Sequential(*[RRDB(nf, cfg.num_grow_ch) for _ in range(cfg.num_blocks)])
        flags = cfg.conditioned_blocks(cfg.num_blocks)
        layers = {str(i): self.make_cond(nf) for i, on in enumerate(flags) if on}
        self.sft = nn.ModuleDict({k: v for k, v in layers.items() if v is not None})
        self.sft_body = self.make_cond(nf) if cfg.final_cond else None
        self.conv_body = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_up1 = nn.Conv2d(nf, nf, 3, 1, 1)
        if cfg.scale != 3:
            self.conv_up2 = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_hr = nn.Conv2d(nf, nf, 3, 1, 1)
        self.conv_last = nn.Conv2d(nf, cfg.out_channels, 3, 1, 1)
        self.CondNet = self.condition_net(len(self.sft) > 0 or self.sft_body is not None)
        self.finish_init()

    @property
    def HR_branch(self) -> RRDBUpsampler:
        return RRDBUpsampler(self)

    def head(self, lr: torch.Tensor) -> torch.Tensor:
        if self.lr_multiple > 1:
            lr = F.pixel_unshuffle(lr, self.lr_multiple)
        return self.conv_first(lr)

    def stages(self) -> list[Stage]:
        blocks = [
            Stage(conditioned(self.sft[str(i)] if str(i) in self.sft else None, block), conv_radius(block))
            for i, block in enumerate(self.body)
        ]
        return blocks + [Stage(conditioned(self.sft_body), 0)]

    def tail(self, x: torch.Tensor, fea: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return fea + self.conv_body(x)
