"""Loading checkpoints safely: unwrapping, strict key/shape checks, variant detection, SRGAN -> SFT init.

Checkpoints are untrusted input. Everything goes through ``torch.load(..., weights_only=True)``, which
only rebuilds tensors and plain containers and refuses any pickled code.
"""

from __future__ import annotations

import os
import pickle
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import torch
from torch import nn

from .models.generator import SFTGenerator
from .models.lraspp import LRASPPSegmenter
from .models.segmenter import OutdoorSceneSeg

StateDict = dict[str, torch.Tensor]

# Key under which sftgan_lit's own exports store the generator's constructor arguments.
CONFIG_KEY = "sftgan_lit_config"
# Attribute names of the generator inside sftgan_lit's LightningModule, EMA first.
LIGHTNING_GENERATOR_PREFIXES = ("ema.module.", "generator_ema.", "generator.")  # SFTGANModule keeps its EMA at ema.module


class CheckpointError(ValueError):
    """A checkpoint that cannot be used as asked; the message names the file and what is wrong."""


def load_checkpoint_file(path: str | os.PathLike) -> dict:
    """``torch.load`` with ``weights_only=True`` on CPU; errors name the file and the fix."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path}: refused to load. It holds Python objects other than tensors and plain containers, which "
            f"weights_only loading does not execute (a checkpoint can run arbitrary code otherwise). Re-save it "
            f"as a plain state dict (torch.save(model.state_dict(), ...)) from a source you trust. Detail: {err}"
        ) from err
    except (RuntimeError, EOFError, OSError) as err:
        raise CheckpointError(f"{path}: not a readable PyTorch checkpoint ({err})") from err
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, got {type(obj).__name__}")
    return dict(obj)


def unwrap_state_dict(obj: Mapping, prefixes: tuple[str, ...] = (), source: str = "checkpoint") -> StateDict:
    """The tensors of a model from the common checkpoint wrappers.

    Handles ``{'state_dict': ...}`` (Lightning, taking the keys under the first of ``prefixes`` found),
    ``{'params_ema': ...}`` / ``{'params': ...}`` (BasicSR), DataParallel's ``module.`` prefix, and a bare
    state dict.
    """
    sd: Mapping = obj
    for key in ("state_dict", "params_ema", "params"):
        if key in sd and isinstance(sd[key], Mapping):
            sd = sd[key]
            break
    if prefixes:
        for prefix in prefixes:
            sub = {k[len(prefix) :]: v for k, v in sd.items() if k.startswith(prefix)}
            if sub:
                sd = sub
                break
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    bad = [k for k, v in sd.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{source}: entries that are not tensors: {bad[:10]}")
    return dict(sd)


def load_state_dict_file(path: str | os.PathLike, prefixes: tuple[str, ...] = ()) -> StateDict:
    """A state dict from a file: ``load_checkpoint_file`` then ``unwrap_state_dict``."""
    return unwrap_state_dict(load_checkpoint_file(path), prefixes, source=str(path))


def _listing(keys: list[str], limit: int = 12) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f", ... ({len(keys) - limit} more)" if len(keys) > limit else "")


def load_strict(
    module: nn.Module,
    state_dict: Mapping[str, torch.Tensor],
    source: str = "checkpoint",
    required: Iterable[str] | None = None,
) -> None:
    """``module.load_state_dict(strict=True)`` with one error listing missing, unexpected and mis-shaped keys.

    ``required`` narrows the keys that must be present (a partial load, e.g. only a generator's trunk);
    unexpected and mis-shaped keys are errors either way.
    """
    own = module.state_dict()
    missing = [k for k in (own if required is None else required) if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    misshaped = [
        f"{k} {tuple(state_dict[k].shape)} vs model {tuple(v.shape)}"
        for k, v in own.items()
        if k in state_dict and tuple(state_dict[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or misshaped:
        parts = [f"{source} does not match {type(module).__name__}:"]
        if missing:
            parts.append(f"missing keys ({len(missing)}): {_listing(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {_listing(unexpected)}")
        if misshaped:
            parts.append(f"mis-shaped keys ({len(misshaped)}): {_listing(misshaped)}")
        raise CheckpointError("\n  ".join(parts))
    module.load_state_dict(state_dict, strict=required is None)


# ---------------------------------------------------------------------------------------------------
# Generator variants
# ---------------------------------------------------------------------------------------------------

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
            f"(first keys: {_listing(list(sd), 6)}). An SRResNet in the old BasicSR layout "
            f"('model.0.weight') is converted with sftgan_lit.checkpoints.init_from_srgan."
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
    if "CondNet.0.weight" in sd:
        conditioning = "concat" if concat_blocks else "sft"
        num_classes = sd["CondNet.0.weight"].shape[1]
        cond_channels = sd[[k for k in sd if k.startswith("CondNet.")][-1]].shape[0]
        cond_hidden = sd["CondNet.0.weight"].shape[0]
        scale = sd["CondNet.0.weight"].shape[-1]
    else:
        conditioning, num_classes, cond_channels, cond_hidden, scale = "none", 8, 32, 128, None
    cfg: dict = dict(
        in_channels=in_channels,
        num_features=num_features,
        num_blocks=num_blocks,
        num_classes=num_classes,
        conditioning=conditioning,
        num_cond_blocks=len(cond_blocks),
        final_cond=final_cond,
        cond_channels=cond_channels,
        cond_hidden_channels=cond_hidden,
    )
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
        cfg.update(upsampler="nearest", sft_formula="plain", sft_negative_slope=0.01, relu_after_cond=True)
    else:
        raise CheckpointError(f"{source}: unrecognised upsampler keys {_listing([k for k in sd if k.startswith('HR_branch')])}")
    # one conv per x2 stage, then the two final convs
    cfg["scale"] = 2 ** (len(up_convs) - 2) if scale is None else scale
    return cfg


def build_generator(sd: Mapping[str, torch.Tensor], config: Mapping | None = None, source: str = "checkpoint") -> SFTGenerator:
    """An ``SFTGenerator`` built from ``config`` (or inferred from ``sd``) with ``sd`` loaded strictly."""
    cfg = dict(config) if config is not None else infer_generator_config(sd, source)
    generator = SFTGenerator(**cfg)
    load_strict(generator, sd, source)
    return generator


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
    generator = build_generator(sd, config, source=str(path))
    if channels_last:
        generator = generator.to(memory_format=torch.channels_last)
    return generator.eval()


def _save_atomic(obj: Mapping, path: str | os.PathLike) -> None:
    """``torch.save`` through a temporary file and a rename: a reader polling for the file (e.g.
    ``checkpoint=latest``) never sees half of it."""
    import io

    from .data.io import atomic_write_bytes

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _cpu_state(module: nn.Module) -> StateDict:
    return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}


def export_generator(generator: SFTGenerator, path: str | os.PathLike) -> None:
    """Save the generator alone, in the original key layout, with its constructor arguments (atomically)."""
    _save_atomic({"params": _cpu_state(generator), CONFIG_KEY: generator.config_dict()}, path)


SEGMENTER_KEY = "sftgan_lit_segmenter"
# Architectures a segmenter checkpoint may name. A checkpoint is untrusted input: it selects one of
# these classes by its dotted path and passes plain constructor arguments; it never names code to run.
SEGMENTER_ARCHS: dict[str, type[nn.Module]] = {
    "sftgan_lit.models.OutdoorSceneSeg": OutdoorSceneSeg,
    "sftgan_lit.models.LRASPPSegmenter": LRASPPSegmenter,
}


def _dotted(cls: type) -> str:
    return next(name for name, c in SEGMENTER_ARCHS.items() if c is cls)


def export_segmenter(segmenter: nn.Module, path: str | os.PathLike, class_names: Iterable[str], colors: Iterable) -> None:
    """Save a trained prior segmenter with its architecture, constructor arguments, class names and
    colours, so a prior config needs only the path (``prior=learned prior.weights=PATH``)."""
    spec = {
        "target": _dotted(type(segmenter)),
        "kwargs": dict(segmenter.config_dict()),
        "class_names": [str(c) for c in class_names],
        "colors": [[int(v) for v in c] for c in colors],
    }
    _save_atomic({"params": _cpu_state(segmenter), SEGMENTER_KEY: spec}, path)


def segmenter_spec(path: str | os.PathLike, obj: Mapping) -> dict | None:
    """The architecture/classes record of checkpoint ``obj`` (loaded from ``path``) written by
    ``export_segmenter``; None for the released file."""
    spec = obj.get(SEGMENTER_KEY)
    if spec is not None and not (isinstance(spec, Mapping) and spec.get("target") in SEGMENTER_ARCHS and isinstance(spec.get("kwargs"), Mapping)):
        raise CheckpointError(f"{path}: '{SEGMENTER_KEY}' must name one of {sorted(SEGMENTER_ARCHS)} with a dict of kwargs")
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
        segmenter = SEGMENTER_ARCHS[spec["target"]](**kwargs)
        load_strict(segmenter, unwrap_state_dict(obj, source=str(path)), source=str(path))
        return segmenter.eval(), spec
    sd = unwrap_state_dict(obj, prefixes=("segmenter.", "model."), source=str(path))
    num_classes = sd["deconv.weight"].shape[0] if "deconv.weight" in sd else 8
    arch = {k: tuple(v) if isinstance(v, list) else v for k, v in arch.items()}
    segmenter = OutdoorSceneSeg(num_classes=num_classes, **arch)
    load_strict(segmenter, sd, source=str(path))
    return segmenter.eval(), None


# ---------------------------------------------------------------------------------------------------
# SRGAN -> SFTGAN initialisation
# ---------------------------------------------------------------------------------------------------


def srgan_key_map(num_blocks: int = 16) -> dict[str, str]:
    """Old BasicSR SRResNet keys -> SFT-Net keys (the mapping of the original SFTGAN recipe)."""
    mapping = {"model.0": "conv0"}
    for i in range(num_blocks):
        mapping[f"model.1.sub.{i}.res.0"] = f"sft_branch.{i}.conv0"
        mapping[f"model.1.sub.{i}.res.2"] = f"sft_branch.{i}.conv1"
    mapping[f"model.1.sub.{num_blocks}"] = f"sft_branch.{num_blocks + 1}"
    for old, new in (("model.2", "HR_branch.0"), ("model.5", "HR_branch.3"), ("model.8", "HR_branch.6"), ("model.10", "HR_branch.8")):
        mapping[old] = new
    return mapping


def convert_srgan_state_dict(sd: Mapping[str, torch.Tensor], num_blocks: int = 16) -> StateDict:
    """Rename an SRGAN/SRResNet state dict (``SRGAN_bicx4_noBN_DIV2K`` layout) to SFT-Net keys.

    Already-SFT-Net-style keys (an SRResNet trained by this package, ``conditioning="none"``) pass through.
    """
    if "conv0.weight" in sd:
        return dict(sd)
    mapping = srgan_key_map(num_blocks)
    out: StateDict = {}
    unknown = []
    for key, value in sd.items():
        module, _, param = key.rpartition(".")
        if module in mapping:
            out[f"{mapping[module]}.{param}"] = value
        else:
            unknown.append(key)
    if unknown:
        raise CheckpointError(f"SRGAN checkpoint has keys outside the SRResNet layout: {_listing(unknown)}")
    return out


@torch.no_grad()
def init_conditioning_small(generator: SFTGenerator, scale: float = 0.1) -> None:
    """Kaiming-normal (fan_in) weights x ``scale`` and zero biases for every SFT/concat and CondNet conv,
    so the conditioned network starts close to the SRResNet it was initialised from."""
    for module in generator.conditioning_modules():
        for conv in module.modules():
            if isinstance(conv, nn.Conv2d):
                nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
                conv.weight.mul_(scale)
                nn.init.zeros_(conv.bias)


def init_from_srgan(
    generator: SFTGenerator, srgan: str | os.PathLike | Mapping[str, torch.Tensor], init_scale: float = 0.1
) -> SFTGenerator:
    """Copy a trained SRResNet/SRGAN generator into ``generator``'s trunk and upsampler, and initialise
    its SFT and condition layers small (scaled Kaiming, zero bias), as the original SFTGAN training did.

    ``srgan`` is the original's SRGAN/SRResNet layout (``model.0.weight`` ...) or this package's own
    layout (an SRResNet trained with ``experiment=srresnet_pretrain``, its ``generator.pth``). Every
    trunk/upsampler parameter of ``generator`` must be provided, with matching shapes.
    """
    source = str(srgan) if not isinstance(srgan, Mapping) else "SRGAN state dict"
    sd = load_state_dict_file(srgan) if not isinstance(srgan, Mapping) else dict(srgan)
    ours = "conv0.weight" in sd  # already in SFT-Net key names (an export of this package)
    converted = dict(sd) if ours else convert_srgan_state_dict(sd, generator.config.num_blocks)
    cond_params = {id(p) for m in generator.conditioning_modules() for p in m.parameters()}
    trunk_keys = [k for k, p in generator.named_parameters() if id(p) not in cond_params]
    # load (and validate) first, so a checkpoint that does not fit leaves the generator untouched
    load_strict(generator, converted, f"{source} (as the generator's trunk)", required=trunk_keys)
    init_conditioning_small(generator, init_scale)
    return generator


__all__ = [
    "CheckpointError",
    "build_generator",
    "convert_srgan_state_dict",
    "export_generator",
    "infer_generator_config",
    "init_conditioning_small",
    "init_from_srgan",
    "load_checkpoint_file",
    "load_generator",
    "load_segmenter",
    "load_state_dict_file",
    "load_strict",
    "srgan_key_map",
    "unwrap_state_dict",
]
