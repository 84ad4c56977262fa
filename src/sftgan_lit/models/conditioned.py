"""What every prior-conditioned SR generator shares: the condition network, the conditioning layers and
where they go, the input checks, the padding to the trunk's grid, and the staged trunk that tiled and
incremental inference walk through.

A backbone (``generator.SFTGenerator``, ``rrdb.SFTRRDBNet``, ``compact.SFTCompact``) subclasses
``ConditionedGenerator`` and says only what is its own: its layers (in the key layout its released
weights use), ``head`` (LR -> features on the trunk's grid), ``stages`` (the blocks, each
``(features, cond) -> features``), ``tail`` (the last trunk layers and its skip) and ``HR_branch`` (the
upsampler). Everything else (``forward``, ``lr_features``, ``condition``, ``check_inputs``,
``conditioning_modules``, ``init_identity``) is here, once:

    lr -(pad to lr_multiple)-> head -> stage_1(., cond) ... stage_n(., cond) -> tail -> HR_branch -> sr

The trunk runs on a grid ``lr_multiple`` LR pixels per cell (RRDBNet's pixel-unshuffled input at x2
and x1; 1 elsewhere); the condition net brings the HR-size prior to that grid with one conv of stride
``scale * lr_multiple``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
from torch import nn

from ..choices import Conditioning, choice
from ..config import require, require_int
from ..tensors import check_image, check_probs, check_unit
from .concat import ConcatLayer
from .condition import ConditionNet
from .init import scaled_kaiming_
from .sft import SFTFormula, SFTLayer


@dataclass
class ConditionedConfig:
    """The constructor arguments every conditioned backbone has (each backbone's config adds its own sizes).

    Placement: a block ``i`` (0-based) of the trunk gets a conditioning layer when ``i < num_cond_blocks``
    (None: every block) and ``i % cond_every == 0``; ``final_cond`` adds one before the trunk's last conv.
    """

    in_channels: int = 3
    out_channels: int = 3
    num_classes: int = 8
    # continuous prior channels stacked after the classes (a degradation's strength, a depth), each in [0, 1]
    num_continuous: int = 0
    scale: int = 4
    conditioning: str = Conditioning.sft.value  # one of choices.Conditioning
    num_cond_blocks: int | None = None
    cond_every: int = 1
    final_cond: bool = True
    cond_channels: int = 32
    cond_hidden_channels: int = 128
    sft_hidden_channels: int = 32
    sft_formula: SFTFormula = "residual"
    sft_negative_slope: float = 0.1
    cond_negative_slope: float = 0.1
    # None: PyTorch's default initialisation. A float s: the original training code's initialisation
    # (Kaiming-normal, fan-in, weights x s, biases 0; BasicSR used s = 0.1) for training from scratch.
    weight_init_scale: float | None = None

    SCALES: ClassVar[tuple[int, ...]] = (1, 2, 3, 4)
    SIZES: ClassVar[tuple[str, ...]] = ()  # the backbone's own integer sizes (each >= 1)

    def check(self) -> None:
        """Sizes are integers >= 1 (``num_classes`` >= 0: an unconditioned network has none), the scale one
        the backbone can do, the placement inside the trunk; a ``ConfigError`` names the key."""
        sizes = (
            "in_channels",
            "out_channels",
            *self.SIZES,
            "cond_every",
            "cond_channels",
            "cond_hidden_channels",
            "sft_hidden_channels",
        )
        for name in (*sizes, "num_classes", "num_continuous"):
            require_int(f"model.generator.{name}", getattr(self, name), 1 if name in sizes else 0)
        require(
            self.scale in self.SCALES,
            "model.generator.scale",
            self.scale,
            f"one of {', '.join(map(str, self.SCALES))} for this backbone",
        )
        for name in ("sft_negative_slope", "cond_negative_slope"):
            value = getattr(self, name)
            require(isinstance(value, int | float), f"model.generator.{name}", value, "a number")

    def conditioned_blocks(self, num_blocks: int) -> list[bool]:
        """Which of ``num_blocks`` trunk blocks get a conditioning layer (see the class docstring)."""
        n = num_blocks if self.num_cond_blocks is None else self.num_cond_blocks
        require(
            self.num_cond_blocks is None or (isinstance(n, int) and 0 <= n <= num_blocks),
            "model.generator.num_cond_blocks",
            self.num_cond_blocks,
            f"an integer in [0, {num_blocks}] or null",
        )
        return [i < n and i % self.cond_every == 0 for i in range(num_blocks)]


def conv_radius(module: nn.Module) -> int:
    """How far (in pixels at its own resolution) a stack of stride-1 convs spreads a change: the sum of
    ``dilation * (kernel - 1) / 2`` over its convs (1x1 convs add nothing). For a block with dense or
    residual connections this bounds its longest path."""
    total = 0
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            if m.stride != (1, 1):
                raise ValueError(f"conv_radius: unsupported strided conv {m}")
            total += m.dilation[0] * (m.kernel_size[0] - 1) // 2
    return total


@dataclass(frozen=True)
class Stage:
    """One trunk block as a call ``run(features, cond) -> features`` (same shape) and ``radius``: how many
    pixels of the trunk's grid a change of its input (or of ``cond`` under it) can move in its output."""

    run: Callable[[torch.Tensor, torch.Tensor | None], torch.Tensor]
    radius: int


def conditioned(layer: nn.Module | None, block: Callable[[torch.Tensor], torch.Tensor] | None = None) -> Callable:
    """``(x, cond) -> block(layer(x, cond))``, skipping whichever of the two is None."""

    def run(x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        if layer is not None:
            x = layer(x, cond)
        return block(x) if block is not None else x

    return run


class ConditionedGenerator(nn.Module):
    """The shared part of a prior-conditioned SR generator. ``forward(lr, prior) -> sr``.

    Shapes: lr (N, in_channels, h, w), RGB in [0, 1]; prior (N, num_classes, scale*h, scale*w),
    per-pixel class probabilities (ignored, and may be ``None``, when the network uses no prior).
    Returns the raw, unclamped network output (N, out_channels, scale*h, scale*w).

    Subclasses build their layers in ``__init__`` after ``super().__init__(config)``, create their
    conditioning layers with ``make_cond()`` and the condition net with ``condition_net()``, and
    implement ``head``, ``stages``, ``tail`` and ``HR_branch``.
    """

    config_class: ClassVar[type[ConditionedConfig]] = ConditionedConfig

    def __init__(self, **kwargs) -> None:
        super().__init__()
        cfg = self.config_class(**kwargs)
        cfg.check()
        # a plain string (Hydra's structured configs pass the enum member): the config is saved in exports
        cfg.conditioning = choice(Conditioning, cfg.conditioning, "conditioning")
        self.config = cfg
        # what the file it was loaded from records about it (classes, training facts; models.checkpoints)
        self.record: dict = {}
        self.CondNet: nn.Module | None = None

    # --- what a backbone provides ---------------------------------------------------------------
    lr_multiple: int = 1  # LR pixels per cell of the trunk's grid (the input is padded to a multiple)

    def head(self, lr: torch.Tensor) -> torch.Tensor:
        """LR (padded to ``lr_multiple``) -> the trunk's first features."""
        raise NotImplementedError

    def stages(self) -> list[Stage]:
        """The trunk's blocks in order (a fresh list: it holds no state of its own)."""
        raise NotImplementedError

    def tail(self, x: torch.Tensor, fea: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """The last trunk layers: the stages' output ``x``, the head's ``fea`` and the padded ``lr`` -> what
        ``HR_branch`` upsamples."""
        raise NotImplementedError

    tail_radius: int = 1

    # --- built from the pieces ---------------------------------------------------------------
    @property
    def scale(self) -> int:
        return self.config.scale

    @property
    def uses_prior(self) -> bool:
        return self.CondNet is not None

    @property
    def cond_stride(self) -> int:
        """HR pixels per cell of the trunk's grid: the condition net's stride."""
        return self.config.scale * self.lr_multiple

    def make_cond(self, num_features: int) -> nn.Module | None:
        """A conditioning layer (``conditioning``: sft / film -> ``SFTLayer``, concat -> ``ConcatLayer``) for
        features of ``num_features`` channels; None for ``conditioning=none``."""
        cfg = self.config
        if cfg.conditioning in ("sft", "film"):
            return SFTLayer(
                num_features, cfg.cond_channels, cfg.sft_hidden_channels, cfg.sft_formula, cfg.sft_negative_slope
            )
        if cfg.conditioning == "concat":
            return ConcatLayer(num_features, cfg.cond_channels)
        return None

    def condition_net(self, any_layer: bool) -> ConditionNet | None:
        """The shared condition net when the network has any conditioning layer (``any_layer``), else None."""
        cfg = self.config
        if cfg.conditioning == "none" or not any_layer:
            return None
        return ConditionNet(
            cfg.num_classes + cfg.num_continuous,
            cfg.cond_channels,
            cfg.cond_hidden_channels,
            scale=self.cond_stride,
            negative_slope=cfg.cond_negative_slope,
        )

    def finish_init(self) -> None:
        """The configured initialisation, once every layer exists (subclasses call it last)."""
        if self.config.weight_init_scale is not None:
            self.init_weights(self.config.weight_init_scale)

    def init_weights(self, scale: float = 0.1) -> None:
        """The original training code's init for every layer (``models.init.scaled_kaiming_``)."""
        scaled_kaiming_([self], scale)

    def conditioning_modules(self) -> list[nn.Module]:
        """The modules that carry the prior (the condition net, then the SFT/concat layers in trunk order):
        the original recipe trains them at a higher learning rate and initialises them small."""
        mods: list[nn.Module] = [self.CondNet] if self.CondNet is not None else []
        return mods + [m for m in self.modules() if isinstance(m, SFTLayer | ConcatLayer)]

    @torch.no_grad()
    def init_identity(self) -> None:
        """Every conditioning layer made the identity (``SFTLayer.init_identity``, ``ConcatLayer.init_identity``):
        the network then computes exactly its unconditioned backbone, whatever the prior."""
        for m in self.modules():
            if isinstance(m, SFTLayer | ConcatLayer):
                m.init_identity()

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
        c, k = cfg.num_classes, cfg.num_continuous
        expected = (n, c + k, h * cfg.scale, w * cfg.scale)
        if tuple(prior.shape) != expected:
            more = f" and {k} continuous channels" if k else ""
            raise ValueError(
                f"prior shape {tuple(prior.shape)} does not fit lr shape {tuple(lr.shape)}: expected {expected} "
                f"({c} class probabilities{more} at {cfg.scale}x the LR size)"
            )
        check_probs(prior[:, :c], "prior (the generator's categorical prior)")
        if k:
            check_unit(prior[:, c:], "prior (the generator's continuous channels, normalised to [0, 1])")

    def condition(self, prior: torch.Tensor) -> torch.Tensor:
        """Shared conditions (N, cond_channels, h', w') on the trunk's grid, or (N, cond_channels, 1, 1) for ``film``."""
        cond = self.CondNet(prior)
        if self.config.conditioning == "film":
            cond = cond.mean(dim=(2, 3), keepdim=True)
        return cond

    def pad(self, lr: torch.Tensor, prior: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``lr`` (and ``prior``) padded at the bottom and right to a multiple of ``lr_multiple`` LR pixels by
        reflection, as Real-ESRGAN pads its x2/x1 inputs (an input of 1 px replicates). Written as a gather
        without branches on the size, so exported graphs pad every size as the eager model does."""
        m = self.lr_multiple
        if m == 1:
            return lr, prior
        h, w = lr.shape[-2], lr.shape[-1]
        hp, wp = (h + m - 1) // m * m, (w + m - 1) // m * m
        s = self.config.scale
        padded = _reflect_to(lr, hp, wp)
        return padded, (_reflect_to(prior, hp * s, wp * s) if prior is not None else None)

    def lr_features(self, lr: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        """The trunk: features on the trunk's grid (long skip included) that ``HR_branch`` upsamples, for the
        LR padded to ``lr_multiple``. Split out so tiled inference can run the memory-heavy HR layers in strips."""
        self.check_inputs(lr, prior)
        if next(self.parameters()).is_contiguous(memory_format=torch.channels_last):
            # Inputs follow the weights' layout: a channels_last model (what load_generator returns)
            # runs NHWC convolutions end to end, ~1.5x faster on CPUs (benchmarks/bench_generator.py).
            lr = lr.contiguous(memory_format=torch.channels_last)
            prior = prior.contiguous(memory_format=torch.channels_last) if prior is not None else None
        lr, prior = self.pad(lr, prior)
        cond = self.condition(prior) if self.uses_prior else None
        fea = self.head(lr)
        x = fea
        for stage in self.stages():
            x = stage.run(x, cond)
        return self.tail(x, fea, lr)

    def forward(self, lr: torch.Tensor, prior: torch.Tensor | None = None) -> torch.Tensor:
        sr = self.HR_branch(self.lr_features(lr, prior))
        if self.lr_multiple > 1:
            s = self.config.scale
            sr = sr[..., : s * lr.shape[-2], : s * lr.shape[-1]]
        return sr


def _reflect_index(size: int, length, device: torch.device) -> torch.Tensor:
    """Indices ``0 .. length-1`` of a dimension of ``size`` extended by reflection (``size - 2``, ``size - 3``, ...)."""
    i = torch.arange(length, device=device)
    return torch.where(i < size, i, 2 * (size - 1) - i).clamp(0, size - 1)


def _reflect_to(t: torch.Tensor, h, w) -> torch.Tensor:
    t = t.index_select(-2, _reflect_index(t.shape[-2], h, t.device))
    return t.index_select(-1, _reflect_index(t.shape[-1], w, t.device))
