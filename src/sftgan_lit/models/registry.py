"""The registry of networks: each generator architecture with its constructor, its named variants (the
released layouts), how to recognise it and its arguments from a state dict alone, and the segmenter
architectures a checkpoint may name. Everything that needs to know "which network is this" reads it:

- the builders (``build_generator(variant, **overrides)``, ``sftgan_pytorch()``, ``sftgan_torch7()``,
  ``srresnet()``) and the YAML (``conf/model/*.yaml`` name a ``variant``),
- the loaders' detection (``infer_generator_config``: the Torch7 layout is recognised by its keys and
  gets that variant's settings; ``infer_segmenter``), spandrel's detection, and the exports' records
  (``variant_of``).

Adding a generator architecture is one module (the ``nn.Module`` and its config dataclass) plus one
``Architecture`` entry in ``ARCHITECTURES``; a segmenter, one entry in ``SEGMENTER_ARCHS``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..state_dict import CheckpointError, listing, load_strict
from .generator import GeneratorConfig, SFTGenerator
from .lraspp import LRASPPSegmenter
from .segmenter import OutdoorSceneSeg

ARCHITECTURE = "SFTGAN"  # the name exports record (and spandrel shows) for the SFT-Net


@dataclass(frozen=True)
class GeneratorVariant:
    """A released SFT-Net layout: the ``GeneratorConfig`` fields where it differs from the defaults."""

    name: str
    description: str
    overrides: Mapping[str, object] = field(default_factory=dict)


GENERATOR_VARIANTS: dict[str, GeneratorVariant] = {
    v.name: v
    for v in (
        GeneratorVariant(
            "sftgan_pytorch",
            "the released PyTorch SFTGAN (SFTGAN_noBN_OST_bg.pth): F * (1 + gamma) + beta, pixel shuffle",
        ),
        GeneratorVariant(
            "sftgan_torch7",
            "the paper's Torch7 SFTGAN converted to PyTorch (SFTGAN_torch.pth): F * gamma + beta, "
            "LeakyReLU(0.01) in the SFT branches, ReLU after the SFT layers, nearest-neighbour upsampling",
            {"sft_formula": "plain", "sft_negative_slope": 0.01, "relu_after_cond": True, "upsampler": "nearest"},
        ),
    )
}


def build_generator(variant: str = "sftgan_pytorch", **overrides) -> SFTGenerator:
    """An ``SFTGenerator`` of a named variant (``GENERATOR_VARIANTS``), with ``overrides`` on top."""
    if variant not in GENERATOR_VARIANTS:
        raise ValueError(f"generator variant {variant!r} is not one of {', '.join(GENERATOR_VARIANTS)}")
    return SFTGenerator(**{**GENERATOR_VARIANTS[variant].overrides, **overrides})


def sftgan_pytorch(**overrides) -> SFTGenerator:
    """The released PyTorch SFTGAN (``SFTGAN_noBN_OST_bg.pth``)."""
    return build_generator("sftgan_pytorch", **overrides)


def sftgan_torch7(**overrides) -> SFTGenerator:
    """The paper's Torch7 SFTGAN converted to PyTorch (``SFTGAN_torch.pth``)."""
    return build_generator("sftgan_torch7", **overrides)


def srresnet(**overrides) -> SFTGenerator:
    """SRResNet / SRGAN generator without BN: the same trunk with no prior (``conditioning="none"``)."""
    return build_generator("sftgan_pytorch", **{"conditioning": "none", **overrides})


_BLOCK_CONV = re.compile(r"^sft_branch\.(\d+)\.conv0\.weight$")
_BLOCK_SFT = re.compile(r"^sft_branch\.(\d+)\.sft0\.SFT_scale_conv0\.weight$")
_BLOCK_CONCAT = re.compile(r"^sft_branch\.(\d+)\.sft0\.fuse\.weight$")


def infer_generator_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Constructor arguments of ``SFTGenerator`` from a state dict's keys and shapes.

    Recognises the released PyTorch model (``HR_branch.0`` is a 64->256 conv before a pixel shuffle),
    the Torch7-converted model (``HR_branch.1``: nearest upsampling first), and generators trained by
    this package with ``sft``/``concat``/``none`` conditioning. (``film`` has the same keys as ``sft``:
    its exports carry their config, see ``export_generator``.)
    """
    if "conv0.weight" not in sd:
        raise CheckpointError(
            f"{source}: no 'conv0.weight' key, so this is not an SFTGAN generator "
            f"(first keys: {listing(list(sd), 6)}). An SRResNet in the old BasicSR layout "
            f"('model.0.weight') is converted with sftgan_lit.models.init_from_srgan."
        )
    num_features, in_channels = sd["conv0.weight"].shape[:2]
    blocks = sorted(int(m.group(1)) for k in sd if (m := _BLOCK_CONV.match(k)))
    num_blocks = len(blocks)
    if blocks != list(range(num_blocks)):
        raise CheckpointError(f"{source}: residual blocks are not numbered 0..{num_blocks - 1}: {blocks}")
    sft_blocks = sorted(int(m.group(1)) for k in sd if (m := _BLOCK_SFT.match(k)))
    concat_blocks = sorted(int(m.group(1)) for k in sd if (m := _BLOCK_CONCAT.match(k)))
    cond_blocks = sft_blocks or concat_blocks
    if cond_blocks != list(range(len(cond_blocks))):
        raise CheckpointError(f"{source}: conditioned blocks must be the first k blocks, got {cond_blocks}")
    final = f"sft_branch.{num_blocks}"
    final_cond = any(k.startswith(final + ".") for k in sd)
    cfg: dict = dict(
        in_channels=in_channels,
        num_features=num_features,
        num_blocks=num_blocks,
        num_cond_blocks=len(cond_blocks),
        final_cond=final_cond,
    )
    scale = None
    if "CondNet.0.weight" in sd:
        cfg["conditioning"] = "concat" if concat_blocks else "sft"
        cfg["num_classes"] = sd["CondNet.0.weight"].shape[1]
        cfg["cond_channels"] = sd[[k for k in sd if k.startswith("CondNet.")][-1]].shape[0]
        cfg["cond_hidden_channels"] = sd["CondNet.0.weight"].shape[0]
        scale = sd["CondNet.0.weight"].shape[-1]
    else:
        # An SRResNet has no prior: its class count is not in the tensors. The generator ignores the prior,
        # and its recorded num_classes is 0 rather than a guessed class set.
        cfg.update(conditioning="none", num_classes=0)
    sft_hidden_keys = [k for k in sd if k.endswith("SFT_scale_conv0.weight")]
    if sft_hidden_keys:
        cfg["sft_hidden_channels"] = sd[sft_hidden_keys[0]].shape[0]
    up_convs = sorted(int(k.split(".")[1]) for k in sd if k.startswith("HR_branch.") and k.endswith(".weight"))
    last = f"HR_branch.{up_convs[-1]}.weight"
    cfg["out_channels"] = sd[last].shape[0]
    if "HR_branch.0.weight" in sd:
        # conv -> pixel shuffle (x2) -> ReLU per stage, then conv, ReLU, conv
        cfg["upsampler"] = "pixelshuffle"
    elif "HR_branch.1.weight" in sd:
        # the Torch7 model: nearest x2 -> conv -> ReLU per stage; F * gamma + beta; ReLU after SFT
        cfg.update(GENERATOR_VARIANTS["sftgan_torch7"].overrides)
    else:
        raise CheckpointError(
            f"{source}: unrecognised upsampler keys {listing([k for k in sd if k.startswith('HR_branch')])}"
        )
    # one conv per x2 stage, then the two final convs
    cfg["scale"] = 2 ** (len(up_convs) - 2) if scale is None else scale
    return cfg


def variant_of(config: Mapping) -> str:
    """The ``GENERATOR_VARIANTS`` name whose settings ``config`` has (the first that fits), else ``custom``."""
    defaults = GeneratorConfig().__dict__
    keys = {k for v in GENERATOR_VARIANTS.values() for k in v.overrides}
    for variant in GENERATOR_VARIANTS.values():
        wanted = {k: variant.overrides.get(k, defaults[k]) for k in keys}
        if all(config.get(k) == v for k, v in wanted.items()):
            return variant.name
    return "custom"


# Architectures a segmenter checkpoint may name. A checkpoint is untrusted input: it selects one of
# these classes by its dotted path and passes plain constructor arguments; it never names code to run.
SEGMENTER_ARCHS: dict[str, type[nn.Module]] = {
    "sftgan_lit.models.OutdoorSceneSeg": OutdoorSceneSeg,
    "sftgan_lit.models.LRASPPSegmenter": LRASPPSegmenter,
}


_RES_BLOCK = re.compile(r"^feature\.(\d+)\.res\.6\.weight$")


def infer_segmenter(sd: Mapping[str, torch.Tensor], scale: int = 4, source: str = "checkpoint") -> nn.Module:
    """A prior segmenter rebuilt from its tensors alone (no record: e.g. a state dict handed over by another
    tool): ``OutdoorSceneSeg`` (its width and blocks per stage read from the shapes) or ``LRASPPSegmenter``;
    loaded strictly, eval mode."""
    if "deconv.weight" in sd and "feature.0.weight" in sd:
        base_width = sd["feature.0.weight"].shape[0]
        blocks = sorted(int(m.group(1)) for m in map(_RES_BLOCK.match, sd) if m)
        outs = [sd[f"feature.{i}.res.6.weight"].shape[0] for i in blocks]
        layers = tuple(sum(1 for c in outs if c == k * base_width) for k in (4, 8, 16, 32))
        model: nn.Module = OutdoorSceneSeg(sd["deconv.weight"].shape[0], layers, base_width, scale)
    elif any(k.startswith("backbone.") for k in sd) and "head.high_classifier.weight" in sd:
        model = LRASPPSegmenter(sd["head.high_classifier.weight"].shape[0], scale)
    else:
        raise CheckpointError(
            f"{source}: the segmenter tensors are neither OutdoorSceneSeg nor LR-ASPP ({listing(list(sd), 6)})"
        )
    load_strict(model, sd, source)
    return model.eval()


@dataclass(frozen=True)
class Architecture:
    """A generator architecture: what builds it, its arguments, its released variants, and how its
    arguments are read from a state dict alone (``infer``: raises ``CheckpointError`` when the tensors are
    not this architecture)."""

    name: str
    network: type[nn.Module]
    config: type
    variants: Mapping[str, GeneratorVariant]
    infer: Callable[[Mapping[str, torch.Tensor], str], dict]
    description: str = ""


ARCHITECTURES: dict[str, Architecture] = {
    ARCHITECTURE: Architecture(
        ARCHITECTURE,
        SFTGenerator,
        GeneratorConfig,
        GENERATOR_VARIANTS,
        infer_generator_config,
        "the SFT-Net of the paper: an SRResNet trunk with SFT layers in its residual blocks",
    ),
}


def infer_generator(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> nn.Module:
    """The network of the first registered architecture whose ``infer`` recognises ``sd``'s keys and shapes
    (not loaded); a ``CheckpointError`` with each architecture's reason when none does."""
    reasons = []
    for arch in ARCHITECTURES.values():
        try:
            return arch.network(**arch.infer(sd, source))
        except CheckpointError as err:
            reasons.append(str(err))
    raise CheckpointError(reasons[0] if len(reasons) == 1 else "; ".join(reasons))
