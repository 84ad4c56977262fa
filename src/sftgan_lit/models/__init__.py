"""Plain ``torch.nn`` networks of SFTGAN (no Lightning, no file paths)."""

from .concat import ConcatLayer
from .condition import ConditionNet
from .discriminator import ACDDiscriminator
from .generator import GeneratorConfig, ResBlockSFT, SFTGenerator, sftgan_pytorch, sftgan_torch7, srresnet
from .lraspp import LRASPPSegmenter
from .segmenter import OutdoorSceneSeg, Res131
from .sft import SFTLayer
from .vgg import VGGFeatureExtractor

__all__ = [
    "ACDDiscriminator",
    "ConcatLayer",
    "ConditionNet",
    "GeneratorConfig",
    "LRASPPSegmenter",
    "OutdoorSceneSeg",
    "Res131",
    "ResBlockSFT",
    "SFTGenerator",
    "SFTLayer",
    "VGGFeatureExtractor",
    "sftgan_pytorch",
    "sftgan_torch7",
    "srresnet",
]
