"""The registry of networks: each generator architecture with its constructor, its named variants (the
released layouts), how to recognise it and its arguments from a state dict alone, and the segmenter
architectures a checkpoint may name. Everything that needs to know "which network is this" reads it:

- the builders (``build_generator(variant, **overrides)``, ``sftgan_pytorch()``, ``sftgan_torch7()``,
  ``srresnet()``) and the YAML (``conf/model/*.yaml`` name a ``variant``),
- the loaders' detection (``recognise``: each architecture's ``infer`` after its ``convert`` of older
  layouts; the SFT-Net's Torch7 layout is recognised by its keys and gets that variant's settings;
  ``infer_segmenter``), ``init_from`` (``pretrained.py``), spandrel's detection, and the exports'
  records (``architecture_of``, ``variant_of``).

The generator architectures: the SFT-Net (``SFTGAN``), ``SFT-RRDBNet`` and ``SFT-Compact``. Adding one is
one module (a ``ConditionedGenerator`` and its config dataclass) plus one ``Architecture`` entry in
``ARCHITECTURES`` (and its variants in ``GENERATOR_VARIANTS``); a segmenter, one entry in ``SEGMENTER_ARCHS``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields

import torch
from torch import nn

from ..config import ConfigError
from ..state_dict import CheckpointError, listing, load_strict
from .compact import CompactConfig, SFTCompact
from .conditioned import ConditionedGenerator
from .generator import GeneratorConfig, SFTGenerator
from .lraspp import LRASPPSegmenter
from .rrdb import RRDBConfig, SFTRRDBNet
from .segmenter import OutdoorSceneSeg
from .srgan import convert_srgan_state_dict

ARCHITECTURE = "SFTGAN"  # the name exports record (and spandrel shows) for the SFT-Net
RRDB_ARCHITECTURE = "SFT-RRDBNet"
COMPACT_ARCHITECTURE = "SFT-Compact"


@dataclass(frozen=True)
class GeneratorVariant:
    """A released SFT-Net layout: the ``GeneratorConfig`` fields where it differs from the defaults."""

    name: str
    description: str
    overrides: Mapping[str, object] = field(default_factory=dict)
    architecture: str = ARCHITECTURE


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
        GeneratorVariant(
            "rrdb_x4plus",
            "ESRGAN / RealESRGAN_x4plus's RRDBNet (64 features, 23 RRDBs, growth 32, x4) with SFT layers",
            architecture=RRDB_ARCHITECTURE,
        ),
        GeneratorVariant(
            "rrdb_x2plus",
            "RealESRGAN_x2plus's RRDBNet (x2: pixel-unshuffled input) with SFT layers",
            {"scale": 2},
            architecture=RRDB_ARCHITECTURE,
        ),
        GeneratorVariant(
            "compact_general_x4v3",
            "realesr-general-x4v3's SRVGGNetCompact (64 features, 32 convs, PReLU, x4) with SFT layers",
            architecture=COMPACT_ARCHITECTURE,
        ),
        GeneratorVariant(
            "compact_animevideo_v3",
            "realesr-animevideov3's SRVGGNetCompact (64 features, 16 convs, PReLU, x4) with SFT layers",
            {"num_blocks": 16},
            architecture=COMPACT_ARCHITECTURE,
        ),
    )
}


def build_generator(variant: str = "sftgan_pytorch", **overrides) -> ConditionedGenerator:
    """The generator of a named variant (``GENERATOR_VARIANTS``: its architecture and settings), with
    ``overrides`` (constructor arguments of that architecture) on top."""
    if variant not in GENERATOR_VARIANTS:
        raise ConfigError(f"model.generator.variant={variant}: must be one of {', '.join(GENERATOR_VARIANTS)}")
    v = GENERATOR_VARIANTS[variant]
    arch = ARCHITECTURES[v.architecture]
    known = {f.name for f in fields(arch.config)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise ConfigError(
            f"model.generator.{unknown[0]}: not an argument of {arch.name} (variant {variant}); "
            f"its arguments are {', '.join(sorted(known))}"
        )
    return arch.network(**{**v.overrides, **overrides})


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
    final = f"sft_branch.{num_blocks}"
    final_cond = any(k.startswith(final + ".") for k in sd)
    cfg: dict = dict(
        in_channels=in_channels,
        num_features=num_features,
        num_blocks=num_blocks,
        final_cond=final_cond,
        **placement(cond_blocks, source),
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
    if scale is None and cfg["upsampler"] == "pixelshuffle":
        # each stage's conv widens num_features by factor**2 before its pixel shuffle
        scale = math.prod(math.isqrt(sd[f"HR_branch.{i}.weight"].shape[0] // num_features) for i in up_convs[:-2])
    # one conv per x2 stage, then the two final convs
    cfg["scale"] = 2 ** (len(up_convs) - 2) if scale is None else scale
    return cfg


def placement(cond_blocks: list[int], source: str) -> dict:
    """``num_cond_blocks`` and ``cond_every`` of a trunk whose blocks ``cond_blocks`` carry conditioning
    layers (``[]``: none, ``0..k-1``: the first k, ``0, k, 2k, ...``: every k-th)."""
    if not cond_blocks:
        return {"num_cond_blocks": 0}
    every = cond_blocks[1] - cond_blocks[0] if len(cond_blocks) > 1 else 1
    if cond_blocks != list(range(0, cond_blocks[-1] + 1, every)):
        raise CheckpointError(
            f"{source}: conditioned blocks must be the first k or every k-th from block 0, got {cond_blocks}"
        )
    return {"num_cond_blocks": cond_blocks[-1] + 1, "cond_every": every}


def condition_config(sd: Mapping[str, torch.Tensor], layer_keys: list[str], lr_multiple: int) -> dict:
    """The conditioning arguments read from a state dict's condition net (``CondNet.*``) and conditioning
    layers (``layer_keys``: their parameter names): kind, class count, widths, and the scale (the condition
    net's stride over ``lr_multiple``); ``conditioning=none`` and no classes without a condition net."""
    if "CondNet.0.weight" not in sd:
        return {"conditioning": "none", "num_classes": 0}
    cond_keys = [k for k in sd if k.startswith("CondNet.") and k.endswith(".weight")]
    cfg = {
        "conditioning": "concat" if any(".fuse." in k for k in layer_keys) else "sft",
        "num_classes": sd["CondNet.0.weight"].shape[1],
        "cond_channels": sd[max(cond_keys, key=lambda k: int(k.split(".")[1]))].shape[0],
        "cond_hidden_channels": sd["CondNet.0.weight"].shape[0],
        "scale": sd["CondNet.0.weight"].shape[-1] // lr_multiple,
    }
    hidden = [k for k in layer_keys if k.endswith("SFT_scale_conv0.weight")]
    if hidden:
        cfg["sft_hidden_channels"] = sd[hidden[0]].shape[0]
    return cfg


def _indices(sd: Mapping[str, torch.Tensor], pattern: re.Pattern) -> list[int]:
    return sorted({int(m.group(1)) for k in sd if (m := pattern.match(k))})


_RRDB_BLOCK = re.compile(r"^body\.(\d+)\.rdb1\.conv1\.weight$")
_RRDB_SFT = re.compile(r"^sft\.(\d+)\.")
_OLD_ESRGAN = re.compile(r"^model\.1\.sub\.(\d+)\.RDB(\d)\.conv(\d)\.0\.(weight|bias)$")


def convert_esrgan_state_dict(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """ESRGAN's old layout (``model.0``, ``model.1.sub.<i>.RDB<j>.conv<k>.0``, ``model.1.sub.<n>``, then the
    upsampling and HR convs as ``model.<m>``) renamed to RRDBNet's (``conv_first``, ``body.<i>.rdb<j>.conv<k>``,
    ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``); other layouts pass through."""
    if "model.0.weight" not in sd or not any(_OLD_ESRGAN.match(k) for k in sd):
        return dict(sd)
    out: dict = {}
    blocks = _indices(sd, re.compile(r"^model\.1\.sub\.(\d+)\.RDB"))
    n = len(blocks)
    tail = sorted({int(k.split(".")[1]) for k in sd if re.match(r"^model\.\d+\.weight$", k)} - {0})
    names = [f"conv_up{i + 1}" for i in range(len(tail) - 2)] + ["conv_hr", "conv_last"]
    tail_map = {f"model.{i}.": f"{name}." for i, name in zip(tail, names, strict=True)}
    for key, value in sd.items():
        if m := _OLD_ESRGAN.match(key):
            out[f"body.{m.group(1)}.rdb{m.group(2)}.conv{m.group(3)}.{m.group(4)}"] = value
        elif key.startswith("model.0."):
            out["conv_first." + key.split(".")[-1]] = value
        elif key.startswith(f"model.1.sub.{n}."):
            out["conv_body." + key.split(".")[-1]] = value
        elif (prefix := key[: key.rindex(".") + 1]) in tail_map:
            out[tail_map[prefix] + key.split(".")[-1]] = value
        else:
            raise CheckpointError(f"{source}: key {key} is outside ESRGAN's old RRDBNet layout")
    return out


def infer_rrdb_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Constructor arguments of ``SFTRRDBNet`` from a state dict in RRDBNet's key layout (Real-ESRGAN's, or
    this package's with ``sft.*`` / ``sft_body`` / ``CondNet``): sizes from the shapes, the scale from the
    input's unshuffle (``conv_first`` in-channels 4x or 16x the output's: x2 or x1) and the upsampler
    (``conv_up2`` present: x4, absent: x3), the conditioning from its layers."""
    if "conv_first.weight" not in sd or "body.0.rdb1.conv1.weight" not in sd:
        raise CheckpointError(f"{source}: no 'conv_first' and 'body.0.rdb1' keys, so this is not an RRDBNet")
    num_features, in_first = sd["conv_first.weight"].shape[:2]
    out_channels = sd["conv_last.weight"].shape[0] if "conv_last.weight" in sd else 3
    blocks = _indices(sd, _RRDB_BLOCK)
    multiple = math.isqrt(max(1, in_first // out_channels))
    scale = {4: 1, 2: 2}.get(multiple, 4 if "conv_up2.weight" in sd else 3)
    layer_keys = [k for k in sd if k.startswith(("sft.", "sft_body."))]
    cfg = {
        "in_channels": in_first // multiple**2,
        "out_channels": out_channels,
        "num_features": num_features,
        "num_blocks": len(blocks),
        "num_grow_ch": sd["body.0.rdb1.conv1.weight"].shape[0],
        "scale": scale,
        "final_cond": any(k.startswith("sft_body.") for k in sd),
        **placement(_indices(sd, _RRDB_SFT), source),
    }
    cfg.update(condition_config(sd, layer_keys, multiple))
    return cfg


_COMPACT_CONV = re.compile(r"^body\.(\d+)\.weight$")


def infer_compact_config(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """Constructor arguments of ``SFTCompact`` from a state dict in SRVGGNetCompact's key layout: the
    number of convs from the ``body.<i>`` indices, the scale from the last conv's width (``out * scale**2``),
    PReLU activations from their ``body.<odd>.weight`` vectors."""
    convs = [i for i in _indices(sd, _COMPACT_CONV) if sd[f"body.{i}.weight"].dim() == 4]
    if not convs or convs[0] != 0 or "conv_first.weight" in sd or any(k.startswith("body.0.rdb") for k in sd):
        raise CheckpointError(f"{source}: no 'body.0' conv of SRVGGNetCompact's layout")
    num_features, in_channels = sd["body.0.weight"].shape[:2]
    last = sd[f"body.{convs[-1]}.weight"].shape[0]
    scale = math.isqrt(last // in_channels)
    if scale * scale * in_channels != last or convs != list(range(0, convs[-1] + 1, 2)):
        raise CheckpointError(f"{source}: body convs {convs} ({last} outputs) are not SRVGGNetCompact's layout")
    if "body.1.weight" not in sd:
        raise CheckpointError(
            f"{source}: an SRVGGNetCompact without PReLU weights: its activation (relu or leakyrelu) is not in "
            "the tensors; build it with model.generator.act_type and load it with init_generator"
        )
    layer_keys = [k for k in sd if k.startswith(("sft.", "sft_last."))]
    cfg = {
        "in_channels": in_channels,
        "out_channels": in_channels,
        "num_features": num_features,
        "num_blocks": len(convs) - 2,
        "scale": scale,
        "final_cond": any(k.startswith("sft_last.") for k in sd),
        **placement(_indices(sd, _RRDB_SFT), source),
    }
    cfg.update(condition_config(sd, layer_keys, 1))
    return cfg


def convert_srgan(sd: Mapping[str, torch.Tensor], source: str = "checkpoint") -> dict:
    """The SRGAN/SRResNet layout (``model.0`` ...) renamed to SFT-Net's; other layouts pass through."""
    if "model.0.weight" not in sd or "conv0.weight" in sd:
        return dict(sd)
    blocks = _indices(sd, re.compile(r"^model\.1\.sub\.(\d+)\.res\.0\.weight$"))
    return convert_srgan_state_dict(sd, len(blocks))


def variant_of(config: Mapping, architecture: str = ARCHITECTURE) -> str:
    """The name of ``architecture``'s variant whose settings ``config`` has (the first that fits), else ``custom``."""
    defaults = ARCHITECTURES[architecture].config().__dict__
    own = [v for v in GENERATOR_VARIANTS.values() if v.architecture == architecture]
    keys = {k for v in own for k in v.overrides}
    for variant in own:
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
    """A generator architecture: what builds it, its arguments, and how its arguments are read from a state
    dict alone (``infer``: raises ``CheckpointError`` when the tensors are not this architecture); its
    released variants are the ``GENERATOR_VARIANTS`` entries that name it."""

    name: str
    network: type[ConditionedGenerator]
    config: type
    infer: Callable[[Mapping[str, torch.Tensor], str], dict]
    description: str = ""
    # the released unconditioned layouts renamed to this architecture's keys (identity where they match)
    convert: Callable[[Mapping[str, torch.Tensor], str], dict] = lambda sd, source="": dict(sd)
    # the sizes that model cards and spandrel's tags show, from a config (e.g. ["64nf", "23nb", "32gc"])
    tags: Callable[[object], list[str]] = lambda cfg: []


ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch
    for arch in (
        Architecture(
            ARCHITECTURE,
            SFTGenerator,
            GeneratorConfig,
            infer_generator_config,
            "the SFT-Net of the paper: an SRResNet trunk with SFT layers in its residual blocks",
            convert_srgan,
            lambda c: [f"{c.num_features}nf", f"{c.num_blocks}nb"],
        ),
        Architecture(
            RRDB_ARCHITECTURE,
            SFTRRDBNet,
            RRDBConfig,
            infer_rrdb_config,
            "ESRGAN / Real-ESRGAN's RRDBNet with SFT layers before its RRDBs",
            convert_esrgan_state_dict,
            lambda c: [f"{c.num_features}nf", f"{c.num_blocks}nb", f"{c.num_grow_ch}gc"],
        ),
        Architecture(
            COMPACT_ARCHITECTURE,
            SFTCompact,
            CompactConfig,
            infer_compact_config,
            "Real-ESRGAN's SRVGGNetCompact with SFT layers before its convs",
            tags=lambda c: [f"{c.num_features}nf", f"{c.num_blocks}nc"],
        ),
    )
}


def architecture_of(generator: nn.Module) -> Architecture:
    """The registered architecture ``generator`` is an instance of."""
    for arch in ARCHITECTURES.values():
        if type(generator) is arch.network:
            return arch
    raise TypeError(f"{type(generator).__name__} is not a registered generator architecture")


def recognise(
    sd: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> tuple[Architecture, dict, dict[str, torch.Tensor]]:
    """The first registered architecture whose ``infer`` recognises ``sd``'s keys and shapes (after its
    ``convert`` of older layouts), with its constructor arguments and the converted tensors; a
    ``CheckpointError`` with each architecture's reason when none does. Reads shapes only: builds nothing."""
    reasons = []
    for arch in ARCHITECTURES.values():
        try:
            converted = arch.convert(sd, source)
            return arch, arch.infer(converted, source), converted
        except CheckpointError as err:
            reasons.append(str(err))
    raise CheckpointError("; ".join(reasons))


def infer_generator(
    sd: Mapping[str, torch.Tensor], source: str = "checkpoint"
) -> tuple[ConditionedGenerator, dict[str, torch.Tensor]]:
    """The network ``recognise`` finds for ``sd`` (built, not loaded), with the tensors in its key layout."""
    arch, config, converted = recognise(sd, source)
    return arch.network(**config), converted
