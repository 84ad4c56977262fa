"""SFT-Compact: Real-ESRGAN's SRVGGNetCompact (realesr-general-x4v3, realesr-animevideov3) with the
SFT-Net's condition network and conditioning layers.

The trunk is SRVGGNetCompact layer for layer and key for key (``body.0`` the first conv, ``body.1`` its
activation, then a conv and an activation per block (``num_blocks``, SRVGGNetCompact's ``num_conv``), the last conv to ``out_channels * scale**2``
channels), so its released weights load into it. A conditioning layer (``sft.<i>``) sits before the
``i``-th body conv and one (``sft_last``) before the last conv:

    lr -> conv -> act -> [sft_i -> conv -> act] x num_blocks -> sft_last -> conv (out * s^2 channels)
       + lr repeated s^2 times per channel -> pixel shuffle by s -> sr

Adding the LR repeated per channel before the shuffle is SRVGGNetCompact's "pixel shuffle, then add the
nearest-upsampled LR" in one step (the shuffle only moves values), so the outputs are the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
from torch import nn

from ..config import require
from .conditioned import ConditionedConfig, ConditionedGenerator, Stage, conditioned

Activation = Literal["prelu", "leakyrelu", "relu"]


@dataclass
class CompactConfig(ConditionedConfig):
    """Constructor arguments of ``SFTCompact`` (SRVGGNetCompact's ``num_feat``, ``num_conv``, ``act_type``
    are ``num_features``, ``num_blocks``, ``act_type``)."""

    num_features: int = 64
    num_blocks: int = 32
    act_type: Activation = "prelu"

    SIZES: ClassVar[tuple[str, ...]] = ("num_features", "num_blocks")

    def check(self) -> None:
        super().check()
        require(
            self.in_channels == self.out_channels,
            "model.generator.out_channels",
            self.out_channels,
            f"equal to in_channels ({self.in_channels}): the compact net adds the upsampled input to its output",
        )
        require(
            self.act_type in ("prelu", "leakyrelu", "relu"),
            "model.generator.act_type",
            self.act_type,
            "prelu, leakyrelu or relu",
        )


def _activation(kind: str, num_feat: int) -> nn.Module:
    if kind == "prelu":
        return nn.PReLU(num_parameters=num_feat)
    if kind == "leakyrelu":
        return nn.LeakyReLU(negative_slope=0.1)
    return nn.ReLU()


class SFTCompact(ConditionedGenerator):
    """SRVGGNetCompact conditioned on a prior through SFT layers. ``forward(lr, prior) -> sr``.

    Args: see ``CompactConfig`` and ``ConditionedConfig`` (the keyword arguments are their fields).

    Shapes: lr (N, C, h, w), RGB in [0, 1]; prior (N, num_classes, scale*h, scale*w) (None with
    ``conditioning="none"``: then it is SRVGGNetCompact exactly). Returns the raw, unclamped output
    (N, C, scale*h, scale*w).
    """

    config_class = CompactConfig

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = self.config
        nf, s = cfg.num_features, cfg.scale
        layers: list[nn.Module] = [nn.Conv2d(cfg.in_channels, nf, 3, 1, 1), _activation(cfg.act_type, nf)]
        for _ in range(cfg.num_blocks):
            layers += [nn.Conv2d(nf, nf, 3, 1, 1), _activation(cfg.act_type, nf)]
        layers.append(nn.Conv2d(nf, cfg.out_channels * s * s, 3, 1, 1))
        self.body = nn.ModuleList(layers)
        flags = cfg.conditioned_blocks(cfg.num_blocks)
        made = {str(i): self.make_cond(nf) for i, on in enumerate(flags) if on}
        self.sft = nn.ModuleDict({k: v for k, v in made.items() if v is not None})
        self.sft_last = self.make_cond(nf) if cfg.final_cond else None
        self.upsampler = nn.PixelShuffle(s)
        self.CondNet = self.condition_net(len(self.sft) > 0 or self.sft_last is not None)
        self.finish_init()

    @property
    def HR_branch(self) -> nn.Module:
        return self.upsampler

    def head(self, lr: torch.Tensor) -> torch.Tensor:
        return self.body[1](self.body[0](lr))

    def stages(self) -> list[Stage]:
        blocks = []
        for i in range(self.config.num_blocks):
            conv, act = self.body[2 * i + 2], self.body[2 * i + 3]
            layer = self.sft[str(i)] if str(i) in self.sft else None
            blocks.append(Stage(conditioned(layer, lambda x, conv=conv, act=act: act(conv(x))), 1))
        return blocks + [Stage(conditioned(self.sft_last), 0)]

    def tail(self, x: torch.Tensor, fea: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        s2 = self.config.scale**2
        return self.body[-1](x) + lr.repeat_interleave(s2, dim=1)
