"""Named generator variants, segmenter architectures, and reading/writing networks as checkpoint files.

One registry, read by everything that needs to know the variants:

- the builders (``build_generator(variant, **overrides)``, ``sftgan_pytorch()``, ``sftgan_torch7()``,
  ``srresnet()``) and the YAML (``conf/model/*.yaml`` name a ``variant``),
- the loader's detection (``infer_generator_config``: the Torch7 layout is recognised by its keys and
  gets that variant's settings),
- the export (``export_generator`` records the full constructor arguments).

Segmenter checkpoints written by ``export_segmenter`` select their class from ``SEGMENTER_ARCHS`` by a
dotted name; a checkpoint never names code to run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ..state_dict import (
    CheckpointError,
    cpu_state,
    listing,
    load_checkpoint_file,
    load_strict,
    save_atomic,
    save_safetensors,
    unwrap_state_dict,
)
from .generator import GeneratorConfig, SFTGenerator
from .lraspp import LRASPPSegmenter
from .segmenter import OutdoorSceneSeg

# Key under which this package's exports store the generator's constructor arguments.
CONFIG_KEY = "sftgan_lit_config"
# Key of the facts an export records beside its tensors (the safetensors header holds the same): what it is,
# its classes and colours, the package version, the training run's key facts.
RECORD_KEY = "sftgan_lit_record"
ARCHITECTURE = "SFTGAN"
# Attribute names of the generator inside SFTGANModule's Lightning checkpoints, EMA first.
LIGHTNING_GENERATOR_PREFIXES = ("ema.module.", "generator_ema.", "generator.")


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


def generator_from_state_dict(
    sd: Mapping[str, torch.Tensor], config: Mapping | None = None, source: str = "checkpoint"
) -> SFTGenerator:
    """An ``SFTGenerator`` built from ``config`` (or inferred from ``sd``) with ``sd`` loaded strictly; a
    recorded ``config`` that does not fit the tensors is named as such."""
    if config is None:
        generator = SFTGenerator(**infer_generator_config(sd, source))
        load_strict(generator, sd, source)
        return generator
    try:
        generator = SFTGenerator(**dict(config))
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{source}: the recorded generator config is not valid ({err})") from err
    try:
        load_strict(generator, sd, source)
    except CheckpointError as err:
        inferred = "; the tensors are a different generator" if "conv0.weight" in sd else ""
        raise CheckpointError(
            f"{source}: the recorded architecture (num_features={generator.config.num_features}, "
            f"num_blocks={generator.config.num_blocks}, num_classes={generator.config.num_classes}, "
            f"conditioning={generator.config.conditioning}) does not fit its tensors{inferred}: {err}"
        ) from err
    return generator


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("sftgan_lit")
    except PackageNotFoundError:
        return "unknown"


def variant_of(config: Mapping) -> str:
    """The ``GENERATOR_VARIANTS`` name whose settings ``config`` has (the first that fits), else ``custom``."""
    defaults = GeneratorConfig().__dict__
    keys = {k for v in GENERATOR_VARIANTS.values() for k in v.overrides}
    for variant in GENERATOR_VARIANTS.values():
        wanted = {k: variant.overrides.get(k, defaults[k]) for k in keys}
        if all(config.get(k) == v for k, v in wanted.items()):
            return variant.name
    return "custom"


def check_class_names(names, count: int, source: str) -> None:
    """Recorded class names must be one per class of the network (``count``)."""
    if names is not None and (not isinstance(names, list | tuple) or len(names) != count):
        raise CheckpointError(
            f"{source}: the recorded class names {names} do not fit the network, which has {count} classes"
        )


def generator_record(
    generator: SFTGenerator, class_names: Iterable[str] | None = None, colors: Iterable | None = None, training=None
) -> dict:
    """What a generator export records about itself (``RECORD_KEY``; the safetensors header)."""
    cfg = generator.config
    record = {
        "kind": "generator",
        "architecture": ARCHITECTURE,
        "variant": variant_of(generator.config_dict()),
        "scale": cfg.scale,
        "input_channels": cfg.in_channels,
        "output_channels": cfg.out_channels,
        "num_classes": cfg.num_classes,
        "conditioning": str(cfg.conditioning),
        "class_names": [str(c) for c in class_names] if class_names is not None else None,
        "colors": [[int(v) for v in c] for c in colors] if colors is not None else None,
        "package_version": package_version(),
        "training": dict(training or {}),
    }
    if cfg.num_classes:
        check_class_names(record["class_names"], cfg.num_classes, "export_generator")
    return record


def write_export(tensors: Mapping[str, torch.Tensor], path: str | os.PathLike, entries: Mapping) -> None:
    """An export file: ``.safetensors`` (``entries`` as JSON in its header) or a ``torch.save`` dict
    (``{"params": tensors, **entries}``), atomically; both read back the same through ``load_checkpoint_file``."""
    if str(path).lower().endswith(".safetensors"):
        save_safetensors(tensors, path, entries)
    else:
        save_atomic({"params": dict(tensors), **entries}, path)


def load_generator(path: str | os.PathLike, prefer_ema: bool = True, channels_last: bool = True) -> SFTGenerator:
    """Load any SFTGAN generator checkpoint, in eval mode.

    Accepts the released ``SFTGAN_noBN_OST_bg.pth`` (PyTorch) and ``SFTGAN_torch.pth`` (Torch7-converted)
    files, exports of this package, Lightning checkpoints of ``SFTGANModule`` (EMA weights when present
    and ``prefer_ema``), and ``{'state_dict'|'params'|'params_ema': ...}`` wrappers. The variant is
    detected from the keys. ``g(lr, prior)`` then returns exactly what the original network returns
    (up to float rounding). ``channels_last`` stores the weights NHWC, the fast layout for convolutions
    on CPUs and for mixed precision on GPUs; inputs are converted to match inside ``forward``.
    """
    obj = load_checkpoint_file(path)
    prefixes = LIGHTNING_GENERATOR_PREFIXES if prefer_ema else LIGHTNING_GENERATOR_PREFIXES[::-1]
    sd = unwrap_state_dict(obj, prefixes, source=str(path))
    config = obj.get(CONFIG_KEY)
    if config is not None and not isinstance(config, Mapping):
        raise CheckpointError(f"{path}: '{CONFIG_KEY}' must be a dict of constructor arguments")
    generator = generator_from_state_dict(sd, config, source=str(path))
    generator.record = read_record(obj, str(path), generator.config.num_classes)
    if channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    return generator.eval()


def read_record(obj: Mapping, source: str, num_classes: int) -> dict:
    """The ``RECORD_KEY`` facts of a loaded file (``{}`` for files without), checked against the network."""
    record = obj.get(RECORD_KEY) or {}
    if not isinstance(record, Mapping):
        raise CheckpointError(f"{source}: '{RECORD_KEY}' must be a dict")
    if record.get("architecture", ARCHITECTURE) != ARCHITECTURE:
        raise CheckpointError(f"{source}: records architecture {record['architecture']!r}, not {ARCHITECTURE}")
    if num_classes:
        check_class_names(record.get("class_names"), num_classes, source)
    return dict(record)


def export_generator(
    generator: SFTGenerator,
    path: str | os.PathLike,
    class_names: Iterable[str] | None = None,
    colors: Iterable | None = None,
    training: Mapping | None = None,
) -> None:
    """Save the generator alone, in the original key layout, with its constructor arguments and record
    (``generator_record``), atomically: ``.safetensors`` (no pickle) or a ``torch.save`` file."""
    entries = {
        CONFIG_KEY: generator.config_dict(),
        RECORD_KEY: generator_record(generator, class_names, colors, training),
    }
    write_export(cpu_state(generator), path, entries)


SEGMENTER_KEY = "sftgan_lit_segmenter"
# Architectures a segmenter checkpoint may name. A checkpoint is untrusted input: it selects one of
# these classes by its dotted path and passes plain constructor arguments; it never names code to run.
SEGMENTER_ARCHS: dict[str, type[nn.Module]] = {
    "sftgan_lit.models.OutdoorSceneSeg": OutdoorSceneSeg,
    "sftgan_lit.models.LRASPPSegmenter": LRASPPSegmenter,
}


def _dotted(cls: type) -> str:
    return next(name for name, c in SEGMENTER_ARCHS.items() if c is cls)


def export_segmenter(
    segmenter: nn.Module, path: str | os.PathLike, class_names: Iterable[str], colors: Iterable
) -> None:
    """Save a trained prior segmenter with its architecture, constructor arguments, class names and
    colours, so a prior config needs only the path (``prior=learned prior.weights=PATH``)."""
    write_export(cpu_state(segmenter), path, {SEGMENTER_KEY: segmenter_record(segmenter, class_names, colors)})


def segmenter_record(segmenter: nn.Module, class_names: Iterable[str], colors: Iterable) -> dict:
    """A segmenter's architecture (by allow-listed dotted name), constructor arguments, classes and colours."""
    spec = {
        "target": _dotted(type(segmenter)),
        "kwargs": dict(segmenter.config_dict()),
        "class_names": [str(c) for c in class_names],
        "colors": [[int(v) for v in c] for c in colors],
    }
    check_class_names(spec["class_names"], segmenter.num_classes, "export_segmenter")
    return spec


def segmenter_spec(path: str | os.PathLike, obj: Mapping) -> dict | None:
    """The architecture/classes record of checkpoint ``obj`` (loaded from ``path``) written by
    ``export_segmenter``; None for the released file."""
    spec = obj.get(SEGMENTER_KEY)
    if spec is not None and not (
        isinstance(spec, Mapping) and spec.get("target") in SEGMENTER_ARCHS and isinstance(spec.get("kwargs"), Mapping)
    ):
        raise CheckpointError(
            f"{path}: '{SEGMENTER_KEY}' must name one of {sorted(SEGMENTER_ARCHS)} with a dict of kwargs"
        )
    return dict(spec) if spec is not None else None


def load_segmenter(path: str | os.PathLike, **arch) -> nn.Module:
    """Load a prior segmenter strictly, eval mode (``read_segmenter`` without the record)."""
    return read_segmenter(path, **arch)[0]


def read_segmenter(path: str | os.PathLike, **arch) -> tuple[nn.Module, dict | None]:
    """Load a prior segmenter strictly, eval mode, and the record ``export_segmenter`` wrote (or None).

    A file written by ``export_segmenter`` carries its architecture and is rebuilt from it (``arch``
    must then be empty). Otherwise it is ``segmentation_OST_bic.pth`` or a compatible
    ``OutdoorSceneSeg`` state dict: ``arch`` gives constructor arguments (``layers``, ``base_width``)
    for non-released sizes and the class count is read from the checkpoint.
    """
    obj = load_checkpoint_file(path)
    spec = segmenter_spec(path, obj)
    if spec is not None:
        if arch:
            raise CheckpointError(f"{path} records its architecture ({spec['target']}); remove prior.arch={arch}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in spec["kwargs"].items()}
        try:
            segmenter = SEGMENTER_ARCHS[spec["target"]](**kwargs)
        except (TypeError, ValueError) as err:
            raise CheckpointError(f"{path}: the recorded {spec['target']} arguments are not valid ({err})") from err
        check_class_names(spec.get("class_names"), segmenter.num_classes, str(path))
        try:
            load_strict(segmenter, unwrap_state_dict(obj, ("segmenter.",), source=str(path)), source=str(path))
        except CheckpointError as err:
            raise CheckpointError(
                f"{path}: the recorded architecture ({spec['target']}, {spec['kwargs']}) does not fit its tensors: {err}"
            ) from err
        return segmenter.eval(), spec
    sd = unwrap_state_dict(obj, prefixes=("segmenter.", "model."), source=str(path))
    if "deconv.weight" not in sd:
        raise CheckpointError(
            f"{path}: neither a segmenter exported by this package nor an OutdoorSceneSeg state dict "
            f"(no 'deconv.weight', which holds the class count; first keys: {listing(list(sd), 6)})"
        )
    num_classes = sd["deconv.weight"].shape[0]
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    segmenter = OutdoorSceneSeg(num_classes=num_classes, **arch)
    load_strict(segmenter, sd, source=str(path))
    return segmenter.eval(), None


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


def interpolate_generators(fidelity: SFTGenerator, gan: SFTGenerator, strength: float) -> SFTGenerator:
    """Texture strength by network interpolation (ESRGAN's, as Real-ESRGAN users ask for): a generator whose
    weights are ``(1 - strength) * fidelity + strength * gan``, two trainings of one architecture (the
    recipe's fidelity stage and its GAN stage). ``strength`` 0 and 1 return the two networks themselves."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength={strength}: must be in [0, 1]")
    if fidelity.config != gan.config:
        differ = {k: (v, gan.config_dict()[k]) for k, v in fidelity.config_dict().items() if gan.config_dict()[k] != v}
        raise CheckpointError(
            f"the fidelity and GAN generators differ in architecture ({differ}); they cannot be mixed"
        )
    if strength in (0.0, 1.0):
        return fidelity if strength == 0.0 else gan
    mixed = SFTGenerator(**gan.config_dict())
    theirs = fidelity.state_dict()
    mixed.load_state_dict(
        {
            k: torch.lerp(theirs[k].float(), v.float(), strength) if v.is_floating_point() else v
            for k, v in gan.state_dict().items()
        }
    )
    device = next(gan.parameters()).device
    layout = torch.channels_last if gan.conv0.weight.is_contiguous(memory_format=torch.channels_last) else None
    mixed = mixed.to(device)
    return (mixed.to(memory_format=layout) if layout else mixed).eval()
