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

import math
from dataclasses import asdict, dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from ..choices import Conditioning, choice
from ..config import require, require_int
from ..tensors import check_image, check_probs
from .concat import ConcatLayer
from .condition import ConditionNet
from .init import scaled_kaiming_
from .sft import SFTFormula, SFTLayer

Upsampler = Literal["pixelshuffle", "nearest"]


@dataclass
class GeneratorConfig:
    """Constructor arguments of ``SFTGenerator``; stored in exported checkpoints to rebuild the model."""

    in_channels: int = 3
    out_channels: int = 3
    num_features: int = 64
    num_blocks: int = 16
    num_classes: int = 8
    scale: int = 4
    conditioning: str = Conditioning.sft.value  # one of choices.Conditioning
    # Blocks that get conditioning layers: None = all, k = the first k; ``final_cond`` adds the one
    # before the trunk's last conv.
    num_cond_blocks: int | None = None
    final_cond: bool = True
    cond_channels: int = 32
    cond_hidden_channels: int = 128
    sft_hidden_channels: int = 32
    sft_formula: SFTFormula = "residual"
    sft_negative_slope: float = 0.1
    cond_negative_slope: float = 0.1
    relu_after_cond: bool = False
    upsampler: Upsampler = "pixelshuffle"
    # None: PyTorch's default initialisation. A float s: the original training code's initialisation
    # (Kaiming-normal, fan-in, weights x s, biases 0; BasicSR used s = 0.1) for training from scratch.
    weight_init_scale: float | None = None

    def check(self) -> None:
        """Sizes are integers >= 1 (``num_classes`` >= 0: an SRResNet has none); a ``ConfigError`` names the key."""
        sizes = (
            "in_channels",
            "out_channels",
            "num_features",
            "num_blocks",
            "scale",
            "cond_channels",
            "cond_hidden_channels",
            "sft_hidden_channels",
        )
        for name in (*sizes, "num_classes"):
            require_int(f"model.generator.{name}", getattr(self, name), 0 if name == "num_classes" else 1)
        for name in ("sft_negative_slope", "cond_negative_slope"):
            value = getattr(self, name)
            require(isinstance(value, int | float), f"model.generator.{name}", value, "a number")


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
    """x``scale`` upsampling then two convs, indices as in the released ``HR_branch``."""
    nf = cfg.num_features
    stages = int(math.log2(cfg.scale))
    if 2**stages != cfg.scale:
        raise ValueError(f"generator scale must be a power of 2, got {cfg.scale}")
    layers: list[nn.Module] = []
    for _ in range(stages):
        if cfg.upsampler == "pixelshuffle":
            layers += [nn.Conv2d(nf, nf * 4, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU(inplace=True)]
        elif cfg.upsampler == "nearest":
            layers += [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(inplace=True)]
        else:
            raise ValueError(f"generator upsampler must be 'pixelshuffle' or 'nearest', got {cfg.upsampler!r}")
    # In-place ReLUs: at SR resolution each activation is large (64 x 4h x 4w floats per image), and a
    # fresh allocation of that size costs page faults comparable to the conv itself on a CPU.
    layers += [nn.Conv2d(nf, nf, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(nf, cfg.out_channels, 3, 1, 1)]
    return nn.Sequential(*layers)


class SFTGenerator(nn.Module):
    """SFT-Net (x4 by default). ``forward(lr, prior) -> sr``.

    Args: see ``GeneratorConfig`` (the keyword arguments are its fields).

    Shapes: lr (N, in_channels, h, w), RGB in [0, 1]; prior (N, num_classes, scale*h, scale*w),
    per-pixel class probabilities (ignored, and may be ``None``, with ``conditioning="none"``).
    Returns the raw, unclamped network output (N, out_channels, scale*h, scale*w).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__()
        cfg = GeneratorConfig(**kwargs)
        cfg.check()
        # a plain string (Hydra's structured configs pass the enum member): the config is saved in exports
        cfg.conditioning = choice(Conditioning, cfg.conditioning, "conditioning")
        n_cond = cfg.num_blocks if cfg.num_cond_blocks is None else cfg.num_cond_blocks
        if not 0 <= n_cond <= cfg.num_blocks:
            raise ValueError(f"num_cond_blocks must be in [0, {cfg.num_blocks}] or None, got {cfg.num_cond_blocks}")
        self.config = cfg
        # what the file it was loaded from records about it (classes, training facts; models.checkpoints)
        self.record: dict = {}
        nf = cfg.num_features
        uses_prior = cfg.conditioning != "none" and (n_cond > 0 or cfg.final_cond)

        def make_cond() -> nn.Module | None:
            if cfg.conditioning in ("sft", "film"):
                return SFTLayer(nf, cfg.cond_channels, cfg.sft_hidden_channels, cfg.sft_formula, cfg.sft_negative_slope)
            if cfg.conditioning == "concat":
                return ConcatLayer(nf, cfg.cond_channels)
            return None

        self.conv0 = nn.Conv2d(cfg.in_channels, nf, 3, 1, 1)
        blocks: list[nn.Module] = [
            ResBlockSFT(nf, make_cond if i < n_cond else (lambda: None), cfg.relu_after_cond)
            for i in range(cfg.num_blocks)
        ]
        final = make_cond() if cfg.final_cond else None
        blocks.append(final if final is not None else nn.Identity())
        blocks.append(nn.Conv2d(nf, nf, 3, 1, 1))
        # ModuleList, not Sequential: blocks take (features, cond) as two arguments instead of the
        # original's tuple, but the parameter names (sft_branch.<i>...) stay the checkpoint's.
        self.sft_branch = nn.ModuleList(blocks)
        self.HR_branch = _upsampler(cfg)
        self.CondNet = (
            ConditionNet(
                cfg.num_classes,
                cfg.cond_channels,
                cfg.cond_hidden_channels,
                scale=cfg.scale,
                negative_slope=cfg.cond_negative_slope,
            )
            if uses_prior
            else None
        )
        self.uses_prior = uses_prior
        self._final_conditioned = final is not None
        if cfg.weight_init_scale is not None:
            self.init_weights(cfg.weight_init_scale)

    def init_weights(self, scale: float = 0.1) -> None:
        """The original training code's init for every layer (``models.init.scaled_kaiming_``)."""
        scaled_kaiming_([self], scale)

    @property
    def scale(self) -> int:
        return self.config.scale

    def conditioning_modules(self) -> list[nn.Module]:
        """The modules that carry the prior (CondNet, SFT/concat layers): the original recipe trains them
        at a higher learning rate and initialises them small."""
        mods: list[nn.Module] = [self.CondNet] if self.CondNet is not None else []
        for block in self.sft_branch[:-2]:
            if block.conditioned:
                mods += [block.sft0, block.sft1]
        if self._final_conditioned:
            mods.append(self.sft_branch[-2])
        return mods

    def config_dict(self) -> dict:
        """The constructor arguments as plain Python values (safe for ``torch.load(weights_only=True)``)."""
        return asdict(self.config)

    def check_inputs(self, lr: torch.Tensor, prior: torch.Tensor | None) -> None:
        """Raise ``ValueError`` naming both shapes when ``prior`` does not fit ``lr``, or naming the tensor
        whose values are wrong (``tensors.check_image`` / ``check_probs``: skipped in trusted loops)."""
        cfg = self.config
        if lr.dim() != 4 or lr.shape[1] != cfg.in_channels:
            raise ValueError(f"lr must be (N, {cfg.in_channels}, h, w), got {tuple(lr.shape)}")
        check_image(lr, "lr (the generator's input)")
        if not self.uses_prior:
            return
        if prior is None:
            raise ValueError(f"this generator (conditioning={cfg.conditioning!r}) needs a prior; got None")
        n, _, h, w = lr.shape
        expected = (n, cfg.num_classes, h * cfg.scale, w * cfg.scale)
        if tuple(prior.shape) != expected:
            raise ValueError(
                f"prior shape {tuple(prior.shape)} does not fit lr shape {tuple(lr.shape)}: expected {expected} "
                f"({cfg.num_classes} class probabilities at {cfg.scale}x the LR size)"
            )
        check_probs(prior, "prior (the generator's categorical prior)")

    def condition(self, prior: torch.Tensor) -> torch.Tensor:
        """Shared conditions (N, cond_channels, h, w), or (N, cond_channels, 1, 1) for ``film``."""
        cond = self.CondNet(prior)
        if self.config.conditioning == "film":
            cond = cond.mean(dim=(2, 3), keepdim=True)
        return cond

    def forward(self, lr: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        return self.HR_branch(self.lr_features(lr, prior))

    def lr_features(self, lr: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """The trunk: LR features ``(N, num_features, h, w)`` (long skip included) that ``HR_branch``
        upsamples. Split out so tiled inference can run the memory-heavy HR layers in strips."""
        self.check_inputs(lr, prior)
        if self.conv0.weight.is_contiguous(memory_format=torch.channels_last):
            # Inputs follow the weights' layout: a channels_last model (what load_generator returns)
            # runs NHWC convolutions end to end, ~1.5x faster on CPUs (benchmarks/bench_generator.py).
            lr = lr.contiguous(memory_format=torch.channels_last)
            prior = prior.contiguous(memory_format=torch.channels_last) if prior is not None else None
        cond = self.condition(prior) if self.uses_prior else None
        fea = self.conv0(lr)
        res = fea
        for block in self.sft_branch[:-2]:
            res = block(res, cond)
        if self._final_conditioned:
            res = self.sft_branch[-2](res, cond)
        res = self.sft_branch[-1](res)
        return fea + res
