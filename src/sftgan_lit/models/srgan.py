"""Starting an SFT-Net from a trained SRResNet/SRGAN: key conversion and the small init of the new layers."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from ..state_dict import CheckpointError, StateDict, listing, load_state_dict_file, load_strict
from .generator import SFTGenerator
from .init import scaled_kaiming_


def srgan_key_map(num_blocks: int = 16) -> dict[str, str]:
    """Old BasicSR SRResNet keys -> SFT-Net keys (the mapping of the original SFTGAN recipe)."""
    mapping = {"model.0": "conv0"}
    for i in range(num_blocks):
        mapping[f"model.1.sub.{i}.res.0"] = f"sft_branch.{i}.conv0"
        mapping[f"model.1.sub.{i}.res.2"] = f"sft_branch.{i}.conv1"
    mapping[f"model.1.sub.{num_blocks}"] = f"sft_branch.{num_blocks + 1}"
    for old, new in (
        ("model.2", "HR_branch.0"),
        ("model.5", "HR_branch.3"),
        ("model.8", "HR_branch.6"),
        ("model.10", "HR_branch.8"),
    ):
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
        raise CheckpointError(f"SRGAN checkpoint has keys outside the SRResNet layout: {listing(unknown)}")
    return out


def init_conditioning_small(generator: SFTGenerator, scale: float = 0.1) -> None:
    """The original init x ``scale`` for every SFT/concat and CondNet layer, so the conditioned network
    starts close to the SRResNet it was initialised from."""
    scaled_kaiming_(generator.conditioning_modules(), scale)


def init_from_srgan(
    generator: SFTGenerator, srgan: str | os.PathLike | Mapping[str, torch.Tensor], init_scale: float = 0.1
) -> SFTGenerator:
    """Copy a trained SRResNet/SRGAN generator into ``generator``'s trunk and upsampler, and initialise
    its SFT and condition layers small (scaled Kaiming, zero bias), as the original SFTGAN training did.

    ``srgan`` is the original's SRGAN/SRResNet layout (``model.0.weight`` ...) or this package's own
    layout (an SRResNet trained with ``experiment=srresnet_pretrain``, its ``generator.pth``). Every
    trunk/upsampler parameter of ``generator`` must be provided, with matching shapes.

    Args:
        generator: the SFT-Net to initialise (changed in place; untouched when the checkpoint does not fit).
        srgan: a file path or a state dict in either layout.
        init_scale: the scale of the Kaiming-normal initialisation of the SFT and condition layers.

    Returns:
        ``generator``. A checkpoint that does not fit raises one ``CheckpointError`` listing the missing,
        unexpected and mis-shaped keys.
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
