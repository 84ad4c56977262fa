"""Plain ``torch.nn`` networks of SFTGAN (no Lightning, no Hydra), their variants and their checkpoint files."""

from .checkpoints import (
    LIGHTNING_GENERATOR_PREFIXES,
    export_estimator,
    export_generator,
    export_segmenter,
    generator_from_state_dict,
    load_estimator,
    load_generator,
    load_segmenter,
    package_version,
    read_segmenter,
)
from .compact import CompactConfig, SFTCompact
from .concat import ConcatLayer
from .condition import ConditionNet
from .conditioned import ConditionedConfig, ConditionedGenerator, Stage, conv_radius
from .discriminator import ACDDiscriminator
from .estimator import DegradationEstimator, EstimatorConfig
from .generator import GeneratorConfig, ResBlockSFT, SFTGenerator
from .init import scaled_kaiming_
from .interpolation import interpolate_generators
from .lraspp import LRASPPSegmenter
from .pretrained import init_from_backbone
from .protocols import Segmenter
from .registry import (
    ARCHITECTURES,
    GENERATOR_VARIANTS,
    SEGMENTER_ARCHS,
    Architecture,
    GeneratorVariant,
    architecture_of,
    build_generator,
    infer_generator_config,
    infer_segmenter,
    sftgan_pytorch,
    sftgan_torch7,
    srresnet,
)
from .rrdb import RRDBConfig, SFTRRDBNet
from .segmenter import OutdoorSceneSeg, Res131
from .sft import SFTLayer
from .srgan import convert_srgan_state_dict, init_conditioning_small, init_from_srgan, srgan_key_map
from .vgg import VGGFeatureExtractor

__all__ = [
    "ARCHITECTURES",
    "ACDDiscriminator",
    "Architecture",
    "CompactConfig",
    "ConcatLayer",
    "ConditionedConfig",
    "ConditionedGenerator",
    "ConditionNet",
    "DegradationEstimator",
    "EstimatorConfig",
    "GENERATOR_VARIANTS",
    "LIGHTNING_GENERATOR_PREFIXES",
    "GeneratorConfig",
    "GeneratorVariant",
    "LRASPPSegmenter",
    "OutdoorSceneSeg",
    "Res131",
    "RRDBConfig",
    "ResBlockSFT",
    "SEGMENTER_ARCHS",
    "SFTCompact",
    "SFTGenerator",
    "SFTLayer",
    "SFTRRDBNet",
    "Stage",
    "Segmenter",
    "VGGFeatureExtractor",
    "architecture_of",
    "build_generator",
    "conv_radius",
    "convert_srgan_state_dict",
    "export_estimator",
    "export_generator",
    "export_segmenter",
    "generator_from_state_dict",
    "load_estimator",
    "infer_segmenter",
    "package_version",
    "infer_generator_config",
    "init_from_backbone",
    "init_conditioning_small",
    "init_from_srgan",
    "interpolate_generators",
    "load_generator",
    "load_segmenter",
    "read_segmenter",
    "scaled_kaiming_",
    "sftgan_pytorch",
    "sftgan_torch7",
    "srgan_key_map",
    "srresnet",
]
