"""sftgan_lit: SFTGAN (Wang et al., CVPR 2018) in PyTorch Lightning + Hydra.

Public API::

    from sftgan_lit import load_generator, load_segmenter, imresize

    seg = load_segmenter("segmentation_OST_bic.pth")      # OutdoorSceneSeg, eval mode
    g = load_generator("SFTGAN_noBN_OST_bg.pth")          # variant detected from the keys
    lr = imresize(hr, 1 / 4).clamp(0, 1)                  # MATLAB bicubic, (N, 3, H, W) RGB in [0, 1]
    prior = seg(lr)                                       # (N, 8, H, W) class probabilities
    sr = g(lr, prior)                                     # (N, 3, H, W), raw network output
"""

from .categories import NUM_OUTDOOR_CLASSES, OUTDOOR_CLASSES, OUTDOOR_COLORS, colorize
from .imresize import imresize
from .models import (
    ACDDiscriminator,
    OutdoorSceneSeg,
    SFTGenerator,
    SFTLayer,
    VGGFeatureExtractor,
    export_generator,
    init_from_srgan,
    load_generator,
    load_segmenter,
    package_version,
    sftgan_pytorch,
    sftgan_torch7,
    srresnet,
)

__version__ = package_version()  # the installed distribution's (pyproject.toml), read once

__all__ = [
    "ACDDiscriminator",
    "NUM_OUTDOOR_CLASSES",
    "OUTDOOR_CLASSES",
    "OUTDOOR_COLORS",
    "OutdoorSceneSeg",
    "SFTGenerator",
    "SFTLayer",
    "VGGFeatureExtractor",
    "colorize",
    "export_generator",
    "imresize",
    "init_from_srgan",
    "load_generator",
    "load_segmenter",
    "sftgan_pytorch",
    "sftgan_torch7",
    "srresnet",
]
