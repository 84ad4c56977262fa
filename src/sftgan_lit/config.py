"""Structured configs (dataclasses) registered in Hydra's ConfigStore: typed schemas for the groups
whose values are plain numbers and choices, so that a typo in a key or a wrong type fails when the
config is composed, with Hydra's message, not in the middle of a run.

``conf/loss/*.yaml`` and ``conf/sft/*.yaml`` start from these schemas (``defaults: [schema_*, _self_]``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Optional

from hydra.core.config_store import ConfigStore


class GanType(str, Enum):
    vanilla = "vanilla"
    lsgan = "lsgan"
    ragan = "ragan"
    wgan_gp = "wgan_gp"
    hinge = "hinge"


class PixelType(str, Enum):
    l1 = "l1"
    mse = "mse"


class Conditioning(str, Enum):
    sft = "sft"
    film = "film"
    concat = "concat"
    none = "none"


@dataclass
class PerceptualSchema:
    _target_: str = "sftgan_lit.losses.PerceptualLoss"
    layer: int = 34  # VGG19 features index: 34 = conv5_4 before its ReLU
    weights: Optional[str] = None  # None: torchvision's cache (vgg19-dcbb9e9d.pth)
    required: bool = True  # False: a missing file disables the term, with a warning
    random_weights: bool = False  # tests only


@dataclass
class LossSchema:
    w_pix: float = 0.0
    pixel_type: PixelType = PixelType.l1
    w_percep: float = 1.0
    w_gan: float = 5e-3
    gan_type: GanType = GanType.vanilla
    w_cls: float = 1.0
    w_cls_g: Optional[float] = None  # None: w_gan (the original)
    w_gp: float = 10.0
    perceptual: PerceptualSchema = field(default_factory=PerceptualSchema)


@dataclass
class SFTSchema:
    conditioning: Conditioning = Conditioning.sft
    num_cond_blocks: Optional[int] = None  # None: every residual block; k: the first k
    final_cond: bool = True  # the conditioning layer before the trunk's last conv


def register_configs() -> None:
    cs = ConfigStore.instance()
    cs.store(group="loss", name="schema_loss", node=LossSchema)
    cs.store(group="sft", name="schema_sft", node=SFTSchema)


register_configs()
