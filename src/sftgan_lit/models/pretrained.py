"""Starting a conditioned generator from a released unconditioned backbone: the trunk copied key for key,
every conditioning layer the identity, so the output equals the source model's until training moves it."""

from __future__ import annotations

import os
from collections.abc import Mapping

import torch

from ..state_dict import CheckpointError, listing, load_state_dict_file, load_strict
from .conditioned import ConditionedGenerator
from .registry import architecture_of


def init_from_backbone(
    generator: ConditionedGenerator, source: str | os.PathLike | Mapping[str, torch.Tensor]
) -> ConditionedGenerator:
    """Copy a released backbone's weights into ``generator``'s trunk and make its conditioning layers the
    identity (``ConditionedGenerator.init_identity``): ``generator(lr, prior)`` then equals the source
    model's ``model(lr)`` for any prior, bit for bit in float32, and the prior is learned from there.

    Args:
        generator: the conditioned network (changed in place; untouched when the file does not fit).
        source: a file or a state dict in a layout the generator's architecture reads (``Architecture.convert``):
            RRDBNet (Real-ESRGAN's ``params_ema`` / ``params`` wrappers; ESRGAN's old ``model.N.sub.M.RDB*``
            keys), SRVGGNetCompact, SRResNet / SRGAN. The condition net keeps its initialisation.

    Returns:
        ``generator``. A file of another architecture, scale or size raises one ``CheckpointError`` naming
        what differs (the arguments read from its tensors, then the keys).
    """
    name = str(source) if not isinstance(source, Mapping) else "backbone state dict"
    sd = load_state_dict_file(source) if not isinstance(source, Mapping) else dict(source)
    arch = architecture_of(generator)
    try:
        sd = arch.convert(sd, name)
        theirs = arch.infer(sd, name)
    except CheckpointError as err:
        raise CheckpointError(f"init_from={name}: not a {arch.name} backbone ({err})") from err
    ours = generator.config_dict()
    trunk_args = ("in_channels", "out_channels", "scale", *generator.config.SIZES)
    differ = [f"{k}: file {theirs[k]}, model {ours[k]}" for k in trunk_args if k in theirs and theirs[k] != ours[k]]
    if differ:
        raise CheckpointError(
            f"init_from={name}: the file's {arch.name} differs from model.generator in {'; '.join(differ)}"
        )
    cond = {id(p) for m in generator.conditioning_modules() for p in m.parameters()}
    trunk = [k for k, p in generator.named_parameters() if id(p) not in cond]
    extra = [k for k in sd if k not in trunk]
    if extra:
        raise CheckpointError(
            f"init_from={name}: keys outside the unconditioned trunk ({listing(extra)}); a conditioned export "
            "starts a run with init_generator"
        )
    load_strict(generator, sd, f"init_from={name}", required=trunk)
    generator.init_identity()
    return generator
