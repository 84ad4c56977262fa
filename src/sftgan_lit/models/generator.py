"""SFT-Net: the SFTGAN generator, and the ablation baselines built from the same code.

The prior enters through a ``ConditionNet`` (prior -> shared conditions at LR resolution) and one
conditioning layer before each conv of the residual blocks, plus one before the trunk's last conv:

    lr -> conv0 -> [block_i: cond0 -> conv0 -> ReLU -> cond1 -> conv1, + identity] x num_blocks
       -> cond_final -> conv, + long skip -> upsampler (x2 per stage) -> conv -> ReLU -> conv -> sr

``conditioning`` picks the layer: ``sft`` (per-pixel gamma/beta, the paper), ``film`` (the same layer
on the spatially pooled condition: one gamma/beta per image), ``concat`` (condition maps concatenated
to the features) or ``none`` (no prior at all: SRResNet). Module names follow the released checkpoints
(``conv0``, ``sft_branch.i.sft0``, ``HR_branch``, ``CondNet``) so they load with ``strict=True``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .conditioned import ConditionedConfig, ConditionedGenerator, Stage, conditioned, conv_radius

Upsampler = Literal["pixelshuffle", "nearest"]


@dataclass
class GeneratorConfig(ConditionedConfig):
    """Constructor arguments of ``SFTGenerator``; stored in exported checkpoints to rebuild the model."""

    num_features: int = 64
    num_blocks: int = 16
    relu_after_cond: bool = False
    upsampler: Upsampler = "pixelshuffle"

    SIZES: ClassVar[tuple[str, ...]] = ("num_features", "num_blocks")


class ResBlockSFT(nn.Module):
    """Residual block ``x + conv1(cond1(act(conv0(cond0(x)))))``; shapes (N, C, h, w) -> (N, C, h, w).

    ``cond0``/``cond1`` are ``SFTLayer``/``ConcatLayer`` or ``None`` (a plain SRResNet block). With
    ``relu_after_cond`` (the Torch7 model) the ReLUs sit after the conditioning layers instead:
    ``x + conv1(ReLU(cond1(conv0(ReLU(cond0(x))))))``.
    """

    def __init__(self, num_features: int, make_cond, relu_after_cond: bool = False) -> None:
        super().__init__()
        cond0, cond1 = make_cond(), make_cond()
        if cond0 is not None:
            self.sft0 = cond0
        self.conv0 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        if cond1 is not None:
            self.sft1 = cond1
        self.conv1 = nn.Conv2d(num_features, num_features, 3, 1, 1)
        self.conditioned = cond0 is not None
        self.relu_after_cond = relu_after_cond

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        fea = self.sft0(x, cond) if self.conditioned else x
        if self.relu_after_cond:
            fea = self.conv0(F.relu(fea))
            fea = self.sft1(fea, cond) if self.conditioned else fea
            fea = self.conv1(F.relu(fea))
        else:
            fea = F.relu(self.conv0(fea), inplace=True)  # conv0's output is fresh: safe in place
            fea = self.sft1(fea, cond) if self.conditioned else fea
            fea = self.conv1(fea)
        return x + fea


def _upsampler(cfg: GeneratorConfig) -> nn.Sequential:
    """x``scale`` upsampling (x2 stages for powers of two, one x3 stage for 3, none for 1) then two convs,
    indices as in the released ``HR_branch``."""
    nf = cfg.num_features
    factors = [3] if cfg.scale == 3 else [2] * (cfg.scale.bit_length() - 1)
    layers: list[nn.Module] = []
    for f in factors:
        if cfg.upsampler == "pixelshuffle":
            layers += [nn.Conv2d(nf, nf * f * f, 3, 1, 1), nn.PixelShuffle(f), nn.ReLU(inplace=True)]
        elif cfg.upsampler == "nearest":
            layers += [nn.Upsample(scale_factor=f, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(inplace=True)]
        else:
            raise ValueError(f"generator upsampler must be 'pixelshuffle' or 'nearest', got {cfg.upsampler!r}")
    # In-place ReLUs: at SR resolution each activation is large (64 x 4h x 4w floats per image), and a
    # fresh allocation of that size costs page faults comparable to the conv itself on a CPU.
    layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(nf, cfg.out_channels, 3, 1, 1)]
    return nn.Sequential(*layers)


class SFTGenerator(ConditionedGenerator):
    """SFT-Net (x4 by default; x1, x2, x3 too). ``forward(lr, prior) -> sr``.

    Args: see ``GeneratorConfig`` (the keyword arguments are its fields).

    Shapes: lr (N, in_channels, h, w), RGB in [0, 1]; prior (N, num_classes, scale*h, scale*w),
    per-pixel class probabilities (ignored, and may be ``None``, with ``conditioning="none"``).
    Returns the raw, unclamped network output (N, out_channels, scale*h, scale*w).
    """

    config_class = GeneratorConfig

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        cfg = self.config
        flags = cfg.conditioned_blocks(cfg.num_blocks)
        nf = cfg.num_features
        self.conv0 = nn.Conv2d(cfg.in_channels, nf, 3, 1, 1)
        blocks: list[nn.Module] = [
            ResBlockSFT(nf, (lambda: self.make_cond(nf)) if on else (lambda: None), cfg.relu_after_cond) for on in flags
        ]
        final = self.make_cond(nf) if cfg.final_cond else None
        blocks.append(final if final is not None else nn.Identity())
        blocks.append(nn.Conv2d(nf, nf, 3, 1, 1))
        # ModuleList, not Sequential: blocks take (features, cond) as two arguments instead of the
        # original's tuple, but the parameter names (sft_branch.<i>...) stay the checkpoint's.
        self.sft_branch = nn.ModuleList(blocks)
        self.HR_branch = _upsampler(cfg)
        self.CondNet = self.condition_net(any(flags) or final is not None)
        self.finish_init()

    def head(self, lr: torch.Tensor) -> torch.Tensor:
        return self.conv0(lr)

    def stages(self) -> list[Stage]:
        blocks = [Stage(block, conv_radius(block)) for block in self.sft_branch[:-2]]
        final = self.sft_branch[-2]  # the conditioning layer before the last conv, or an Identity
        return blocks + [Stage(conditioned(None if isinstance(final, nn.Identity) else final), 0)]

    def tail(self, x: torch.Tensor, fea: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        return fea + self.sft_branch[-1](x)
