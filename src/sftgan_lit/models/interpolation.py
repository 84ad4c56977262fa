"""Texture strength by network interpolation: two trainings of one generator mixed in weight space."""

from __future__ import annotations

import torch

from ..state_dict import CheckpointError
from .conditioned import ConditionedGenerator


def interpolate_generators(
    fidelity: ConditionedGenerator, gan: ConditionedGenerator, strength: float
) -> ConditionedGenerator:
    """Texture strength by network interpolation (ESRGAN's, as Real-ESRGAN users ask for): a generator whose
    weights are ``(1 - strength) * fidelity + strength * gan``, two trainings of one architecture (the
    recipe's fidelity stage and its GAN stage). ``strength`` 0 and 1 return the two networks themselves."""
    if not 0.0 <= strength <= 1.0:
        raise ValueError(f"strength={strength}: must be in [0, 1]")
    if fidelity.config != gan.config:
        differ = {
            k: (v, gan.config_dict().get(k)) for k, v in fidelity.config_dict().items() if gan.config_dict().get(k) != v
        }
        raise CheckpointError(
            f"the fidelity and GAN generators differ in architecture ({differ}); they cannot be mixed"
        )
    if strength in (0.0, 1.0):
        return fidelity if strength == 0.0 else gan
    mixed = type(gan)(**gan.config_dict())
    theirs = fidelity.state_dict()
    mixed.load_state_dict(
        {
            k: torch.lerp(theirs[k].float(), v.float(), strength) if v.is_floating_point() else v
            for k, v in gan.state_dict().items()
        }
    )
    mixed.requires_grad_(any(p.requires_grad for p in gan.parameters()))  # frozen ends give a frozen mix
    device = next(gan.parameters()).device
    layout = torch.channels_last if next(gan.parameters()).is_contiguous(memory_format=torch.channels_last) else None
    mixed = mixed.to(device)
    return (mixed.to(memory_format=layout) if layout else mixed).eval()
